using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace Backstop.Core.FileSystem;

/// <summary>
/// A file replaced whole (the metrics textfile, a drill's evidence): written under a random name beside it, created
/// with <c>O_CREAT|O_EXCL|O_NOFOLLOW</c> (never through a link someone planted in a shared folder, never over a
/// name that exists), given its mode through the descriptor, synced, then renamed over the final name. A reader sees
/// the old file or the new one, never half of one.
/// </summary>
public static class AtomicFile
{
    public static async Task WriteAsync(string path, UnixFileMode mode, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.tmp");
        var fd = Posix.Open(temp, Posix.OWronly | Posix.OCreat | Posix.OExcl | Posix.ONofollow | Posix.OCloexec, 0x180);
        if (fd < 0)
        {
            throw new IOException($"cannot create {temp}: {Marshal.GetLastPInvokeErrorMessage()}");
        }

        try
        {
            await using (var file = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write))
            {
                await write(file, cancellationToken).ConfigureAwait(false);
                await file.FlushAsync(cancellationToken).ConfigureAwait(false);
                File.SetUnixFileMode(file.SafeFileHandle, mode);
                file.Flush(flushToDisk: true);
            }

            File.Move(temp, full, overwrite: true); // rename(2) replaces a link at the final name; it never follows one
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public static void WriteText(string path, UnixFileMode mode, string text) =>
        WriteAsync(path, mode, (s, ct) => s.WriteAsync(System.Text.Encoding.UTF8.GetBytes(text), ct).AsTask(), CancellationToken.None).GetAwaiter().GetResult();
}
