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
    /// <summary>What an extraction wrote, and the archive's entry for the folder itself when it had one.</summary>
    internal sealed record TarExtraction(Dictionary<string, long> Facts, TarEntry? Root);

    /// <param name="select">Maps an entry's name to the name it is restored under, or null to leave it out (a partial restore).</param>
    public static async Task<TarExtraction> ExtractAsync(Stream tar, string root, CancellationToken cancellationToken, Func<string, string?>? select = null)
    {
        long files = 0, bytes = 0, folders = 0, symlinks = 0, specials = 0;
        var directories = new List<(string Path, TarEntry Entry)>();
        TarEntry? rootEntry = null;
        var safe = new SafeFolders(root);
        var asRoot = Environment.UserName == "root";
        var buffer = new byte[1 << 18];
        await using var reader = new TarReader(tar, leaveOpen: true);
        while (reader.GetNextEntry(copyData: false) is { } entry)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var name = entry.Name;
            if (select is not null)
            {
                if (select(name) is not { } chosen)
                {
                    continue; // its data is skipped by the reader
                }

                name = chosen;
            }

            var path = Inside(root, name);
            safe.Check(path, name);
            switch (entry.EntryType)
            {
                case TarEntryType.Directory when path == Path.TrimEndingDirectorySeparator(root):
                    rootEntry = entry; // the destination's own mode and time, for the caller to apply
                    folders++;
                    break;
                case TarEntryType.Directory:
                    safe.CheckFolder(path, entry.Name);
                    safe.Create(path);
                    directories.Add((path, entry));
                    folders++;
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile:
                    safe.Create(Path.GetDirectoryName(path)!);
                    // Synchronous on purpose: the bytes are produced ahead on other threads, and a thread-pool hop per
                    // small file costs more than the write.
                    var file = Posix.NewFile.TryCreate(path);
                    if (file is null)
                    {
                        File.Delete(path); // the archive names it twice, or --force over an existing file
                        file = Posix.NewFile.TryCreate(path) ?? throw new IOException($"cannot create {path}: it keeps coming back");
                    }

                    using (file)
                    {
                        if (entry.DataStream is { } data)
                        {
                            int n;
                            while ((n = data.Read(buffer)) > 0)
                            {
                                file.Write(buffer.AsSpan(0, n));
                            }
                        }

                        file.Finish(asRoot, entry.Uid, entry.Gid, (uint)entry.Mode, entry.ModificationTime);
                    }

                    files++;
                    bytes += entry.Length;
                    break;
                case TarEntryType.HardLink:
                    var linked = select is null ? entry.LinkName
                        : select(entry.LinkName) ?? throw new BackupException($"{entry.Name} is a hard link to {entry.LinkName}, which the selection leaves out; include it too");
                    var target = Inside(root, linked);
                    safe.Check(target, linked);
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
                    symlinks++;
                    if (asRoot)
                    {
                        Posix.Lchown(path, entry.Uid, entry.Gid);
                    }

                    break;
                case TarEntryType.Fifo or TarEntryType.CharacterDevice or TarEntryType.BlockDevice:
                    if (entry.EntryType != TarEntryType.Fifo && !asRoot)
                    {
                        throw new BackupException($"tar entry {name} is a device node ({entry.EntryType}), which only root can make: restore as root, or leave it out with --include");
                    }

                    safe.Create(Path.GetDirectoryName(path)!);
                    DeleteExisting(path);
                    Posix.MakeNode(path, entry.EntryType switch { TarEntryType.Fifo => 0x1000u, TarEntryType.CharacterDevice => 0x2000u, _ => 0x6000u },
                        (uint)entry.Mode, (entry as PosixTarEntry)?.DeviceMajor ?? 0, (entry as PosixTarEntry)?.DeviceMinor ?? 0);
                    safe.Forget(path);
                    if (asRoot)
                    {
                        Posix.Lchown(path, entry.Uid, entry.Gid);
                    }

                    File.SetUnixFileMode(path, entry.Mode); // past the umask
                    File.SetLastWriteTimeUtc(path, entry.ModificationTime.UtcDateTime);
                    specials++;
                    break;
                default:
                    throw new BackupException($"tar entry {name} is a {entry.EntryType}, which backstop does not restore");
            }
        }

        // Folders last, deepest first: writing their content changed their times.
        foreach (var (path, entry) in directories.OrderByDescending(d => d.Path.Length))
        {
            Apply(path, entry, asRoot);
        }

        return new TarExtraction(new Dictionary<string, long>
        {
            ["files"] = files, ["bytes"] = bytes, ["directories"] = folders, ["symlinks"] = symlinks, ["specials"] = specials,
        }, rootEntry);
    }

    /// <summary>Applies the archive's entry for its top folder (a backup of '/') to the folder restored into.</summary>
    public static void ApplyRoot(string folder, TarEntry? rootEntry)
    {
        if (rootEntry is not null)
        {
            Apply(folder, rootEntry, Environment.UserName == "root");
        }
    }

    private static string Inside(string root, string name)
    {
        if (name.StartsWith('/') || name.Split('/').Any(part => part == ".."))
        {
            throw new BackupException($"refused: tar entry '{name}' would land outside the destination (absolute or '..')");
        }

        try
        {
            return Core.Util.SafeNames.Inside(root, name, allowRoot: true); // the one containment check every restore path goes through
        }
        catch (Core.Util.PathOutsideException)
        {
            throw new BackupException($"refused: tar entry '{name}' would land outside the destination");
        }
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

        /// <summary>
        /// A folder entry's own name must not already be something else: a symlink the archive made there would be
        /// followed by the folder's creation, its mode and time, and every entry under it.
        /// </summary>
        public void CheckFolder(string path, string name)
        {
            if (!_known.Contains(path) && Posix.TryLstat(path, out var st, out _) && !st.IsDirectory)
            {
                throw new BackupException(st.IsSymlink
                    ? $"refused: tar entry '{name}' would make a folder of the symlink {path} (writing through it)"
                    : $"refused: tar entry '{name}' is a folder where the archive already put a file");
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
