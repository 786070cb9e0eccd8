using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using static Backstop.Core.FileSystem.Posix;
using Microsoft.Win32.SafeHandles;

namespace Backstop.Core.Locking;

/// <summary>Another run holds the lock: exit code 75.</summary>
public sealed class LockHeldException(string message) : Exception(message);

/// <summary>
/// The exclusive run lock: <c>flock(2)</c> on a file beside the catalog, holding the holder's PID, host and start time.
/// The kernel releases it when the process dies, so a lock left by a dead process is taken over (and said so).
/// </summary>
public sealed class RunLock : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly string _path;

    private RunLock(SafeFileHandle handle, string path, string? takenOverFrom)
    {
        _handle = handle;
        _path = path;
        TakenOverFrom = takenOverFrom;
    }

    /// <summary>When the previous holder died without releasing: who it was.</summary>
    public string? TakenOverFrom { get; }

    public static RunLock Acquire(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var fd = Open(path, ORdwr | OCreat | OCloexec, 0x180 /* 0600 */);
        if (fd < 0)
        {
            throw new BackupException($"cannot open the lock file {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Flock(fd, LockEx | LockNb) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != 11) // EWOULDBLOCK: held by another process; anything else is a real error
            {
                var message = Marshal.GetLastPInvokeErrorMessage();
                handle.Dispose();
                throw new BackupException($"cannot lock {path}: {message}; the catalog folder must be on a local file system that supports flock");
            }

            var holder = ReadAll(handle).Trim();
            handle.Dispose();
            throw new LockHeldException(
                $"another backstop run holds the lock {path} ({(holder.Length > 0 ? holder : "holder unknown")}); wait for it to finish, or run with --wait[=DURATION] to wait for it");
        }

        var previous = ReadAll(handle).Trim();
        var info = string.Create(CultureInfo.InvariantCulture,
            $"pid {Environment.ProcessId} on {Environment.MachineName}, started {DateTimeOffset.UtcNow:yyyy-MM-dd'T'HH:mm:ss'Z'}");
        var bytes = Encoding.UTF8.GetBytes(info + "\n");
        Ftruncate(fd, 0);
        RandomAccess.Write(handle, bytes, 0);
        RandomAccess.FlushToDisk(handle);
        return new RunLock(handle, path, previous.Length > 0 ? previous : null);
    }

    /// <summary>
    /// Takes the lock, waiting up to <paramref name="wait"/> for another run to release it (polling each second);
    /// <paramref name="waiting"/> is told once, with the holder, when it has to wait. Past the wait: LockHeldException.
    /// </summary>
    public static async Task<RunLock> AcquireAsync(string path, TimeSpan wait, Action<string> waiting, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(waiting);
        var started = DateTimeOffset.UtcNow;
        var said = false;
        while (true)
        {
            try
            {
                return Acquire(path);
            }
            catch (LockHeldException e)
            {
                var waited = DateTimeOffset.UtcNow - started;
                if (waited >= wait)
                {
                    throw new LockHeldException($"{e.Message}: still held after waiting {Quantities.FormatDuration(waited)} (--wait)");
                }

                if (!said)
                {
                    said = true;
                    waiting(e.Message);
                }

                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public void Dispose()
    {
        if (_handle.IsClosed)
        {
            return;
        }

        // Clear the holder first: an empty lock file means the last holder released it cleanly.
        var fd = (int)_handle.DangerousGetHandle();
        Ftruncate(fd, 0);
        Flock(fd, LockUn);
        _handle.Dispose();
    }

    public override string ToString() => _path;

    private static string ReadAll(SafeFileHandle handle)
    {
        var buffer = new byte[512];
        var n = RandomAccess.Read(handle, buffer, 0);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }
}
