using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;

namespace Backstop.Sources.Scratch;

/// <summary>Folders a drill's scratch server writes to, owned by the user it runs as.</summary>
public static class ScratchFolders
{
    /// <summary>
    /// A folder for a scratch server's data, owned by <paramref name="user"/> (when running as root): inside the drill's
    /// scratch folder when that user can reach it, else a private folder under <c>/var/tmp</c> (0700, that user's),
    /// recorded for the sweep. Without a user, simply inside the scratch folder.
    /// </summary>
    /// <param name="maxLength">The longest path the server accepts for a file in that folder (a Unix socket: 107 bytes).</param>
    public static string ReachableBy(DrillScope scope, (string Name, int Uid, int Gid)? user, string name, int maxLength = 4000)
    {
        ArgumentNullException.ThrowIfNull(scope);
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        var fits = Path.Combine(scope.Folder, name, "mysqld.sock").Length <= maxLength;
        if (user is null && fits)
        {
            var inside = Path.Combine(scope.Folder, name);
            Directory.CreateDirectory(inside, Private);
            return inside;
        }

        // The scratch folder lets others through (never list); every folder above must too.
        if (user is not null)
        {
            File.SetUnixFileMode(scope.Folder, Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }

        string folder;
        if (fits && Traversable(scope.Folder))
        {
            folder = Path.Combine(scope.Folder, name);
        }
        else
        {
            // A shared folder: made here and now (never one that exists, which another user could have planted), and ours.
            folder = Path.Combine("/var/tmp", Path.GetFileName(scope.Folder) + "-" + name);
            scope.Leave("dir:" + folder);
            if (!PosixUsers.MakeDirectory(folder, 0b111_000_000) || !Posix.TryLstat(folder, out var made, out _) || !made.IsDirectory || made.Uid != PosixUsers.EffectiveUid)
            {
                throw new BackupException($"cannot make the scratch folder {folder} of its own (it exists, or is not this user's): remove it, and drill again");
            }

            scope.Note(fits
                ? $"user {user!.Value.Name} cannot reach the staging folder (a folder above it is closed to others), so the scratch data is in {folder}, removed afterwards"
                : $"the staging folder's path is too long for the scratch server's socket, so the scratch data is in {folder}, removed afterwards");
        }

        Directory.CreateDirectory(folder, Private);
        if (user is { } owner)
        {
            Posix.Lchown(folder, owner.Uid, owner.Gid);
        }

        return folder;
    }

    /// <summary>Writes a secret into a new file (0600; never through an existing name or symlink).</summary>
    public static void WriteSecret(string path, string secret)
    {
        ArgumentNullException.ThrowIfNull(secret);
        using var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        file.Write(System.Text.Encoding.UTF8.GetBytes(secret + "\n"));
    }

    /// <summary>Whether every folder from / down to <paramref name="path"/> lets others through (o+x).</summary>
    private static bool Traversable(string path)
    {
        for (var dir = Path.GetFullPath(path); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if ((File.GetUnixFileMode(dir) & UnixFileMode.OtherExecute) == 0)
            {
                return false;
            }
        }

        return true;
    }
}
