using Backstop.Core.Plugins;

namespace Backstop.Core.Pipeline;

/// <summary>Snapshot folders without a manifest: never a backup, removed by the next run.</summary>
public static class Orphans
{
    public static async Task<IReadOnlyList<string>> FindAsync(ITarget target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var folders = new Dictionary<string, bool>(StringComparer.Ordinal);
        await foreach (var o in target.ListAsync("", cancellationToken).ConfigureAwait(false))
        {
            var parts = o.Key.Split('/');
            if (parts.Length < 3 || !SnapshotId.IsValid(parts[1]))
            {
                continue;
            }

            var folder = $"{parts[0]}/{parts[1]}/";
            var isManifest = parts.Length == 3 && parts[2] == Layout.ManifestName;
            folders[folder] = folders.GetValueOrDefault(folder) || isManifest;
        }

        return folders.Where(f => !f.Value).Select(f => f.Key).Order(StringComparer.Ordinal).ToList();
    }

    public static async Task DeleteFolderAsync(ITarget target, string folder, RunObserver observer)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(observer);
        try
        {
            var keys = new List<string>();
            await foreach (var o in target.ListAsync(folder, CancellationToken.None).ConfigureAwait(false))
            {
                keys.Add(o.Key);
            }

            foreach (var k in keys.OrderBy(k => k.EndsWith(Layout.ManifestName, StringComparison.Ordinal) ? 0 : 1))
            {
                await target.DeleteAsync(k, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or BackupException)
        {
            observer.Notice($"could not remove {folder} from target '{target.Name}': {e.Message}; the next run tries again");
        }
    }
}
