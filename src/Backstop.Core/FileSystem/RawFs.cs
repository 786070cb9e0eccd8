using System.Runtime.InteropServices;
using System.Text;

namespace Backstop.Core.FileSystem;

/// <summary>
/// File-system calls on names as the bytes the kernel holds. A Linux name is any bytes but '/' and NUL; .NET decodes
/// names as UTF-8 and cannot open one that is not (an old Latin-1 name from a share). Here a path is a "raw" string
/// whose every char is one byte (Latin-1 maps bytes 0–255 to chars 0–255 one to one), so '/' and '.' keep their
/// meaning and string operations work, and each call hands the kernel exactly those bytes. <see cref="Display"/>
/// gives the UTF-8 reading a person sees.
/// </summary>
public static unsafe partial class RawFs
{
    public const int AtFdcwd = -100;
    public const int AtSymlinkNofollow = 0x100;

    /// <summary>The raw form of a name given as bytes.</summary>
    public static string FromBytes(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    /// <summary>The raw form of an ordinary (UTF-8) .NET path.</summary>
    public static string FromPath(string path) => IsAscii(path) ? path : FromBytes(Encoding.UTF8.GetBytes(path));

    /// <summary>The bytes a raw string stands for.</summary>
    public static byte[] Bytes(string raw) => Encoding.Latin1.GetBytes(raw);

    /// <summary>How a person reads a raw name: its bytes as UTF-8 (an invalid byte shows as U+FFFD).</summary>
    public static string Display(string raw) => IsAscii(raw) ? raw : Encoding.UTF8.GetString(Bytes(raw));

    /// <summary>Whether a raw name is also a valid .NET path (its bytes are UTF-8).</summary>
    public static bool IsUtf8(string raw)
    {
        if (IsAscii(raw))
        {
            return true;
        }

        try
        {
            _ = new UTF8Encoding(false, true).GetString(Bytes(raw));
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    private static bool IsAscii(string s) => System.Text.Ascii.IsValid(s);

    private static byte[] Z(string raw)
    {
        var bytes = new byte[raw.Length + 1];
        for (var i = 0; i < raw.Length; i++)
        {
            bytes[i] = raw[i] <= 0xFF ? (byte)raw[i] : throw new ArgumentException("not a raw path (a char above 0xFF)", nameof(raw));
        }

        return bytes;
    }

    private static string Error() => Marshal.GetLastPInvokeErrorMessage();

    public static int Errno => Marshal.GetLastPInvokeError();

    [LibraryImport("libc", EntryPoint = "fstatat", SetLastError = true)]
    private static partial int FstatatNative(int dirfd, byte* path, byte* buffer, int flags);

    [LibraryImport("libc", EntryPoint = "__fxstatat", SetLastError = true)]
    private static partial int FxstatatNative(int version, int dirfd, byte* path, byte* buffer, int flags);

    private static bool _noFstatat;

    /// <summary>lstat of <paramref name="name"/> relative to a folder descriptor (or <see cref="AtFdcwd"/>), never following a final symlink.</summary>
    public static bool TryLstatAt(int dirfd, string name, out FileStatus status, out string error)
    {
        var path = Z(name);
        var buffer = stackalloc byte[256];
        int rc;
        fixed (byte* p = path)
        {
            if (!_noFstatat)
            {
                try
                {
                    rc = FstatatNative(dirfd, p, buffer, AtSymlinkNofollow);
                }
                catch (EntryPointNotFoundException)
                {
                    _noFstatat = true;
                    rc = FxstatatNative(RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 1 : 0, dirfd, p, buffer, AtSymlinkNofollow);
                }
            }
            else
            {
                rc = FxstatatNative(RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 1 : 0, dirfd, p, buffer, AtSymlinkNofollow);
            }
        }

        return Posix.ParseStat(rc, buffer, out status, out error);
    }

    public static bool TryLstat(string raw, out FileStatus status, out string error) => TryLstatAt(AtFdcwd, raw, out status, out error);

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true)]
    private static partial int OpenatNative(int dirfd, byte* path, int flags, int mode);

    /// <summary>openat(2) with O_CLOEXEC; -1 with errno on failure.</summary>
    public static int OpenAt(int dirfd, string name, int flags, int mode = 0)
    {
        fixed (byte* p = Z(name))
        {
            return OpenatNative(dirfd, p, flags | Posix.OCloexec, mode);
        }
    }

    [LibraryImport("libc", EntryPoint = "readlinkat", SetLastError = true)]
    private static partial nint ReadlinkatNative(int dirfd, byte* path, byte* buffer, nint size);

    /// <summary>Where a symlink points, as raw bytes; null with errno on failure.</summary>
    public static string? ReadLinkAt(int dirfd, string name)
    {
        var path = Z(name);
        for (var size = 256; size <= 1 << 20; size *= 4)
        {
            var buffer = new byte[size];
            nint n;
            fixed (byte* p = path)
            fixed (byte* b = buffer)
            {
                n = ReadlinkatNative(dirfd, p, b, size);
            }

            if (n < 0)
            {
                return null;
            }

            if (n < size)
            {
                return FromBytes(buffer.AsSpan(0, (int)n));
            }
        }

        return null;
    }

    [LibraryImport("libc", EntryPoint = "fdopendir", SetLastError = true)]
    private static partial nint Fdopendir(int fd);

    [LibraryImport("libc", EntryPoint = "readdir", SetLastError = true)]
    private static partial nint Readdir(nint dir);

    [LibraryImport("libc", EntryPoint = "closedir", SetLastError = true)]
    private static partial int Closedir(nint dir);

    /// <summary>
    /// The names in an open folder (not '.' and '..'), as raw strings in byte order. Reads through a descriptor of
    /// its own (openat of ".") so the folder's descriptor keeps its offset. Throws with errno's message on failure.
    /// </summary>
    public static List<string> List(int dirfd)
    {
        var fd = OpenAt(dirfd, ".", Posix.ORdonly | Posix.ODirectory);
        if (fd < 0)
        {
            throw Failure("cannot list the folder");
        }

        var dir = Fdopendir(fd);
        if (dir == 0)
        {
            var e = Failure("cannot list the folder");
            Posix.Close(fd);
            throw e;
        }

        var names = new List<string>();
        try
        {
            while (true)
            {
                Marshal.SetLastPInvokeError(0);
                var entry = Readdir(dir);
                if (entry == 0)
                {
                    if (Errno != 0)
                    {
                        throw Failure("cannot list the folder");
                    }

                    break;
                }

                // struct dirent on 64-bit glibc: d_ino 8, d_off 8, d_reclen 2, d_type 1, then d_name.
                var name = MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)entry + 19);
                if (name.SequenceEqual("."u8) || name.SequenceEqual(".."u8))
                {
                    continue;
                }

                names.Add(FromBytes(name));
            }
        }
        finally
        {
            Closedir(dir);
        }

