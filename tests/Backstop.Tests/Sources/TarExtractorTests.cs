using System.Formats.Tar;
using Backstop.Core.Plugins;
using Backstop.Sources.Trees;
using Backstop.Tests.Support;

namespace Backstop.Tests.Sources;

/// <summary>Hostile archives: nothing may land outside the destination.</summary>
public sealed class TarExtractorTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static MemoryStream Tar(params TarEntry[] entries) => Tars.Of(entries);

    private static PaxTarEntry File(string name, string content) =>
        new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)) };

    private async Task<BackupException> Refused(MemoryStream tar)
    {
        var dest = _dir["dest"];
        Directory.CreateDirectory(dest);
        return await Assert.ThrowsAsync<BackupException>(() => TarExtractor.ExtractAsync(tar, dest, CancellationToken.None));
    }

    [Fact]
    public async Task Dot_dot_is_refused_and_nothing_is_written_outside()
    {
        var e = await Refused(Tar(File("ok.txt", "fine"), File("a/../../evil.txt", "pwned")));
        Assert.Contains("would land outside the destination", e.Message, StringComparison.Ordinal);
        Assert.False(System.IO.File.Exists(_dir["evil.txt"]));
    }

    [Fact]
    public async Task An_absolute_name_is_refused()
    {
        var outside = _dir["abs-evil.txt"];
        var e = await Refused(Tar(File(outside, "pwned")));
        Assert.Contains("would land outside the destination", e.Message, StringComparison.Ordinal);
        Assert.False(System.IO.File.Exists(outside));
    }

    [Fact]
    public async Task A_symlink_named_dot_never_replaces_the_destination_and_nothing_is_written_through_it()
    {
        var outside = _dir["outside"];
        Directory.CreateDirectory(outside);
        var dot = new PaxTarEntry(TarEntryType.SymbolicLink, ".") { LinkName = outside };
        var e = await Refused(Tar(File("ok.txt", "fine"), dot, File("evil.txt", "pwned")));
        Assert.Contains("where the destination folder itself is", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
        Assert.True(Directory.Exists(_dir["dest"]) && !new DirectoryInfo(_dir["dest"]).Attributes.HasFlag(FileAttributes.ReparsePoint));
    }

    [Fact]
    public async Task A_hard_link_to_a_symlink_over_a_known_folder_is_refused_and_nothing_is_written_through_it()
    {
        // d/ is a folder the extractor has seen; s is a symlink out; d as a hard link to s would be a second symlink
        // that the folder cache still takes for the folder.
        var outside = _dir["outside"];
        Directory.CreateDirectory(outside);
        var folder = new PaxTarEntry(TarEntryType.Directory, "d");
        var link = new PaxTarEntry(TarEntryType.SymbolicLink, "s") { LinkName = outside };
        var hard = new PaxTarEntry(TarEntryType.HardLink, "d") { LinkName = "s" };
        var e = await Refused(Tar(folder, File("d/inside.txt", "fine"), link, hard, File("d/evil.txt", "pwned")));
        Assert.Contains("is a hard link to 's', which is not a file", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public async Task Writing_through_a_symlink_is_refused()
    {
        var outside = _dir["outside"];
        Directory.CreateDirectory(outside);
        var link = new PaxTarEntry(TarEntryType.SymbolicLink, "link") { LinkName = outside };
        var e = await Refused(Tar(link, File("link/evil.txt", "pwned")));
        Assert.Contains("through the symlink", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public async Task A_folder_entry_over_the_archives_own_symlink_is_refused_and_nothing_outside_changes()
    {
        var outside = _dir["outside"];
        Directory.CreateDirectory(outside);
        System.IO.File.SetUnixFileMode(outside, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var link = new PaxTarEntry(TarEntryType.SymbolicLink, "x") { LinkName = outside };
        var folder = new PaxTarEntry(TarEntryType.Directory, "x") { Mode = (UnixFileMode)0b111_111_111 };
        var e = await Refused(Tar(link, folder, File("x/evil.txt", "pwned")));
        Assert.Contains("would make a folder of the symlink", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, System.IO.File.GetUnixFileMode(outside));

        Directory.Delete(_dir["dest"], recursive: true);
        e = await Refused(Tar(link, folder)); // the folder's mode alone would have been set through the link
        Assert.Contains("would make a folder of the symlink", e.Message, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, System.IO.File.GetUnixFileMode(outside));
    }

    [Fact]
    public async Task A_hard_link_to_outside_is_refused()
    {
        var e = await Refused(Tar(new PaxTarEntry(TarEntryType.HardLink, "h") { LinkName = "../../etc/passwd" }));
        Assert.Contains("would land outside the destination", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_plain_archive_is_extracted_with_its_counts()
    {
        var dest = _dir["dest"];
        Directory.CreateDirectory(dest);
        var facts = (await TarExtractor.ExtractAsync(
            Tar(new PaxTarEntry(TarEntryType.Directory, "d"), File("d/a.txt", "abc"), new PaxTarEntry(TarEntryType.HardLink, "d/b.txt") { LinkName = "d/a.txt" }),
            dest, CancellationToken.None)).Facts;
        Assert.Equal(2, facts["files"]);
        Assert.Equal(3, facts["bytes"]);
        Assert.Equal("abc", await System.IO.File.ReadAllTextAsync(Path.Combine(dest, "d/b.txt")));
    }
}
