using Backstop.Core.FileSystem;

namespace Backstop.Sources.Restoring;

/// <summary>
/// A format check that needs the stored bytes as a file (SQLite opens it, redis-check-rdb and etcdctl read it): the
/// bytes are written once, 0600, into the run's staging or the source's private folder (never a shared /tmp), the
/// check runs on the file, and the file (with any -wal/-shm a database open left) is removed whatever happens.
/// </summary>
public static class CheckSpool
{
    /// <param name="folder">Where to spool: the run's staging, or the source's private state folder.</param>
    /// <param name="isPrivate">The folder is the private state folder (made 0700 and checked first).</param>
    /// <param name="extension">The spool's extension, for the tools that look at it (".db", ".rdb").</param>
    /// <param name="write">Writes the content into the spool (and checks what it can while streaming).</param>
    /// <param name="check">Reads the spooled file and returns the facts found.</param>
    public static async Task<T> RunAsync<T>(string folder, bool isPrivate, string extension, Func<Stream, Task> write, Func<string, Task<T>> check)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(write);
        ArgumentNullException.ThrowIfNull(check);
        if (isPrivate)
        {
            PrivateFolder.Ensure(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(folder))!);
            PrivateFolder.Ensure(folder);
        }

        var path = Path.Combine(folder, $".backstop-check-{Guid.NewGuid():N}{extension}");
        try
        {
            await using (var spool = new FileStream(path, new FileStreamOptions
                         {
                             Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 0, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                         }))
            {
                await write(spool).ConfigureAwait(false);
            }

            return await check(path).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(path);
            File.Delete(path + "-wal"); // a database opened even read-only in WAL mode leaves these
            File.Delete(path + "-shm");
        }
    }
}
