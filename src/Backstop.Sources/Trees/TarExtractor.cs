using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Core.Tar;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Trees;

/// <summary>
/// Extracts a tar into a folder and refuses anything that would land outside it: absolute names, <c>..</c>,
/// hard links to outside, and writing through a symlink (a symlink may point anywhere; nothing is written through
/// one). Modes and times are restored; owners too when running as root. Returns the files and bytes written.
/// </summary>
internal static class TarExtractor
{
    /// <summary>What an extraction wrote, and the archive's entry for the folder itself when it had one.</summary>
    /// <param name="Folders">The folder entries not applied yet (with <c>deferFolders</c>): a chain applies them once, after its last level.</param>
    internal sealed record TarExtraction(Dictionary<string, long> Facts, PaxEntry? Root, IReadOnlyList<(string Path, PaxEntry Entry)> Folders);

    private static bool KnownXattrNamespace(string key) =>
        key.StartsWith("user.", StringComparison.Ordinal) || key.StartsWith("trusted.", StringComparison.Ordinal)
        || key.StartsWith("security.", StringComparison.Ordinal) || key.StartsWith("system.", StringComparison.Ordinal);

    /// <param name="select">Maps an entry's raw name to the raw name it is restored under, or null to leave it out (a partial restore).</param>
    /// <param name="level">
    /// Whether this is a level above a full, applied over what the levels below it restored: a folder's dumpdir then
    /// removes every name in it that the folder no longer has (deletions and renames), as <c>tar --incremental</c> does.
    /// </param>
    /// <param name="deferFolders">
    /// Leave folders' modes and times to the caller (<see cref="ApplyFolders"/>): a chain's next level still writes into
    /// them, which a read-only folder (0555) would refuse to anyone but root.
    /// </param>
    /// <param name="place">With <paramref name="select"/>: where a name lands, whether the selection takes it or not (the strip prefix alone).</param>
    public static Task<TarExtraction> ExtractAsync(Stream tar, string root, CancellationToken cancellationToken, Func<string, string?>? select = null, bool level = false,
        bool deferFolders = false, Func<string, string?>? place = null) =>
        Task.Run(() => Extract(tar, RawFs.FromPath(root), select, level, deferFolders, place, cancellationToken), cancellationToken);

