using System.Formats.Tar;
using Backstop.Core.Plugins;
using Backstop.Core.Util;

namespace Backstop.Sources.Files;

/// <summary>
/// Extracts a tar into a folder and refuses anything that would land outside it: absolute names, <c>..</c>,
/// hard links to outside, and writing through a symlink (a symlink may point anywhere; nothing is written through
/// one). Modes and times are restored; owners too when running as root. Returns the files and bytes written.
/// </summary>
internal static class TarExtractor
{
    public static async Task<Dictionary<string, long>> ExtractAsync(Stream tar, string root, CancellationToken cancellationToken)
    {
        long files = 0, bytes = 0;
        var directories = new List<(string Path, TarEntry Entry)>();
        var safe = new SafeFolders(root);
        var asRoot = Environment.UserName == "root";
        await using var reader = new TarReader(tar, leaveOpen: true);
        while (reader.GetNextEntry(copyData: false) is { } entry)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var path = Inside(root, entry.Name);
            safe.Check(path, entry.Name);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    safe.Create(path);
                    directories.Add((path, entry));
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile:
                    safe.Create(Path.GetDirectoryName(path)!);
                    DeleteExisting(path);
                    // Synchronous on purpose: the bytes are produced ahead on another thread, and a thread-pool hop per
                    // small file costs more than the write. Mode, owner and time go through the open handle.
                    using (var file = new FileStream(path, new FileStreamOptions
                           {
                               Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0,
                               UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                           }))
                    {
                        if (entry.DataStream is { } data)
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                            data.CopyTo(file, 1 << 16);
                        }

                        if (asRoot)
                        {
                            Posix.Lchown(path, entry.Uid, entry.Gid);
                        }

                        File.SetUnixFileMode(file.SafeFileHandle, entry.Mode);
                        File.SetLastWriteTimeUtc(file.SafeFileHandle, entry.ModificationTime.UtcDateTime);
                    }

                    files++;
                    bytes += entry.Length;
                    break;
                case TarEntryType.HardLink:
                    var target = Inside(root, entry.LinkName);
                    safe.Check(target, entry.LinkName);
                    safe.Create(Path.GetDirectoryName(path)!);
                    DeleteExisting(path);
                    Posix.HardLink(target, path);
                    files++;
                    break;
                case TarEntryType.SymbolicLink:
                    safe.Create(Path.GetDirectoryName(path)!);
                    DeleteExisting(path);
                    File.CreateSymbolicLink(path, entry.LinkName);
                    safe.Forget(path); // a folder of that name checked before is a symlink now
                    if (asRoot)
                    {
                        Posix.Lchown(path, entry.Uid, entry.Gid);
                    }

                    break;
                default:
                    throw new BackupException($"tar entry {entry.Name} is a {entry.EntryType}, which backstop does not restore");
            }
        }

        // Folders last, deepest first: writing their content changed their times.
        foreach (var (path, entry) in directories.OrderByDescending(d => d.Path.Length))
        {
            Apply(path, entry, asRoot);
        }

        return new Dictionary<string, long> { ["files"] = files, ["bytes"] = bytes };
    }

    private static string Inside(string root, string name)
    {
        if (name.StartsWith('/') || name.Split('/').Any(part => part == ".."))
        {
            throw new BackupException($"refused: tar entry '{name}' would land outside the destination (absolute or '..')");
        }

        var full = Path.GetFullPath(Path.Combine(root, name));
        var top = Path.TrimEndingDirectorySeparator(root);
        return full == top || full.StartsWith(top + "/", StringComparison.Ordinal)
            ? full
            : throw new BackupException($"refused: tar entry '{name}' would land outside the destination");
    }

    /// <summary>
    /// No folder between the root and an entry may be a symlink: that is how archives write outside. Folders found
    /// real (or created here) are remembered, so a tar of many files does not check every level for every file; a
    /// symlink created by the archive drops what was remembered under its name.
    /// </summary>
    private sealed class SafeFolders(string root)
    {
        private readonly string _top = Path.TrimEndingDirectorySeparator(root);
        private readonly HashSet<string> _known = new(StringComparer.Ordinal);

        public void Check(string path, string name)
        {
            var dir = Path.GetDirectoryName(path);
            while (dir is not null && dir.Length > _top.Length && !_known.Contains(dir))
            {
                if (Posix.TryLstat(dir, out var st, out _) && st.IsSymlink)
                {
                    throw new BackupException($"refused: tar entry '{name}' would be written through the symlink {dir}");
                }

                dir = Path.GetDirectoryName(dir);
            }
        }

        /// <summary>Creates the folder (checked by <see cref="Check"/> beforehand) and remembers it and its parents.</summary>
        public void Create(string dir)
        {
            if (_known.Contains(dir))
            {
                return;
            }

            Directory.CreateDirectory(dir);
            for (var d = dir; d is not null && d.Length > _top.Length && _known.Add(d); d = Path.GetDirectoryName(d))
            {
            }
        }

        public void Forget(string path) => _known.RemoveWhere(k => k == path || k.StartsWith(path + "/", StringComparison.Ordinal));
    }

    private static void DeleteExisting(string path)
    {
        if (Posix.TryLstat(path, out _, out _))
        {
            File.Delete(path);
        }
    }

    private static void Apply(string path, TarEntry entry, bool asRoot)
    {
        if (asRoot)
        {
            Posix.Lchown(path, entry.Uid, entry.Gid);
        }

        File.SetUnixFileMode(path, entry.Mode);
        File.SetLastWriteTimeUtc(path, entry.ModificationTime.UtcDateTime);
    }
}
