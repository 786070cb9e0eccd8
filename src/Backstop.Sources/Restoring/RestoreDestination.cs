using Backstop.Core.Plugins;

namespace Backstop.Sources.Restoring;

/// <summary>Where a restore may write: the rules every file-shaped restore shares.</summary>
public static class RestoreDestination
{
    /// <summary>A file path (a folder means FOLDER/NAME) that does not exist yet, or any with --force.</summary>
    public static string File(string destination, string name, bool force)
    {
        var path = Path.GetFullPath(destination);
        if (Directory.Exists(path) || destination.EndsWith('/'))
        {
            path = Core.Text.SafeNames.Inside(path, name);
        }

        if (Directory.Exists(path))
        {
            throw new DestinationException($"{path} is a folder; the backup is a file: choose another --to (a file path, or a folder to put {name} in)");
        }

        if (System.IO.File.Exists(path) && !force)
        {
            throw new DestinationException($"{path} exists; choose another --to, or add --force to replace it");
        }

        return path;
    }

    /// <summary>A destination database takes one dump: more than one must be restored one at a time.</summary>
    public static IReadOnlyList<string> OneDatabase(IReadOnlyList<string> dumps) =>
        dumps.Count > 1
            ? throw new Core.Config.ConfigException(
                $"--artifact: this snapshot holds {dumps.Count} databases ({string.Join(", ", dumps)}) and --to names one; restore them one at a time")
            : dumps;

    /// <summary>Writes FOLDER/NAME aside, then reads it back through the artifact's format check; publishing renames it into place.</summary>
    public static async Task<StagedRestore> CheckedFileInFolderAsync(string destination, string name, bool force, Stream content,
        IArtifactValidator check, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(check);
        var path = File(Path.EndsInDirectorySeparator(destination) ? destination : destination + "/", name, force);
        var aside = await Staging.WriteAsideAsync(path, content, cancellationToken).ConfigureAwait(false);
        try
        {
            IReadOnlyDictionary<string, long> found;
            await using (var written = System.IO.File.OpenRead(aside.Temp))
            {
                found = await check.ReadFactsAsync(written, cancellationToken).ConfigureAwait(false);
            }

            return aside.Staged(found);
        }
        catch
        {
            aside.Remove();
            throw;
        }
    }
}