        names.Sort(StringComparer.Ordinal); // raw chars compare as their bytes
        return names;
    }

    private static IOException Failure(string what) => Errno switch
    {
        2 or 20 => new DirectoryNotFoundException($"{what}: {Error()}"),
        13 or 1 => new IOException($"{what}: {Error()}", new UnauthorizedAccessException(Error())),
        _ => new IOException($"{what}: {Error()}"),
    };

    [LibraryImport("libc", EntryPoint = "mkdir", SetLastError = true)]
    private static partial int MkdirNative(byte* path, uint mode);

    /// <summary>mkdir(2); false with errno when it fails (EEXIST included).</summary>
    public static bool MakeDirectory(string raw, uint mode)
    {
        fixed (byte* p = Z(raw))
        {
            return MkdirNative(p, mode) == 0;
        }
    }

    [LibraryImport("libc", EntryPoint = "symlink", SetLastError = true)]
    private static partial int SymlinkNative(byte* target, byte* path);

    public static void Symlink(string target, string raw)
    {
        fixed (byte* t = Z(target))
        fixed (byte* p = Z(raw))
        {
            if (SymlinkNative(t, p) != 0)
            {
                throw new IOException($"cannot make the symlink {Display(raw)}: {Error()}");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true)]
    private static partial int LinkNative(byte* existing, byte* created);

    public static void HardLink(string existing, string created)
    {
        fixed (byte* e = Z(existing))
        fixed (byte* c = Z(created))
        {
            if (LinkNative(e, c) != 0)
            {
                throw new IOException($"cannot link {Display(created)} to {Display(existing)}: {Error()}");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LseekNative(int fd, long offset, int whence);

    public const int SeekSet = 0;
    public const int SeekData = 3;
    public const int SeekHole = 4;

    /// <summary>lseek(2); -1 with errno on failure (ENXIO: no data at or after the offset).</summary>
    public static long Seek(int fd, long offset, int whence) => LseekNative(fd, offset, whence);

    /// <summary>
    /// The data segments of a file whose blocks are fewer than its size (SEEK_DATA/SEEK_HOLE), in order, with an empty
    /// segment at the end when it ends in a hole; null when the file system cannot say, or the file has no hole.
    /// </summary>
    public static List<(long Offset, long Length)>? DataSegments(int fd, long size)
    {
        var segments = new List<(long, long)>();
        long pos = 0;
        while (pos < size)
        {
            var data = Seek(fd, pos, SeekData);
            if (data < 0)
            {
                if (Errno == 6)
                {
                    break; // ENXIO: only a hole from here to the end
                }

                return null; // EINVAL: the file system has no SEEK_DATA
            }

            if (data >= size)
            {
                break;
            }

            var hole = Seek(fd, data, SeekHole);
            if (hole < 0)
            {
                return null;
            }

            hole = Math.Min(hole, size);
            segments.Add((data, hole - data));
            pos = hole;
        }

        if (segments.Count == 1 && segments[0] == (0, size))
        {
            return null; // no hole after all (blocks were short for another reason)
        }

        if (segments.Count == 0 || segments[^1].Item1 + segments[^1].Item2 < size)
        {
            segments.Add((size, 0)); // the size, for readers that end the file at its last segment
        }

        return segments;
    }

    [LibraryImport("libc", EntryPoint = "mknod", SetLastError = true)]
    private static partial int MknodNative(byte* path, uint mode, ulong device);

    [LibraryImport("libc", EntryPoint = "__xmknod", SetLastError = true)]
    private static partial int XmknodNative(int version, byte* path, uint mode, ref ulong device);

    /// <summary>mknod(2): a FIFO (type 0x1000) or a character or block device node (0x2000, 0x6000; root only).</summary>
    public static void MakeNode(string raw, uint type, uint mode, int major, int minor)
    {
        var device = ((ulong)(uint)minor & 0xff) | (((ulong)(uint)major & 0xfff) << 8) | (((ulong)(uint)minor & ~0xffUL) << 12) | (((ulong)(uint)major & ~0xfffUL) << 32);
        int rc;
        fixed (byte* p = Z(raw))
        {
            try
            {
                rc = MknodNative(p, type | (mode & 0xFFF), device);
            }
            catch (EntryPointNotFoundException)
            {
                rc = XmknodNative(0, p, type | (mode & 0xFFF), ref device); // glibc before 2.33
            }
        }

        if (rc != 0)
        {
            throw new IOException($"cannot make {Display(raw)}: {Error()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "unlink", SetLastError = true)]
    private static partial int UnlinkNative(byte* path);

    [LibraryImport("libc", EntryPoint = "rmdir", SetLastError = true)]
    private static partial int RmdirNative(byte* path);

    /// <summary>Removes a file, symlink or special file (never follows a symlink); false with errno when it fails.</summary>
    public static bool Unlink(string raw)
    {
        fixed (byte* p = Z(raw))
        {
            return UnlinkNative(p) == 0;
        }
    }

    /// <summary>Removes a name and, when it is a folder, everything under it (symlinks are removed, never followed).</summary>
    public static void RemoveTree(string raw)
    {
        if (!TryLstat(raw, out var st, out _))
        {
            return;
        }

        if (st.IsDirectory)
        {
            var fd = OpenAt(AtFdcwd, raw, Posix.ORdonly | Posix.ODirectory | Posix.ONofollow);
            if (fd >= 0)
            {
                List<string> names;
                try
                {
                    names = List(fd);
                }
                finally
                {
                    Posix.Close(fd);
                }

                foreach (var n in names)
                {
                    RemoveTree(raw + "/" + n);
                }
            }

            fixed (byte* p = Z(raw))
            {
                if (RmdirNative(p) != 0)
                {
                    throw new IOException($"cannot remove {Display(raw)}: {Error()}");
                }
            }
        }
        else if (!Unlink(raw) && Errno != 2)
        {
            throw new IOException($"cannot remove {Display(raw)}: {Error()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true)]
    private static partial int LchownNative(byte* path, int uid, int gid);

    public static void Lchown(string raw, int uid, int gid)
    {
        fixed (byte* p = Z(raw))
        {
            if (LchownNative(p, uid, gid) != 0)
            {
                throw new IOException($"cannot set the owner of {Display(raw)}: {Error()}");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "chmod", SetLastError = true)]
    private static partial int ChmodNative(byte* path, uint mode);

    /// <summary>chmod(2) of a folder or special file the restore made (never called on a symlink).</summary>
    public static void Chmod(string raw, int mode)
    {
        fixed (byte* p = Z(raw))
        {
            if (ChmodNative(p, (uint)mode & 0xFFF) != 0)
            {
                throw new IOException($"cannot set the mode of {Display(raw)}: {Error()}");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "utimensat", SetLastError = true)]
    private static partial int UtimensatNative(int dirfd, byte* path, long* times, int flags);

    /// <summary>Sets the modification time to the nanosecond (the access time is left), on a symlink itself too.</summary>
    public static void SetModified(string raw, long mtimeNs)
    {
        var times = stackalloc long[4];
        times[0] = 0;
        times[1] = (1L << 30) - 2; // UTIME_OMIT
        times[2] = Math.DivRem(mtimeNs, 1_000_000_000L, out var ns);
        times[3] = ns;
        if (times[3] < 0)
        {
            times[2] -= 1;
            times[3] += 1_000_000_000;
        }

        fixed (byte* p = Z(raw))
        {
            if (UtimensatNative(AtFdcwd, p, times, AtSymlinkNofollow) != 0)
            {
                throw new IOException($"cannot set the time of {Display(raw)}: {Error()}");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "flistxattr", SetLastError = true)]
    private static partial nint FlistxattrNative(int fd, byte* list, nint size);

    [LibraryImport("libc", EntryPoint = "llistxattr", SetLastError = true)]
    private static partial nint LlistxattrNative(byte* path, byte* list, nint size);

    [LibraryImport("libc", EntryPoint = "fgetxattr", SetLastError = true)]
    private static partial nint FgetxattrNative(int fd, byte* name, byte* value, nint size);

    [LibraryImport("libc", EntryPoint = "lgetxattr", SetLastError = true)]
    private static partial nint LgetxattrNative(byte* path, byte* name, byte* value, nint size);

    [LibraryImport("libc", EntryPoint = "fsetxattr", SetLastError = true)]
    private static partial int FsetxattrNative(int fd, byte* name, byte* value, nint size, int flags);

    [LibraryImport("libc", EntryPoint = "lsetxattr", SetLastError = true)]
    private static partial int LsetxattrNative(byte* path, byte* name, byte* value, nint size, int flags);

    /// <summary>
    /// The extended attributes of an open file or folder (<paramref name="fd"/> ≥ 0) or of a path that is not
    /// followed (symlinks, special files), names as UTF-8 and values as bytes, in name order. A file system without
    /// xattrs gives none; another failure throws with its message.
    /// </summary>
    public static List<KeyValuePair<string, byte[]>> Xattrs(int fd, string? raw = null)
    {
        var path = raw is null ? null : Z(raw);
        var result = new List<KeyValuePair<string, byte[]>>();
        byte[] list;
        while (true)
        {
            var size = ListXattr(fd, path, null, 0);
            if (size < 0)
            {
                return Errno is 95 or 61 ? result : throw new IOException($"cannot list the extended attributes: {Error()}"); // EOPNOTSUPP, ENODATA
            }

            if (size == 0)
            {
                return result;
            }

            list = new byte[size];
            fixed (byte* l = list)
            {
                var n = ListXattr(fd, path, l, size);
                if (n >= 0)
                {
                    list = list[..(int)n];
                    break;
                }

                if (Errno != 34)
                {
                    throw new IOException($"cannot list the extended attributes: {Error()}"); // ERANGE: it grew, again
                }
            }
        }

        foreach (var key in Split0(list))
        {
            var value = GetXattr(fd, path, key);
            if (value is not null)
            {
                result.Add(new(Encoding.UTF8.GetString(key.Span[..^1]), value));
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return result;
    }

    private static IEnumerable<ReadOnlyMemory<byte>> Split0(byte[] list)
    {
        var start = 0;
        for (var i = 0; i < list.Length; i++)
        {
            if (list[i] == 0)
            {
                yield return list.AsMemory(start, i + 1 - start); // with its NUL, ready for the call
                start = i + 1;
            }
        }
    }

    private static nint ListXattr(int fd, byte[]? path, byte* list, nint size)
    {
        if (path is null)
        {
            return FlistxattrNative(fd, list, size);
        }

        fixed (byte* p = path)
        {
            return LlistxattrNative(p, list, size);
        }
    }

    private static byte[]? GetXattr(int fd, byte[]? path, ReadOnlyMemory<byte> key)
    {
        using var pin = key.Pin();
        var k = (byte*)pin.Pointer;
        while (true)
        {
            var size = Get(fd, path, k, null, 0);
            if (size < 0)
            {
                return Errno == 61 ? null : throw new IOException($"cannot read the extended attribute {Encoding.UTF8.GetString(key.Span[..^1])}: {Error()}"); // ENODATA: removed meanwhile
            }

            var value = new byte[size];
            fixed (byte* v = value)
            {
                var n = Get(fd, path, k, v, size);
                if (n >= 0)
                {
                    return value[..(int)n];
                }

                if (Errno != 34)
                {
                    return Errno == 61 ? null : throw new IOException($"cannot read the extended attribute {Encoding.UTF8.GetString(key.Span[..^1])}: {Error()}");
                }
            }
        }

        static nint Get(int fd, byte[]? path, byte* k, byte* v, nint size)
        {
            if (path is null)
            {
                return FgetxattrNative(fd, k, v, size);
            }

            fixed (byte* p = path)
            {
                return LgetxattrNative(p, k, v, size);
            }
        }
    }

    /// <summary>Sets one extended attribute on an open file (<paramref name="fd"/> ≥ 0) or, not followed, on a path.</summary>
    public static void SetXattr(int fd, string? raw, string key, byte[] value)
    {
        var k = Encoding.UTF8.GetBytes(key + "\0");
        int rc;
        fixed (byte* kp = k)
        fixed (byte* vp = value)
        {
            if (raw is null)
            {
                rc = FsetxattrNative(fd, kp, vp, value.Length, 0);
            }
            else
            {
                fixed (byte* p = Z(raw))
                {
                    rc = LsetxattrNative(p, kp, vp, value.Length, 0);
                }
            }
        }

        if (rc != 0)
        {
            throw new IOException($"cannot set the extended attribute {key} of {(raw is null ? "a file" : Display(raw))}: {Error()}");
        }
    }
}
