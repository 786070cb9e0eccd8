using System.Globalization;
using System.Security.Cryptography;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Sources.Scratch;

namespace Backstop.Sources.Files;

/// <summary><c>drill: {spot_check: 5%}</c>: the share of restored files compared byte for byte with the live source.</summary>
public sealed record FilesDrillOptions(int SpotCheckPercent);

public sealed partial class FilesSourceKind
{
    public override FilesDrillOptions? ParseDrill(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var share = map.Percent("spot_check");
        return share is null ? null : new FilesDrillOptions(share.Value);
    }
}

/// <summary>
/// A files drill: the tar is extracted into a scratch folder through the restore's own path (files, bytes,
/// folders and symlinks counted and compared with the snapshot's); with <c>spot_check</c>, a random share of the
/// restored files is compared with the live files that have not changed since the snapshot (same size and time), so
/// a capture that stored wrong bytes is found.
/// </summary>
internal sealed class FilesDrill(FilesDrillOptions? drillOptions) : IDrillable
{
    public Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var folder = FolderScratch.Create(scope, "files");
        var share = drillOptions?.SpotCheckPercent ?? 0;
        return Task.FromResult<IDrillScratch>(new FolderScratch($"the scratch folder {folder}", folder,
            ct => share > 0 ? SpotCheckAsync(folder, share, scope, ct) : Task.FromResult<IReadOnlyList<DrillCheck>>([])));
    }

    private static async Task<IReadOnlyList<DrillCheck>> SpotCheckAsync(string restored, int percent, DrillScope scope, CancellationToken ct)
    {
        var files = Directory.EnumerateFiles(restored, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false })
            .Where(f => Posix.TryLstat(f, out var s, out _) && s.IsRegular).ToList();
        var wanted = files.Count == 0 ? 0 : Math.Max(1, (int)Math.Ceiling(files.Count * percent / 100.0));
        var picked = files.OrderBy(_ => RandomNumberGenerator.GetInt32(int.MaxValue)).Take(wanted).ToList();
        var compared = 0;
        var changed = 0;
        var differing = new List<string>();
        foreach (var file in picked)
        {
            ct.ThrowIfCancellationRequested();
            var live = "/" + Path.GetRelativePath(restored, file); // restored paths are DEST/<absolute path>
            if (!Posix.TryLstat(file, out var r, out _) || !Posix.TryLstat(live, out var l, out _) || !l.IsRegular
                || l.Size != r.Size || Math.Abs((l.Modified - r.Modified).TotalSeconds) >= 1 || l.Modified > scope.SnapshotStartedAt)
            {
                changed++; // gone, replaced or modified since the snapshot: nothing to compare it with
                continue;
            }

            compared++;
            var restoredHash = await HashAsync(file, ct).ConfigureAwait(false);
            var liveHash = await HashAsync(live, ct).ConfigureAwait(false);
            if (!CryptographicOperations.FixedTimeEquals(restoredHash, liveHash))
            {
                differing.Add(live);
            }
        }

        if (compared == 0)
        {
            // Nothing compared is no check at all: said, never reported as a passed one.
            scope.Note(picked.Count == 0
                ? "spot check: the snapshot holds no regular file to compare"
                : $"spot check: all {picked.Count} picked files changed since the snapshot (or are gone), so none could be compared with the live source");
            return [];
        }

        var found = differing.Count == 0
            ? $"{compared} equal" + (changed > 0 ? $", {changed} changed since the snapshot (not compared)" : "")
            : $"{differing.Count} of {compared} differ: {string.Join(", ", differing.Take(5))}{(differing.Count > 5 ? ", …" : "")}";
        return
        [
            new DrillCheck($"spot check: {picked.Count} of {files.Count} files ({percent.ToString(CultureInfo.InvariantCulture)}%) against the live source",
                "the same bytes as each live file unchanged since the snapshot", found, differing.Count == 0),
        ];
    }

    private static async Task<byte[]> HashAsync(string path, CancellationToken ct)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false);
    }
}

/// <summary>Where a files source's data lives, for <c>doctor</c>'s single-point-of-failure check.</summary>
internal sealed class FilesHealth(FilesOptions options) : IHealthChecked
{
    public SourcePlace Place => new(null, options.Paths);
}
