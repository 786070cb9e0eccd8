using System.Globalization;
using System.Runtime.InteropServices;
using Backstop.Core.FileSystem;
using Microsoft.Win32.SafeHandles;

namespace Backstop.Sources.Trees;

/// <summary>Why a listed child could not be opened.</summary>
internal enum OpenProblem
{
    None,

    /// <summary>Gone since it was listed (ENOENT, ENOTDIR).</summary>
    Vanished,

    /// <summary>Swapped since it was listed: now a symlink (ELOOP under O_NOFOLLOW), or another entry (device, inode, type).</summary>
    Replaced,

    /// <summary>Anything else (permissions): the backup cannot be whole.</summary>
    Unreadable,
}

/// <summary>
/// A folder the walker holds open while it reads what is in it: every child is listed, stat'ed and opened relative to
/// this descriptor (<c>openat</c>, and <c>/proc/self/fd/N/NAME</c> for what .NET reads by path), never by a path from
/// the root again. Names are raw strings (<see cref="RawFs"/>): a name that is not UTF-8 is read as the bytes it is. A folder or file swapped for a symlink after it was listed is not followed: the child is opened
/// with <c>O_NOFOLLOW</c> (and <c>O_NONBLOCK</c>, so a FIFO put in a file's place never hangs the backup), and the
/// <c>fstat</c> of what was opened must be the device and inode that were listed.
/// </summary>
internal sealed class PinnedDirectory : IDisposable
{
    private int _fd;

    private PinnedDirectory(int fd, string path) => (_fd, Path) = (fd, path);

    /// <summary>The folder's path as the backup names it (not where it is now, if it was moved), raw (<see cref="RawFs"/>).</summary>
    public string Path { get; }

    private string Pinned => $"/proc/self/fd/{_fd.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>A configured root (its own path may pass through symlinks above it, as its owner configured).</summary>
    public static PinnedDirectory? OpenRoot(string path, FileStatus listed, out string? problem, out OpenProblem kind)
    {
        var fd = Posix.Open(path, Posix.ORdonly | Posix.ODirectory | Posix.OCloexec, 0);
        return Checked(fd, RawFs.FromPath(path), listed, out problem, out kind);
    }

    /// <summary>The folder's descriptor, for calls made on it (extended attributes).</summary>
    public int Descriptor => _fd;

    /// <summary>The names in the folder as raw strings (<see cref="RawFs"/>), in byte order.</summary>
    public List<string> Names() => RawFs.List(_fd);

    /// <summary>The child's lstat, relative to this folder.</summary>
    public bool TryLstat(string name, out FileStatus status, out string error) => RawFs.TryLstatAt(_fd, name, out status, out error);

    /// <summary>Where a symlink in this folder points (raw).</summary>
    public string LinkTarget(string name) => RawFs.ReadLinkAt(_fd, name) ?? "";

    /// <summary>The extended attributes of a child that is not opened (a symlink or special file), never followed.</summary>
    public List<KeyValuePair<string, byte[]>> Xattrs(string name) => RawFs.Xattrs(-1, Pinned + "/" + name);

    /// <summary>A child folder, when it is still the one listed; null with why otherwise.</summary>
    public PinnedDirectory? OpenChild(string name, FileStatus listed, out string? problem, out OpenProblem kind) =>
        Checked(RawFs.OpenAt(_fd, name, Posix.ORdonly | Posix.ODirectory | Posix.ONofollow | Posix.ONonblock), Combine(name), listed, out problem, out kind);

    /// <summary>A child file for reading, when it is still the one listed; null with why otherwise.</summary>
    public SafeFileHandle? OpenFile(string name, FileStatus listed, out string? problem, out OpenProblem kind) =>
        OpenFile(RawFs.OpenAt(_fd, name, Posix.ORdonly | Posix.ONofollow | Posix.ONonblock), listed, out problem, out kind);

    /// <summary>A file descriptor just opened (or -1 with errno), kept when it is the entry listed.</summary>
    public static SafeFileHandle? OpenFile(int fd, FileStatus listed, out string? problem, out OpenProblem kind)
    {
        if (fd < 0)
        {
            (problem, kind) = Failed();
            return null;
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (!Same(fd, listed, out problem, out kind))
        {
            handle.Dispose();
            return null;
        }

        return handle;
    }

    private static (string Problem, OpenProblem Kind) Failed()
    {
        var errno = Marshal.GetLastPInvokeError();
        var message = Marshal.GetLastPInvokeErrorMessage();
        return errno switch
        {
            2 or 20 => (message, OpenProblem.Vanished),
            40 or 6 => ("it was replaced by a symlink or a special file between listing and opening", OpenProblem.Replaced), // ELOOP, ENXIO
            _ => (message, OpenProblem.Unreadable),
        };
    }

    /// <summary>The backup's name for a child of this folder.</summary>
    public string Combine(string name) => Path.EndsWith('/') ? Path + name : Path + "/" + name;

    private static PinnedDirectory? Checked(int fd, string path, FileStatus listed, out string? problem, out OpenProblem kind)
    {
        if (fd < 0)
        {
            (problem, kind) = Failed();
            if (Marshal.GetLastPInvokeError() == 20)
            {
                (problem, kind) = ("it was replaced by something that is not a folder between listing and opening", OpenProblem.Replaced);
            }

            return null;
        }

        if (!Same(fd, listed, out problem, out kind))
        {
            Posix.Close(fd);
            return null;
        }

        return new PinnedDirectory(fd, path);
    }

    /// <summary>Whether the open descriptor is the entry that was listed (device, inode and type).</summary>
    private static bool Same(int fd, FileStatus listed, out string? problem, out OpenProblem kind)
    {
        if (!Posix.TryFstat(fd, out var opened, out var error))
        {
            (problem, kind) = (error, OpenProblem.Unreadable);
            return false;
        }

        (problem, kind) = opened.Device == listed.Device && opened.Inode == listed.Inode && opened.Type == listed.Type
            ? ((string?)null, OpenProblem.None)
            : ("it was replaced between listing and opening", OpenProblem.Replaced);
        return problem is null;
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            Posix.Close(_fd);
            _fd = -1;
        }
    }
}
