using Microsoft.Win32.SafeHandles;

namespace Backstop.Core.FileSystem;

/// <summary>
/// A file that says its owner is alive by a lock, not by a process id: the owner holds it open with a shared flock for
/// as long as it lives, and the kernel lets the lock go when the owner dies, however it dies. Process ids repeat (every
/// container's first process is 1, and the pid of a killed run is reused), so a pid in a name cannot tell a dead owner
/// from a new process. Another process takes a file whose owner is gone with a non-blocking exclusive flock.
/// </summary>
public sealed class HeldFile : IDisposable
{
    private const int LockShared = 1;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private readonly FileStream _stream; // held, never left to a finalizer: it holds the lock
    private readonly SafeFileHandle _handle;
    private long _length;

    private HeldFile(FileStream stream, string path, long length)
    {
        _stream = stream;
        _handle = stream.SafeFileHandle;
        Path = path;
        _length = length;
    }

    public string Path { get; }

    /// <summary>Creates <paramref name="path"/> (never an existing file), 0600, held while this object lives.</summary>
    public static HeldFile Create(string path)
    {
        var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite, BufferSize = 0,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        if (Posix.Flock((int)stream.SafeFileHandle.DangerousGetHandle(), LockShared | LockNonBlocking) != 0)
        {
            var why = System.Runtime.InteropServices.Marshal.GetLastPInvokeErrorMessage();
            stream.Dispose();
            throw new IOException($"cannot lock {path}, which this process has just created ({why}); its folder must be on a local file system that supports flock");
        }

        return new HeldFile(stream, path, 0);
    }

    /// <summary>
    /// The file at <paramref name="path"/> when its owner is gone (its lock is free), now held by this process; null when
    /// its owner still lives, or it is gone.
    /// </summary>
    public static HeldFile? TakeAbandoned(string path)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite, BufferSize = 0 });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // gone, or locked exclusively by another taker
        }

        if (Posix.Flock((int)stream.SafeFileHandle.DangerousGetHandle(), LockExclusive | LockNonBlocking) != 0)
        {
            stream.Dispose();
            return null; // its owner lives (or another process is taking it now)
        }

        return new HeldFile(stream, path, stream.Length);
    }

    /// <summary>Appends and flushes to disk: the line is there for the next process even after a power cut.</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        RandomAccess.Write(_handle, bytes, _length);
        _length += bytes.Length;
        RandomAccess.FlushToDisk(_handle);
    }

    public string ReadAllText()
    {
        var bytes = new byte[_length];
        var read = 0;
        while (read < bytes.Length)
        {
            var n = RandomAccess.Read(_handle, bytes.AsSpan(read), read);
            if (n == 0)
            {
                break;
            }

            read += n;
        }

        return System.Text.Encoding.UTF8.GetString(bytes, 0, read);
    }

    /// <summary>Removes the file, then lets its lock go.</summary>
    public void Delete()
    {
        try
        {
            File.Delete(Path);
        }
        finally
        {
            Dispose();
        }
    }

    public void Dispose() => _stream.Dispose();
}