    private static TarExtraction Extract(Stream tar, string root, Func<string, string?>? select, bool level, bool deferFolders,
        Func<string, string?>? place, CancellationToken cancellationToken)
    {
        long files = 0, bytes = 0, folders = 0, symlinks = 0, specials = 0;
        var directories = new List<(string Path, PaxEntry Entry)>();
        PaxEntry? rootEntry = null;
        var safe = new SafeFolders(root);
        var asRoot = Environment.UserName == "root";
        var buffer = new byte[1 << 18];
        var reader = new PaxReader(tar);
        while (reader.Next() is { } entry)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // A name no file system takes, or a file with a folder's name: damaged or hostile bytes, said as such.
            if (entry.Name.AsSpan().IndexOf((byte)0) >= 0 || entry.LinkName.AsSpan().IndexOf((byte)0) >= 0)
            {
                throw new InvalidDataException($"tar entry '{RawFs.Display(RawFs.FromBytes(entry.Name.AsSpan().IndexOf((byte)0) is var z and >= 0 ? entry.Name[..z] : entry.Name))}…' holds a NUL byte in its name or link: the archive is damaged");
            }

            if (entry.Type is PaxType.SymbolicLink or PaxType.HardLink && entry.LinkName.Length == 0)
            {
                throw new InvalidDataException($"tar entry '{RawFs.Display(RawFs.FromBytes(entry.Name))}' is a {entry.Type} to nothing (an empty target): the archive is damaged");
            }

            // Found by fuzzing: an attribute outside the kernel's namespaces is refused by every file system (EOPNOTSUPP),
            // which read as if this disk lacked a feature; it is the archive's damage.
            if (entry.Xattrs.FirstOrDefault(x => !KnownXattrNamespace(x.Key)) is { Key: { } odd })
            {
                throw new InvalidDataException($"tar entry '{RawFs.Display(RawFs.FromBytes(entry.Name))}' carries the extended attribute '{odd}', outside the user, trusted, security and system namespaces: the archive is damaged");
            }

            if (entry.Type != PaxType.Directory && entry.Name is [.., (byte)'/'])
            {
                throw new InvalidDataException($"tar entry '{RawFs.Display(RawFs.FromBytes(entry.Name))}' is a {entry.Type} with a folder's name (it ends in '/'): the archive is damaged");
            }

            var name = RawFs.FromBytes(entry.Name);
            if (select is not null)
            {
                if (select(name) is not { } chosen)
                {
                    // A folder left out whose children may be in (--include '*.pdf'): at a level, what it no longer lists is
                    // removed among the names that were restored, as when the whole folder is restored.
                    if (level && entry.Type == PaxType.Directory && entry.DumpDir is not null && place?.Invoke(name) is { } placed
                        && Inside(root, placed) is var folderPath && RawFs.TryLstat(folderPath, out var folderStatus, out _) && folderStatus.IsDirectory)
                    {
                        safe.Check(folderPath, placed);
                        var under = name.TrimEnd('/');
                        Purge(folderPath, entry, child => select(under + "/" + child) is not null);
                    }

                    continue; // its data is skipped by the reader
                }

                name = chosen;
            }

            var path = Inside(root, name);
            if (path == Path.TrimEndingDirectorySeparator(root) && entry.Type != PaxType.Directory)
            {
                // The destination itself may only be a folder: a symlink or file there would replace the staging folder.
                throw new BackupException($"refused: tar entry '{RawFs.Display(name)}' is a {entry.Type} where the destination folder itself is");
            }

            safe.Check(path, name);
            switch (entry.Type)
            {
                case PaxType.Directory:
                    if (path == Path.TrimEndingDirectorySeparator(root))
                    {
                        rootEntry = entry; // the destination's own mode and time, for the caller to apply
                    }
                    else
                    {
                        safe.CheckFolder(path, name, replace: level);
                        safe.Create(path);
                        directories.Add((path, entry));
                    }

                    if (level && entry.DumpDir is not null)
                    {
                        Purge(path, entry);
                    }

                    folders++;
                    break;
                case PaxType.File:
                    safe.Create(Path.GetDirectoryName(path)!);
                    // Synchronous on purpose: the bytes are produced ahead on other threads, and a thread-pool hop per
                    // small file costs more than the write.
                    var file = Posix.NewFile.TryCreateRaw(path);
                    if (file is null)
                    {
                        RemoveExisting(path); // the archive names it twice, a later level, or --force over an existing file
                        safe.Forget(path);
                        file = Posix.NewFile.TryCreateRaw(path) ?? throw new IOException($"cannot create {RawFs.Display(path)}: it keeps coming back");
                    }

                    using (file)
                    {
                        int n;
                        if (entry.Sparse is { } segments)
                        {
                            // Each data segment at its offset; the holes between are never written, so they stay unallocated.
                            foreach (var (offset, length) in segments)
                            {
                                file.SeekTo(offset);
                                for (var left = length; left > 0; left -= n)
                                {
                                    n = reader.Read(buffer.AsSpan(0, (int)Math.Min(buffer.Length, left)));
                                    file.Write(n > 0 ? buffer.AsSpan(0, n) : throw new BackupException($"tar entry {RawFs.Display(name)} ends inside its sparse data"));
                                }
                            }

                            file.Truncate(entry.Size);
                        }

                        while ((n = reader.Read(buffer)) > 0)
                        {
                            file.Write(buffer.AsSpan(0, n));
                        }

                        file.SetAttributes(entry.Xattrs, entry.AclAccess is { } acl ? PosixAcl.FromText(acl) : null);
                        file.Finish(asRoot, (int)entry.Uid, (int)entry.Gid, (uint)entry.Mode, entry.MTimeNs);
                    }

                    files++;
                    bytes += entry.Size;
                    break;
                case PaxType.HardLink:
                    var linked = RawFs.FromBytes(entry.LinkName);
                    linked = select is null ? linked
                        : select(linked) ?? throw new BackupException($"{RawFs.Display(name)} is a hard link to {RawFs.Display(linked)}, which the selection leaves out; include it too");
                    var target = Inside(root, linked);
                    safe.Check(target, linked);
                    if (!RawFs.TryLstat(target, out var linkedStatus, out _) || !linkedStatus.IsRegular)
                    {
                        // A hard link to a symlink would be a second symlink that the folder checks do not know of.
                        throw new BackupException($"refused: tar entry '{RawFs.Display(name)}' is a hard link to '{RawFs.Display(linked)}', which is not a file the archive restored before it");
                    }

                    safe.Create(Path.GetDirectoryName(path)!);
                    RemoveExisting(path);
                    safe.Forget(path);
                    RawFs.HardLink(target, path);
                    files++;
                    break;
                case PaxType.SymbolicLink:
                    safe.Create(Path.GetDirectoryName(path)!);
                    RemoveExisting(path);
                    safe.Forget(path);
                    RawFs.Symlink(RawFs.FromBytes(entry.LinkName), path);
                    safe.Forget(path); // a folder of that name checked before is a symlink now
                    if (asRoot)
                    {
                        RawFs.Lchown(path, (int)entry.Uid, (int)entry.Gid);
                    }

                    SetXattrs(path, entry);
                    RawFs.SetModified(path, entry.MTimeNs);
                    symlinks++;
                    break;
                case PaxType.Fifo or PaxType.CharacterDevice or PaxType.BlockDevice:
                    if (entry.Type != PaxType.Fifo && !asRoot)
                    {
                        throw new BackupException($"tar entry {RawFs.Display(name)} is a device node ({entry.Type}), which only root can make: restore as root, or leave it out with --include");
                    }

                    safe.Create(Path.GetDirectoryName(path)!);
                    RemoveExisting(path);
                    safe.Forget(path);
                    RawFs.MakeNode(path, entry.Type switch { PaxType.Fifo => 0x1000u, PaxType.CharacterDevice => 0x2000u, _ => 0x6000u },
                        (uint)entry.Mode, entry.DevMajor, entry.DevMinor);
                    safe.Forget(path);
                    if (asRoot)
                    {
                        RawFs.Lchown(path, (int)entry.Uid, (int)entry.Gid);
                    }

                    SetXattrs(path, entry);
                    RawFs.Chmod(path, entry.Mode); // past the umask
                    RawFs.SetModified(path, entry.MTimeNs);
                    specials++;
                    break;
                default:
                    throw new BackupException($"tar entry {RawFs.Display(name)} is a {entry.Type}, which backstop does not restore");
            }
        }

