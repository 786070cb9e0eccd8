using Backstop.Core.Plugins;

namespace Backstop.Core.FileSystem;

/// <summary>
/// <c>group:</c>: the catalog's folder (setgid, 2770) and the catalog with its WAL, shared memory and lock files (0660)
/// given to a group, so that a second user in it (postgres running <c>wal-push</c> from archive_command) can record
/// into the same catalog. SQLite creates its -wal and -shm files with the catalog's own mode and group. Only what
/// this user owns is changed; a link is never followed.
/// </summary>
public static class SharedState
{
    public static void ShareWith(string catalogPath, string group)
    {
        ArgumentNullException.ThrowIfNull(catalogPath);
        var gid = PosixUsers.GroupId(group) ?? throw new BackupException($"group: no group named '{group}' exists on this host");
        var folder = Path.GetDirectoryName(Path.GetFullPath(catalogPath))!;
        Share(folder, gid, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupWrite |
                           UnixFileMode.GroupExecute | UnixFileMode.SetGroup);
        foreach (var file in new[] { catalogPath, catalogPath + "-wal", catalogPath + "-shm", catalogPath + ".lock" })
        {
            Share(file, gid, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        }
    }

    private static void Share(string path, int gid, UnixFileMode mode)
    {
        if (!Posix.TryLstat(path, out var st, out _) || st.Type == 0xA000 || st.Uid != PosixUsers.EffectiveUid)
        {
            return; // not there yet, a link, or another user's (the second user's own files stay as it made them)
        }

        if (st.Gid != gid)
        {
            Posix.Lchown(path, -1, gid);
        }

        if ((UnixFileMode)(st.Mode & 0xFFF) != mode)
        {
            File.SetUnixFileMode(path, mode);
        }
    }
}
