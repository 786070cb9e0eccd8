using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Backstop.Core.Plugins;

namespace Backstop.Core.FileSystem;

/// <summary>
/// Backstop's private state beside the catalog (never under a shared temporary folder): a real folder owned by this
/// user with mode 0700, and files in it created new with <c>O_EXCL|O_NOFOLLOW</c>, mode 0600, then renamed into place.
/// </summary>
public static partial class PrivateFolder
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint Geteuid();

    /// <summary>The folder, created 0700 when missing; refused when it is a symlink or another user's.</summary>
    public static string Ensure(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!Posix.TryLstat(path, out _, out _))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(path))!);
            try
            {
                Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            catch (IOException)
            {
                // made meanwhile: checked below like any other
            }
        }

        if (!Posix.TryLstat(path, out var st, out var error))
        {
            throw new BackupException($"cannot create the private folder {path}: {error}");
        }

        if (st.Type != 0x4000)
        {
            throw new BackupException($"{path} must be a folder of backstop's own, but it is {(st.Type == 0xA000 ? "a symlink" : "not a folder")}: remove it");
        }

        var me = Geteuid();
        if (st.Uid != me)
        {
            throw new BackupException($"{path} belongs to uid {st.Uid}, not to uid {me} that runs backstop: remove it, or run backstop as its owner");
        }

        if ((st.Mode & 0x3F) != 0)
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return path;
    }

    /// <summary>Writes <paramref name="name"/> in the private folder (0600) unless it already holds exactly this content.</summary>
    public static string WriteFile(string folder, string name, ReadOnlySpan<byte> content)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(name);
        Ensure(folder);
        var path = Path.Combine(folder, name);
        if (Posix.TryLstat(path, out var st, out _) && st.IsRegular && st.Uid == Geteuid() && (st.Mode & 0x3F) == 0 && st.Size == content.Length
            && File.ReadAllBytes(path).AsSpan().SequenceEqual(content))
        {
            return path;
        }

        var temp = Path.Combine(folder, $".{name}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}.tmp");
        try
        {
            using (var file = Posix.NewFile.TryCreate(temp) ?? throw new BackupException($"cannot create {temp}: the name exists"))
            {
                file.Write(content);
                file.Finish(owner: false, 0, 0, 0x180, DateTimeOffset.UtcNow);
            }

            File.Move(temp, path, overwrite: true);
            return path;
        }
        catch
        {
            File.Delete(temp); // a full disk or a failed rename leaves no half file behind
            throw;
        }
    }
}