        if (!deferFolders)
        {
            ApplyFolders(directories);
        }

        return new TarExtraction(new Dictionary<string, long>
        {
            ["files"] = files, ["bytes"] = bytes, ["directories"] = folders, ["symlinks"] = symlinks, ["specials"] = specials,
        }, rootEntry, deferFolders ? directories : []);
    }

    /// <summary>Folders' owners, attributes, modes and times, deepest first (writing their content changed their times); a folder a later level removed is passed over.</summary>
    public static void ApplyFolders(IEnumerable<(string Path, PaxEntry Entry)> folders)
    {
        var asRoot = Environment.UserName == "root";
        foreach (var (path, entry) in folders.OrderByDescending(d => d.Path.Length))
        {
            if (RawFs.TryLstat(path, out var st, out _) && st.IsDirectory)
            {
                Apply(path, entry, asRoot);
            }
        }
    }

    /// <summary>
    /// Files (each name), bytes (a hard-linked file's once), symlinks and special files in a restored tree, as the
    /// capture counts the whole tree: what a chain restore compares with the snapshot's facts.
    /// </summary>
    public static Dictionary<string, long> Count(string folder)
    {
        long files = 0, bytes = 0, symlinks = 0, specials = 0;
        var linked = new HashSet<(ulong, ulong)>();
        var pending = new Stack<string>();
        pending.Push(RawFs.FromPath(folder));
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            var fd = RawFs.OpenAt(RawFs.AtFdcwd, dir, Posix.ORdonly | Posix.ODirectory | Posix.ONofollow);
            if (fd < 0)
            {
                throw new IOException($"cannot read the restored folder {RawFs.Display(dir)}: {System.Runtime.InteropServices.Marshal.GetLastPInvokeErrorMessage()}");
            }

            try
            {
                foreach (var name in RawFs.List(fd))
                {
                    if (!RawFs.TryLstatAt(fd, name, out var st, out var error))
                    {
                        throw new IOException($"cannot read {RawFs.Display(dir + "/" + name)}: {error}");
                    }

                    if (st.IsDirectory)
                    {
                        pending.Push(dir + "/" + name);
                    }
                    else if (st.IsRegular)
                    {
                        files++;
                        if (st.Links <= 1 || linked.Add((st.Device, st.Inode)))
                        {
                            bytes += st.Size;
                        }
                    }
                    else if (st.IsSymlink)
                    {
                        symlinks++;
                    }
                    else
                    {
                        specials++;
                    }
                }
            }
            finally
            {
                Posix.Close(fd);
            }
        }

        return new Dictionary<string, long> { ["files"] = files, ["bytes"] = bytes, ["symlinks"] = symlinks, ["specials"] = specials };
    }

    /// <summary>Applies the archive's entry for its top folder (a backup of '/') to the folder restored into.</summary>
    public static void ApplyRoot(string folder, PaxEntry? rootEntry)
    {
        if (rootEntry is not null)
        {
            Apply(RawFs.FromPath(folder), rootEntry, Environment.UserName == "root");
        }
    }

    /// <summary>Removes what a folder holds on disk that its dumpdir does not name (deleted or renamed since the level below).</summary>
    /// <param name="only">When set (a partial restore), only the names it accepts are removed: the others were never restored.</param>
    private static void Purge(string folder, PaxEntry entry, Func<string, bool>? only = null)
    {
        var names = entry.DumpDirNames().Select(n => RawFs.FromBytes(n)).ToHashSet(StringComparer.Ordinal);
        var fd = RawFs.OpenAt(RawFs.AtFdcwd, folder, Posix.ORdonly | Posix.ODirectory | Posix.ONofollow);
        if (fd < 0)
        {
            return;
        }

        List<string> present;
        try
        {
            present = RawFs.List(fd);
        }
        finally
        {
            Posix.Close(fd);
        }

        foreach (var name in present.Where(n => !names.Contains(n) && !n.StartsWith(Staging.Prefix, StringComparison.Ordinal) && (only is null || only(n))))
        {
            RawFs.RemoveTree(folder + "/" + name);
        }
    }

    private static void SetXattrs(string path, PaxEntry entry)
    {
        foreach (var (key, value) in entry.Xattrs)
        {
            RawFs.SetXattr(-1, path, key, value);
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
            return Core.Text.SafeNames.Inside(root, name, allowRoot: true); // the one containment check every restore path goes through
        }
        catch (Core.Text.PathOutsideException)
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
                if (RawFs.TryLstat(dir, out var st, out _) && st.IsSymlink)
                {
                    throw new BackupException($"refused: tar entry '{RawFs.Display(name)}' would be written through the symlink {RawFs.Display(dir)}");
                }

                dir = Path.GetDirectoryName(dir);
            }
        }

        /// <summary>
        /// A folder entry's own name must not already be something else: a symlink the archive made there would be
        /// followed by the folder's creation, its mode and time, and every entry under it.
        /// </summary>
        /// <param name="replace">A later level: what a lower level put there (a file or symlink since replaced by a folder) is removed.</param>
        public void CheckFolder(string path, string name, bool replace)
        {
            if (!_known.Contains(path) && RawFs.TryLstat(path, out var st, out _) && !st.IsDirectory)
            {
                if (replace)
                {
                    RawFs.RemoveTree(path); // a later level: a file or symlink the level below put where a folder is now
                    Forget(path);
                    return;
                }

                throw new BackupException(st.IsSymlink
                    ? $"refused: tar entry '{RawFs.Display(name)}' would make a folder of the symlink {RawFs.Display(path)} (writing through it)"
                    : $"refused: tar entry '{RawFs.Display(name)}' is a folder where the archive already put a file");
            }
        }

        /// <summary>Creates the folder (checked by <see cref="Check"/> beforehand) and remembers it and its parents.</summary>
        public void Create(string dir)
        {
            if (_known.Contains(dir))
            {
                return;
            }

            CreateAll(dir);
            for (var d = dir; d is not null && d.Length > _top.Length && _known.Add(d); d = Path.GetDirectoryName(d))
            {
            }
        }

        private void CreateAll(string dir)
        {
            if (_known.Contains(dir) || dir.Length <= _top.Length || (RawFs.TryLstat(dir, out var st, out _) && st.IsDirectory))
            {
                return;
            }

            CreateAll(Path.GetDirectoryName(dir)!);
            if (!RawFs.MakeDirectory(dir, 0x1ED) && RawFs.Errno != 17) // 0755; EEXIST: made meanwhile
            {
                throw new IOException($"cannot create the folder {RawFs.Display(dir)}: {System.Runtime.InteropServices.Marshal.GetLastPInvokeErrorMessage()}");
            }
        }

        public void Forget(string path) => _known.RemoveWhere(k => k == path || k.StartsWith(path + "/", StringComparison.Ordinal));
    }

    /// <summary>Whatever a name is (a file, a symlink, a folder a later level replaced): removed, never followed.</summary>
    private static void RemoveExisting(string path) => RawFs.RemoveTree(path);

    private static void Apply(string path, PaxEntry entry, bool asRoot)
    {
        if (asRoot)
        {
            RawFs.Lchown(path, (int)entry.Uid, (int)entry.Gid);
        }

        SetXattrs(path, entry);
        if (entry.AclAccess is { } access)
        {
            RawFs.SetXattr(-1, path, PosixAcl.AccessXattr, PosixAcl.FromText(access));
        }

        if (entry.AclDefault is { } defaults)
        {
            RawFs.SetXattr(-1, path, PosixAcl.DefaultXattr, PosixAcl.FromText(defaults));
        }

        RawFs.Chmod(path, entry.Mode);
        RawFs.SetModified(path, entry.MTimeNs);
    }
}
