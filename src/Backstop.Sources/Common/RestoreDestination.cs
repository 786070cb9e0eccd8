using Backstop.Core.Plugins;

namespace Backstop.Sources.Common;

/// <summary>Where a restore may write: the rules every file-shaped restore shares.</summary>
public static class RestoreDestination
{
    /// <summary>A folder that is missing or empty, or any folder with --force.</summary>
    public static string Folder(string destination, bool force)
    {
        var dir = Path.GetFullPath(destination);
        if (System.IO.File.Exists(dir))
        {
            throw new BackupException($"--to {destination} is a file; restore into a folder");
        }

        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any() && !force)
        {
            throw new BackupException($"--to {destination} is not empty; choose an empty folder, or add --force to restore over it");
        }

        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A file path (a folder means FOLDER/NAME) that does not exist yet, or any with --force.</summary>
    public static string File(string destination, string name, bool force)
    {
        var path = Path.GetFullPath(destination);
        if (Directory.Exists(path) || destination.EndsWith('/'))
        {
            path = Path.Combine(path, name);
        }

        if (System.IO.File.Exists(path) && !force)
        {
            throw new BackupException($"{path} exists; choose another --to, or add --force to replace it");
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }

    /// <summary>A destination database takes one dump: more than one must be restored one at a time.</summary>
    public static IReadOnlyList<string> OneDatabase(IReadOnlyList<string> dumps) =>
        dumps.Count > 1
            ? throw new Core.Config.ConfigException(
                $"--artifact: this snapshot holds {dumps.Count} databases ({string.Join(", ", dumps)}) and --to names one; restore them one at a time")
            : dumps;

    /// <summary>Writes FOLDER/NAME, then reads it back through the artifact's format check and returns what that found.</summary>
    public static async Task<IReadOnlyDictionary<string, long>> CheckedFileInFolderAsync(string destination, string name, bool force, Stream content,
        IArtifactValidator check, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(check);
        var path = File(Path.EndsInDirectorySeparator(destination) ? destination : destination + "/", name, force);
        await WriteFileAsync(path, content, cancellationToken).ConfigureAwait(false);
        await using var written = System.IO.File.OpenRead(path);
        return await check.ReadFactsAsync(written, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes the content under a temporary name beside the path, then renames it into place.</summary>
    public static async Task<long> WriteFileAsync(string path, Stream content, CancellationToken cancellationToken)
    {
        var temp = path + ".backstop-restore";
        try
        {
            long bytes;
            await using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                await content.CopyToAsync(file, 1 << 17, cancellationToken).ConfigureAwait(false);
                bytes = file.Length;
                file.Flush(flushToDisk: true);
            }

            System.IO.File.Move(temp, path, overwrite: true);
            return bytes;
        }
        catch
        {
            System.IO.File.Delete(temp);
            throw;
        }
    }
}
