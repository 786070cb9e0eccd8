using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Tests.Support;

namespace Backstop.Tests.Util;

public sealed class PrivateFolderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_folder_is_made_0700_and_a_loose_one_is_tightened()
    {
        var folder = PrivateFolder.Ensure(_dir["state/private"]);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(folder));
        File.SetUnixFileMode(folder, (UnixFileMode)0x1FF);
        PrivateFolder.Ensure(folder);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(folder));
    }

    [Fact]
    public void A_symlink_planted_as_the_folder_is_refused()
    {
        Directory.CreateDirectory(_dir["elsewhere"]);
        File.CreateSymbolicLink(_dir["private"], _dir["elsewhere"]);
        var e = Assert.Throws<BackupException>(() => PrivateFolder.Ensure(_dir["private"]));
        Assert.Contains("a symlink", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_is_written_0600_reused_when_equal_and_replaced_not_followed_when_planted()
    {
        var path = PrivateFolder.WriteFile(_dir["private"], "known_hosts", "host ssh-ed25519 AAAA\n"u8);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var written = File.GetLastWriteTimeUtc(path);
        Thread.Sleep(20);
        Assert.Equal(path, PrivateFolder.WriteFile(_dir["private"], "known_hosts", "host ssh-ed25519 AAAA\n"u8));
        Assert.Equal(written, File.GetLastWriteTimeUtc(path)); // reused, not rewritten

        // A symlink in its place (to a file the attacker wants written) is replaced by a file, never written through.
        _dir.Write("victim", "keep");
        File.Delete(path);
        File.CreateSymbolicLink(path, _dir["victim"]);
        PrivateFolder.WriteFile(_dir["private"], "known_hosts", "host ssh-ed25519 BBBB\n"u8);
        Assert.Equal("keep", File.ReadAllText(_dir["victim"]));
        Assert.Equal("host ssh-ed25519 BBBB\n", File.ReadAllText(path));
        Assert.Null(new FileInfo(path).LinkTarget);
    }

    [Fact]
    public void Directory_fsync_opens_folders_only_with_this_architectures_o_directory()
    {
        Posix.FsyncDirectory(_dir.Path);
        _dir.Write("file", "x");
        Assert.Throws<IOException>(() => Posix.FsyncDirectory(_dir["file"])); // ENOTDIR: the flag is O_DIRECTORY, not O_DIRECT
    }
}
