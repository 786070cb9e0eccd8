using System.Runtime.InteropServices;

namespace Backstop.Core.FileSystem;

/// <summary>The few libc calls .NET does not expose: flock, directory fsync, lstat with inode and owner, user names, rename, lean file writes.</summary>
public static partial class Posix
{
    internal const int LockEx = 2;
    internal const int LockNb = 4;
    internal const int LockUn = 8;
    public const int OCreat = 0x40;
    public const int ORdonly = 0x0;
    internal const int ORdwr = 0x2;
    public const int OCloexec = 0x80000;

    /// <summary>O_DIRECTORY and O_NOFOLLOW differ by architecture: arm and arm64 have 040000 and 0100000, x86_64 and the
    /// generic ABI (riscv64, loongarch64) 0200000 and 0400000. The wrong one on arm64 is O_DIRECT or O_LARGEFILE.</summary>
    public static readonly int ODirectory = IsArm ? 0x4000 : 0x10000;

    public static readonly int ONofollow = IsArm ? 0x8000 : 0x20000;

    private static bool IsArm => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm or Architecture.Armv6;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    internal static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(SafeHandle fd, long offset, long length, int advice);

    /// <summary>
    /// Drops the file's clean pages from the page cache (POSIX_FADV_DONTNEED, 4 on every Linux architecture), so the
    /// next read comes from the disk: a read-back then proves what the disk holds, not what memory still has.
    /// Best effort: a file system that ignores the advice reads from the cache as before.
    /// </summary>
    public static void DropCachedPages(SafeHandle fd) => _ = PosixFadvise(fd, 0, 0, 4);

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeHandle fd, long offset, long count, uint flags);

    /// <summary>
    /// Starts writing a range of a file to disk without waiting (SYNC_FILE_RANGE_WRITE), so that the final fsync
    /// has little left to do. Advisory: an error here is left for fsync to report.
    /// </summary>
    public static void StartWriteback(SafeHandle fd, long offset, long count) => SyncFileRange(fd, offset, count, 2);

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    internal static partial int Flock(int fd, int operation);

    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    internal static partial int Ftruncate(int fd, long length);

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int LstatNative(string path, byte* buffer);

    [LibraryImport("libc", EntryPoint = "__lxstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int LxstatNative(int version, string path, byte* buffer);

    private static bool _noLstatSymbol;

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static unsafe partial int FstatNative(int fd, byte* buffer);

    [LibraryImport("libc", EntryPoint = "__fxstat", SetLastError = true)]
    private static unsafe partial int FxstatNative(int version, int fd, byte* buffer);

    private static bool _noFstatSymbol;

    /// <summary>
    /// mknod(2): a FIFO (type 0x1000) or a character or block device node (0x2000, 0x6000; root only) with its mode
    /// and device number.
    /// </summary>
    public static void MakeNode(string path, uint type, uint mode, int major, int minor) => RawFs.MakeNode(RawFs.FromPath(path), type, mode, major, minor);

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenatNative(int dirfd, string path, int flags, int mode);

    public const int ONonblock = 0x800;

    /// <summary>openat(2) relative to a directory descriptor: the directory is pinned, whatever its path becomes. -1 with errno on failure.</summary>
    public static int OpenAt(int directory, string name, int flags) => OpenatNative(directory, name, flags | OCloexec, 0);

    /// <summary>fstat(2) of an open descriptor.</summary>
    public static unsafe bool TryFstat(int fd, out FileStatus status, out string error) =>
        Stat(b => FstatNative(fd, b), b => FxstatNative(StatVersion, fd, b), ref _noFstatSymbol, out status, out error);

    /// <summary>The <c>__*xstat</c> version argument of glibc before 2.33 (which exports only those): 1 on x86_64, else 0.</summary>
    private static int StatVersion => RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 1 : 0;

    private unsafe delegate int StatCall(byte* buffer);

    /// <summary>One stat call into a buffer: the plain symbol, or its <c>__*xstat</c> form where glibc lacks it (remembered).</summary>
    private static unsafe bool Stat(StatCall plain, StatCall legacy, ref bool noSymbol, out FileStatus status, out string error)
    {
        var buffer = stackalloc byte[256];
        int rc;
        if (!noSymbol)
        {
            try
            {
                rc = plain(buffer);
            }
            catch (EntryPointNotFoundException)
            {
                noSymbol = true;
                rc = legacy(buffer);
            }
        }
        else
        {
            rc = legacy(buffer);
        }

        return ParseStat(rc, buffer, out status, out error);
    }

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LchownNative(string path, int uid, int gid);

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LinkNative(string existing, string created);

    /// <summary>Sets the owner of a path without following a symlink.</summary>
    public static void Lchown(string path, int uid, int gid)
    {
        if (LchownNative(path, uid, gid) != 0)
        {
            throw new IOException($"cannot set the owner of {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>A hard link: <paramref name="created"/> becomes another name of <paramref name="existing"/>.</summary>
    public static void HardLink(string existing, string created)
    {
        if (LinkNative(existing, created) != 0)
        {
            throw new IOException($"cannot link {created} to {existing}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameNative(string from, string to);

    /// <summary>rename(2): atomic, replaces a file or symlink at <paramref name="to"/>, never copies.</summary>
    public static void Rename(string from, string to)
    {
        if (RenameNative(from, to) != 0)
        {
            throw new IOException($"cannot move {from} to {to}: {Marshal.GetLastPInvokeErrorMessage()}", Marshal.GetLastPInvokeError());
        }
    }

    internal const int OWronly = 0x1;
    internal const int OExcl = 0x80;
    internal const int Eexist = 17;

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint WriteNative(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "fchown", SetLastError = true)]
    private static partial int FchownNative(int fd, int uid, int gid);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    private static partial int FchmodNative(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "futimens", SetLastError = true)]
    private static unsafe partial int FutimensNative(int fd, long* times);

    /// <summary>
    /// A file being restored: created new (never over an existing name, never through a symlink) and written with
    /// plain write(2) calls; owner, mode and time go through the descriptor. Fewer system calls per file than a
    /// FileStream (no lock, no position tracking), which counts when a restore writes many small files.
    /// </summary>
    public sealed class NewFile : IDisposable
    {
        private readonly string _path;
        private int _fd;

        private NewFile(string path, int fd) => (_path, _fd) = (path, fd);

        /// <summary>Creates <paramref name="path"/> (mode 0600 until <see cref="Finish(bool, int, int, uint, DateTimeOffset)"/>); null when the name exists.</summary>
        public static NewFile? TryCreate(string path)
        {
            var fd = Open(path, OWronly | OCreat | OExcl | ONofollow | OCloexec, 0x180);
            if (fd >= 0)
            {
                return new NewFile(path, fd);
            }

            return Marshal.GetLastPInvokeError() == Eexist
                ? null
                : throw new IOException($"cannot create {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        /// <summary><see cref="TryCreate"/> of a raw path (<see cref="RawFs"/>): a name that is not UTF-8 is created as its bytes.</summary>
        public static NewFile? TryCreateRaw(string raw)
        {
            var fd = RawFs.OpenAt(RawFs.AtFdcwd, raw, OWronly | OCreat | OExcl | ONofollow, 0x180);
            if (fd >= 0)
            {
                return new NewFile(RawFs.Display(raw), fd);
            }

            return Marshal.GetLastPInvokeError() == Eexist
                ? null
                : throw new IOException($"cannot create {RawFs.Display(raw)}: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        /// <summary>Moves to <paramref name="offset"/> (past a hole in a sparse file: what is skipped stays unallocated).</summary>
        public void SeekTo(long offset)
        {
            if (RawFs.Seek(_fd, offset, RawFs.SeekSet) < 0)
            {
                throw new IOException($"cannot seek in {_path}: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }

        /// <summary>Sets the file's size (a sparse file that ends in a hole).</summary>
        public void Truncate(long size)
        {
            if (Ftruncate(_fd, size) != 0)
            {
                throw new IOException($"cannot set the size of {_path}: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }

        private IReadOnlyList<KeyValuePair<string, byte[]>> _xattrs = [];
        private byte[]? _acl;

        /// <summary>
        /// Extended attributes and the access ACL (kernel form) that <see cref="Finish(bool, int, int, uint, DateTimeOffset)"/> sets through the descriptor,
        /// after the owner: a change of owner clears <c>security.capability</c>.
        /// </summary>
        public void SetAttributes(IReadOnlyList<KeyValuePair<string, byte[]>> xattrs, byte[]? acl) => (_xattrs, _acl) = (xattrs, acl);

        private void ApplyAttributes()
        {
            foreach (var (key, value) in _xattrs)
            {
                RawFs.SetXattr(_fd, null, key, value);
            }

            if (_acl is not null)
            {
                RawFs.SetXattr(_fd, null, "system.posix_acl_access", _acl);
            }
        }


        public unsafe void Write(ReadOnlySpan<byte> data)
        {
            fixed (byte* start = data)
            {
                var done = 0;
                while (done < data.Length)
                {
                    var n = WriteNative(_fd, start + done, data.Length - done);
                    if (n < 0)
                    {
                        if (Marshal.GetLastPInvokeError() == 4)
                        {
                            continue; // EINTR
                        }

                        throw new IOException($"cannot write {_path}: {Marshal.GetLastPInvokeErrorMessage()}");
                    }

                    done += (int)n;
                }
            }
        }

        /// <summary>Sets the owner (when <paramref name="owner"/>), the mode and the modification time (to the nanosecond), and closes.</summary>
        public void Finish(bool owner, int uid, int gid, uint mode, DateTimeOffset modified) =>
            Finish(owner, uid, gid, mode, (modified.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100);

        /// <summary>The same, with the modification time in nanoseconds since the epoch.</summary>
        public unsafe void Finish(bool owner, int uid, int gid, uint mode, long mtimeNs)
        {
            if (owner && FchownNative(_fd, uid, gid) != 0)
            {
                throw new IOException($"cannot set the owner of {_path}: {Marshal.GetLastPInvokeErrorMessage()}");
            }

            if (FchmodNative(_fd, mode & 0xFFF) != 0)
            {
                throw new IOException($"cannot set the mode of {_path}: {Marshal.GetLastPInvokeErrorMessage()}");
            }

            ApplyAttributes();
            var times = stackalloc long[4];
            times[0] = 0;
            times[1] = (1L << 30) - 2; // UTIME_OMIT: the access time is left as it is
            times[2] = Math.DivRem(mtimeNs, 1_000_000_000L, out var rest);
            times[3] = rest;
            if (times[3] < 0)
            {
                times[2] -= 1;
                times[3] += 1_000_000_000;
            }

            if (FutimensNative(_fd, times) != 0)
            {
                throw new IOException($"cannot set the time of {_path}: {Marshal.GetLastPInvokeErrorMessage()}");
            }

            var rc = Close(_fd);
            _fd = -1;
            if (rc != 0)
            {
                throw new IOException($"cannot write {_path}: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }

        /// <summary>Closes the descriptor when <see cref="Finish(bool, int, int, uint, DateTimeOffset)"/> was not reached (an error on the way).</summary>
        public void Dispose()
        {
            if (_fd >= 0)
            {
                Close(_fd);
                _fd = -1;
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "getpwuid")]
    private static partial nint Getpwuid(uint uid);

    [LibraryImport("libc", EntryPoint = "getgrgid")]
    private static partial nint Getgrgid(uint gid);

    /// <summary>fsync(2) on a directory, so that a rename inside it is durable.</summary>
    public static void FsyncDirectory(string path)
    {
        var fd = Open(path, ORdonly | ODirectory | OCloexec, 0);
        if (fd < 0)
        {
            throw new IOException($"cannot open {path} to sync it: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of {path} failed: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }
        finally
        {
            Close(fd);
        }
    }

    /// <summary>lstat(2): the link itself, not what it points to. Returns false with the error when it fails.</summary>
    public static unsafe bool TryLstat(string path, out FileStatus status, out string error) =>
        Stat(b => LstatNative(path, b), b => LxstatNative(StatVersion, path, b), ref _noLstatSymbol, out status, out error);

    /// <summary>A struct stat as this architecture lays it out.</summary>
    internal static unsafe bool ParseStat(int rc, byte* buffer, out FileStatus status, out string error)
    {
        if (rc != 0)
        {
            status = default;
            error = Marshal.GetLastPInvokeErrorMessage();
            return false;
        }

        error = "";
        status = RuntimeInformation.ProcessArchitecture switch
        {
            // x86_64: dev 8, ino 8, nlink 8, mode 4, uid 4, gid 4, pad 4, rdev 8, size 8, blksize 8, blocks 8, atim 16, mtim 16
            Architecture.X64 => new FileStatus(
                *(ulong*)(buffer + 0), *(ulong*)(buffer + 8), *(ulong*)(buffer + 16), *(uint*)(buffer + 24),
                *(uint*)(buffer + 28), *(uint*)(buffer + 32), *(long*)(buffer + 48),
                *(long*)(buffer + 88), *(long*)(buffer + 96))
            {
                Rdev = *(ulong*)(buffer + 40), Blocks = *(long*)(buffer + 64), CtimeSeconds = *(long*)(buffer + 104), CtimeNanos = *(long*)(buffer + 112),
            },
            // generic (arm64, riscv64): dev 8, ino 8, mode 4, nlink 4, uid 4, gid 4, rdev 8, pad 8, size 8, blksize 4, pad 4, blocks 8, atim 16, mtim 16
            Architecture.Arm64 or Architecture.RiscV64 or Architecture.LoongArch64 => new FileStatus(
                *(ulong*)(buffer + 0), *(ulong*)(buffer + 8), *(uint*)(buffer + 20), *(uint*)(buffer + 16),
                *(uint*)(buffer + 24), *(uint*)(buffer + 28), *(long*)(buffer + 48),
                *(long*)(buffer + 88), *(long*)(buffer + 96))
            {
                Rdev = *(ulong*)(buffer + 32), Blocks = *(long*)(buffer + 64), CtimeSeconds = *(long*)(buffer + 104), CtimeNanos = *(long*)(buffer + 112),
            },
            _ => throw new PlatformNotSupportedException($"lstat layout for {RuntimeInformation.ProcessArchitecture} is not known"),
        };
        return true;
    }

    private static readonly Dictionary<uint, string> UserNames = [];
    private static readonly Dictionary<uint, string> GroupNames = [];

    public static string UserName(uint uid) => Name(UserNames, uid, Getpwuid);

    public static string GroupName(uint gid) => Name(GroupNames, gid, Getgrgid);

    private static string Name(Dictionary<uint, string> cache, uint id, Func<uint, nint> lookup)
    {
        lock (cache)
        {
            if (!cache.TryGetValue(id, out var name))
            {
                var entry = lookup(id);
                // struct passwd and struct group both start with a char* name.
                name = entry == 0 ? "" : Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(entry)) ?? "";
                cache[id] = name;
            }

            return name;
        }
    }
}

/// <summary>What lstat says of one file system entry.</summary>
public readonly record struct FileStatus(ulong Device, ulong Inode, ulong Links, uint Mode, uint Uid, uint Gid, long Size, long MtimeSeconds, long MtimeNanos)
{
    /// <summary>A device node's own device number (st_rdev).</summary>
    public ulong Rdev { get; init; }

    /// <summary>512-byte blocks allocated (less than the size for a sparse file).</summary>
    public long Blocks { get; init; }

    /// <summary>The last change of the inode (content, mode, owner, links): what a rename or chmod moves and touch cannot set back.</summary>
    public long CtimeSeconds { get; init; }

    public long CtimeNanos { get; init; }

    public long MtimeNs => MtimeSeconds * 1_000_000_000L + MtimeNanos;

    public long CtimeNs => CtimeSeconds * 1_000_000_000L + CtimeNanos;

    /// <summary>The major number of <see cref="Rdev"/> (glibc's gnu_dev_major).</summary>
    public int RdevMajor => (int)(((Rdev >> 8) & 0xfff) | ((Rdev >> 32) & ~0xfffUL));

    /// <summary>The minor number of <see cref="Rdev"/> (glibc's gnu_dev_minor).</summary>
    public int RdevMinor => (int)((Rdev & 0xff) | ((Rdev >> 12) & ~0xffUL));

    public uint Type => Mode & 0xF000;

    public bool IsRegular => Type == 0x8000;

    public bool IsDirectory => Type == 0x4000;

    public bool IsSymlink => Type == 0xA000;

    public DateTimeOffset Modified => DateTimeOffset.FromUnixTimeSeconds(MtimeSeconds).AddTicks(MtimeNanos / 100);
}

/// <summary>Users by name, and whether this process runs as root (drills run scratch servers as an unprivileged user then).</summary>
public static partial class PosixUsers
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint Geteuid();

    [LibraryImport("libc", EntryPoint = "getpwnam", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint Getpwnam(string name);

    public static bool IsRoot => Geteuid() == 0;

    public static uint EffectiveUid => Geteuid();

    [LibraryImport("libc", EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MkdirNative(string path, int mode);

    /// <summary>mkdir(2): false when the path exists (as anything) or cannot be made; never adopts an existing folder.</summary>
    public static bool MakeDirectory(string path, int mode) => MkdirNative(path, mode) == 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);

    /// <summary>Sends a signal (SIGTERM 15, SIGINT 2…) to a process; false when it is gone.</summary>
    public static bool Signal(int pid, int signal) => KillNative(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "getgrnam", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint Getgrnam(string name);

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint UmaskNative(uint mask);

    /// <summary>umask(2): the mode bits that new files and folders never get; returns the previous mask.</summary>
    public static int SetUmask(int mask) => (int)UmaskNative((uint)mask);

    /// <summary>The gid of a group, or null when no such group exists. struct group: two char*, then gid_t.</summary>
    public static int? GroupId(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var entry = Getgrnam(name);
        return entry == 0 ? null : Marshal.ReadInt32(entry, 2 * IntPtr.Size);
    }

    /// <summary>The uid and gid of a user, or null when no such user exists. struct passwd: two char*, then uid_t and gid_t.</summary>
    public static (int Uid, int Gid)? Lookup(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var entry = Getpwnam(name);
        if (entry == 0)
        {
            return null;
        }

        var offset = 2 * IntPtr.Size;
        return (Marshal.ReadInt32(entry, offset), Marshal.ReadInt32(entry, offset + 4));
    }
}
