using Backstop.Core.Plugins;
using Backstop.Core.Tar;
using Backstop.Core.FileSystem;

namespace Backstop.Sources.Trees;

/// <summary>
/// Walks the paths depth-first in walk order (<see cref="Listing.Compare"/>) and writes each folder (with its
/// GNU.dumpdir: every name in it) and each entry that is new or changed since the parent's listing (every entry
/// at level 0). Names are raw (<see cref="RawFs"/>): stored as the bytes they are.
/// </summary>
internal sealed class TreeWalker(string source, IReadOnlyList<Glob> exclude, ICaptureSink sink, Listing.Reader? previous, Listing.Writer? listing,
    CancellationToken cancellationToken)
{
    private readonly Dictionary<(ulong, ulong), string> _hardLinks = [];
    private readonly HashSet<(ulong, ulong)> _linked = [];
    private long _files;
    private long _bytes;
    private long _directories;
    private long _symlinks;
    private long _specials;
    private long _changedFiles;
    private long _changedBytes;

    /// <summary>Entries written to the listing.</summary>
    public long Listed { get; private set; }

    public Dictionary<string, long> Facts() => new()
    {
        ["files"] = _files,
        ["bytes"] = _bytes,
        ["directories"] = _directories,
        ["symlinks"] = _symlinks,
        ["specials"] = _specials,
        ["changed_files"] = _changedFiles,
        ["changed_bytes"] = _changedBytes,
    };

    /// <summary>One child of a folder, as listed and stat'ed before the folder's entry is written.</summary>
    /// <param name="Before">The entry as the parent's listing has it (a level), or null when it is new or this is a full.</param>
    private sealed record Child(string Name, string Path, FileStatus Status, bool Changed, Listing.Stat? Before = null);

    public void WalkAll(PaxWriter tar, IReadOnlyList<string> roots)
    {
        // Roots that are files first (the listing's "" folder), then folders, each group in walk order.
        var stated = new List<(string Raw, string Path, FileStatus St)>();
        foreach (var root in roots)
        {
            if (!Posix.TryLstat(root, out var st, out var error))
            {
                sink.Warn($"{root} vanished before it was read ({error})");
                continue;
            }

            stated.Add((RawFs.FromPath(root), root, st));
        }

        var files = stated.Where(r => !r.St.IsDirectory).OrderBy(r => r.Raw, Comparer<string>.Create(Listing.Compare)).ToList();
        if (files.Count > 0)
        {
            var known = previous?.Folder("") ?? [];
            listing?.Folder("");
            foreach (var (raw, _, st) in files)
            {
                listing?.Entry(raw, ListedStat(st));
                Listed++;
            }

            foreach (var (raw, _, st) in files)
            {
                Visit(tar, null, new Child(raw, raw, st, IsChanged(known, raw, st), known.TryGetValue(raw, out var was) ? was : null));
            }
        }

        foreach (var (raw, path, st) in stated.Where(r => r.St.IsDirectory).OrderBy(r => r.Raw, Comparer<string>.Create(Listing.Compare)))
        {
            WalkFolder(tar, raw, path, st);
        }
    }

    private static Listing.Stat ListedStat(FileStatus st) => Listing.Stat.Listed(st, (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100);

    private bool IsChanged(Dictionary<string, Listing.Stat> known, string name, FileStatus st)
    {
        if (previous is null)
        {
            return true;
        }

        return !known.TryGetValue(name, out var before) || before != Listing.Stat.Of(st);
    }

    private void WalkFolder(PaxWriter tar, string raw, string path, FileStatus rootStatus)
    {
        var top = PinnedDirectory.OpenRoot(path, rootStatus, out var problem, out _);
        if (top is null)
        {
            throw Unreadable(raw, problem ?? "it cannot be opened");
        }

        Child[] first;
        try
        {
            first = Enter(tar, top, rootStatus);
        }
        catch
        {
            top.Dispose();
            throw;
        }

        var stack = new Stack<(PinnedDirectory Folder, Child[] Children, int Next)>();
        try
        {
            stack.Push((top, first, 0));
            while (stack.Count > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var (folder, children, next) = stack.Pop();
                if (next == children.Length)
                {
                    folder.Dispose();
                    continue;
                }

                stack.Push((folder, children, next + 1));
                var child = children[next];
                if (!child.Status.IsDirectory)
                {
                    Visit(tar, folder, child);
                    continue;
                }

                var opened = folder.OpenChild(child.Name, child.Status, out problem, out var kind);
                if (opened is null)
                {
                    if (kind == OpenProblem.Unreadable)
                    {
                        throw Unreadable(child.Path, problem ?? "it cannot be opened");
                    }

                    // Gone, or swapped for a symlink (or anything else) since it was listed: never followed.
                    sink.Warn(kind == OpenProblem.Vanished ? $"{Show(child.Path)}/ vanished before it was read" : $"{Show(child.Path)}/ was not read: {problem}; it is not in this backup");
                    continue;
                }

                Child[] inner;
                try
                {
                    inner = Enter(tar, opened, child.Status);
                }
                catch
                {
                    opened.Dispose();
                    throw;
                }

                stack.Push((opened, inner, 0));
            }
        }
        finally
        {
            foreach (var (folder, _, _) in stack)
            {
                folder.Dispose();
            }
        }
    }

    /// <summary>Lists a folder, stats its children, and writes the folder's entry with its dumpdir and listing.</summary>
    private Child[] Enter(PaxWriter tar, PinnedDirectory folder, FileStatus st)
    {
        List<string> names;
        try
        {
            names = folder.Names();
        }
        catch (DirectoryNotFoundException)
        {
            sink.Warn($"{Show(folder.Path)}/ vanished while it was read");
            names = [];
        }
        catch (IOException e) when (e.InnerException is UnauthorizedAccessException)
        {
            throw Unreadable(folder.Path, e.Message);
        }

        var known = previous?.Folder(folder.Path) ?? [];
        listing?.Folder(folder.Path);
        var children = new List<Child>(names.Count);
        var dumpdir = new MemoryStream();
        foreach (var name in names)
        {
            var path = folder.Combine(name);
            if (exclude.Count > 0 && exclude.Any(g => g.Matches(RawFs.Display(path))))
            {
                continue;
            }

            if (!folder.TryLstat(name, out var cst, out var error))
            {
                sink.Warn($"{Show(path)} vanished before it was read ({error})");
                continue;
            }

            if (!cst.IsDirectory && !cst.IsRegular && !cst.IsSymlink && cst.Type is not (0x1000 or 0x2000 or 0x6000))
            {
                sink.Warn($"{Show(path)} is a {TypeName(cst)}, which is not backed up (tar has no form for it)");
                continue;
            }

            var child = new Child(name, path, cst, !cst.IsDirectory && IsChanged(known, name, cst), known.TryGetValue(name, out var was) ? was : null);
            children.Add(child);
            dumpdir.WriteByte((byte)(cst.IsDirectory ? 'D' : child.Changed ? 'Y' : 'N'));
            dumpdir.Write(RawFs.Bytes(name));
            dumpdir.WriteByte(0);
        }

        dumpdir.WriteByte(0);

        // The folder's entries right under its own record: its subfolders' records come later, as the walk reaches them.
        foreach (var child in children.Where(c => !c.Status.IsDirectory))
        {
            listing?.Entry(child.Name, ListedStat(child.Status));
            Listed++;
        }

        var xattrs = Attributes(folder.Descriptor, null, folder.Path, out var access, out var defaults);
        tar.Write(Entry(PaxType.Directory, EntryName(folder.Path), st) with { DumpDir = dumpdir.ToArray(), Xattrs = xattrs, AclAccess = access, AclDefault = defaults });
        _directories++;
        return [.. children];
    }

    private static string EntryName(string raw) => raw.TrimStart('/') is { Length: > 0 } name ? name : ".";

    private static string Show(string raw) => RawFs.Display(raw);

    /// <summary>A symlink, a regular file or a special file, in <paramref name="folder"/> (null: a root given by its path).</summary>
    private void Visit(PaxWriter tar, PinnedDirectory? folder, Child child)
    {
        var st = child.Status;
        if (st.IsRegular)
        {
            if (child.Changed && !WriteFile(tar, folder, child))
            {
                // Gone or replaced since it was listed, after its folder's entry named it: a restore keeps what the
                // level below holds under that name, so the tree's facts count that copy (or nothing, if it is new).
                if (child.Before is { } below && (below.Mode & 0xF000) == 0x8000)
                {
                    sink.Warn($"{Show(child.Path)}: this snapshot restores the copy the level below holds ({below.Size} bytes)");
                    _files++;
                    _bytes += below.Size;
                }

                return;
            }

            _files++;
            if (st.Links <= 1 || _linked.Add((st.Device, st.Inode)))
            {
                _bytes += st.Size; // a hard link's content counts once, as the tar holds it once
            }

            return;
        }

        if (st.IsSymlink)
        {
            _symlinks++;
        }
        else
        {
            _specials++;
        }

        if (!child.Changed)
        {
            return;
        }

        var xattrs = folder is null ? RawFs.Xattrs(-1, child.Path) : folder.Xattrs(child.Name);
        if (st.IsSymlink)
        {
            var target = folder is null ? RawFs.ReadLinkAt(RawFs.AtFdcwd, child.Path) ?? "" : folder.LinkTarget(child.Name);
            tar.Write(Entry(PaxType.SymbolicLink, EntryName(child.Path), st) with { LinkName = RawFs.Bytes(target), Xattrs = xattrs });
            return;
        }

        // A FIFO, a character or a block device: its name, mode, owner and device number (no data), as GNU tar keeps them.
        var special = Entry(st.Type switch { 0x1000 => PaxType.Fifo, 0x2000 => PaxType.CharacterDevice, _ => PaxType.BlockDevice }, EntryName(child.Path), st)
            with { Xattrs = xattrs };
        tar.Write(st.Type == 0x1000 ? special : special with { DevMajor = st.RdevMajor, DevMinor = st.RdevMinor });
    }

    /// <summary>Stores a changed file; false when it was gone or replaced when opened (a warning, not in this backup).</summary>
    private bool WriteFile(PaxWriter tar, PinnedDirectory? folder, Child child)
    {
        var st = child.Status;
        var entryName = EntryName(child.Path);
        if (st.Links > 1 && _hardLinks.TryGetValue((st.Device, st.Inode), out var first))
        {
            tar.Write(Entry(PaxType.HardLink, entryName, st) with { LinkName = RawFs.Bytes(first) });
            _changedFiles++;
            return true;
        }

        var handle = folder is not null
            ? folder.OpenFile(child.Name, st, out var problem, out var kind)
            : PinnedDirectory.OpenFile(RawFs.OpenAt(RawFs.AtFdcwd, child.Path, Posix.ORdonly | Posix.ONofollow | Posix.ONonblock), st, out problem, out kind);
        switch (kind)
        {
            case OpenProblem.Vanished:
                sink.Warn($"{Show(child.Path)} vanished before it was read");
                return false;
            case OpenProblem.Replaced:
                // Swapped for a symlink, a FIFO or another file since it was listed: never followed, never waited on.
                sink.Warn($"{Show(child.Path)} was not read: {problem}; it is not in this backup");
                return false;
            case OpenProblem.Unreadable:
                throw Unreadable(child.Path, problem ?? "it cannot be opened");
        }

        using (handle)
        {
            var fd = (int)handle!.DangerousGetHandle();
            var xattrs = Attributes(fd, null, child.Path, out var access, out _);
            var entry = Entry(PaxType.File, entryName, st) with { Size = st.Size, Xattrs = xattrs, AclAccess = access };

            // Fewer blocks than its size: a sparse file, whose holes are not stored (GNU tar's sparse format 1.0).
            var segments = st.Blocks * 512 < st.Size && st.Size >= 64 << 10 ? RawFs.DataSegments(fd, st.Size) : null;
            using Stream stream = segments is null ? new FileStream(handle, FileAccess.Read, bufferSize: 0) : new SparseDataStream(handle, segments);
            using var data = new FixedLengthStream(stream, segments?.Sum(x => x.Length) ?? st.Size);
            try
            {
                tar.Write(entry with { Sparse = segments }, data);
                _ = data.Read(new byte[1]); // past the size: finds a file that grew
            }
            catch (SourceReadException e)
            {
                throw new BackupException($"source '{source}': reading {Show(child.Path)} failed ({e.Message}): the disk or share under it reports an error; " +
                                          "check it (dmesg, smartctl) and run again. A file that cannot be read is never left out silently");
            }

            if (data.Shrank || data.Grew)
            {
                sink.Warn($"{Show(child.Path)} {(data.Shrank ? "shrank" : "grew")} while it was read; the copy holds its first {st.Size} bytes");
            }
            else if (Posix.TryFstat(fd, out var after, out _) && (after.MtimeNs != st.MtimeNs || after.Size != st.Size))
            {
                sink.Warn($"{Show(child.Path)} changed while it was read; the copy may mix old and new content");
            }
        }

        if (st.Links > 1)
        {
            _hardLinks[(st.Device, st.Inode)] = entryName;
        }

        _changedFiles++;
        _changedBytes += st.Size;
        return true;
    }

    /// <summary>
    /// The extended attributes of an open file or folder (every namespace the process can read: user, trusted and
    /// security when root), with the POSIX ACLs taken out into their text form, as GNU tar stores them.
    /// </summary>
    private List<KeyValuePair<string, byte[]>> Attributes(int fd, string? raw, string path, out string? access, out string? defaults)
    {
        access = defaults = null;
        List<KeyValuePair<string, byte[]>> all;
        try
        {
            all = RawFs.Xattrs(fd, raw);
        }
        catch (IOException e)
        {
            throw Unreadable(path, e.Message);
        }

        if (all.Count == 0)
        {
            return all;
        }

        var kept = new List<KeyValuePair<string, byte[]>>(all.Count);
        foreach (var (key, value) in all)
        {
            try
            {
                switch (key)
                {
                    case PosixAcl.AccessXattr:
                        access = PosixAcl.ToText(value);
                        continue;
                    case PosixAcl.DefaultXattr:
                        defaults = PosixAcl.ToText(value);
                        continue;
                }
            }
            catch (FormatException e)
            {
                sink.Warn($"{Show(path)}: its ACL {key} is not read ({e.Message}); it is not in this backup");
                continue;
            }

            kept.Add(new(key, value));
        }

        return kept;
    }

    private BackupException Unreadable(string path, string why) =>
        new($"source '{source}': cannot read {Show(path)} ({why}); fix its permissions or add it to 'exclude'");

    private static PaxEntry Entry(PaxType type, string rawName, FileStatus st) => new()
    {
        Type = type,
        Name = RawFs.Bytes(rawName),
        Mode = (int)(st.Mode & 0xFFF),
        Uid = st.Uid,
        Gid = st.Gid,
        UserName = Posix.UserName(st.Uid),
        GroupName = Posix.GroupName(st.Gid),
        MTimeNs = st.MtimeNs,
    };

    private static string TypeName(FileStatus st) => st.Type switch
    {
        0xC000 => "socket",
        0x1000 => "named pipe",
        0x2000 => "character device",
        0x6000 => "block device",
        _ => "special file",
    };
}
