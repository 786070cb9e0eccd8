using System.Formats.Tar;
using Backstop.Core.Plugins;
using Backstop.Sources.Restoring;
using Backstop.Sources.Trees;
using Backstop.Tests.Support;

namespace Backstop.Tests.Sources;

/// <summary>A restore is written aside and published by renames only once its copy proved good; otherwise nothing shows.</summary>
public sealed class StagingTests : IDisposable
{
    private static readonly DateTimeOffset Then = new(2021, 3, 4, 5, 6, 7, TimeSpan.Zero);
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static MemoryStream Tar(params TarEntry[] entries) => Tars.Of(entries);

    private static PaxTarEntry Dir(string name, UnixFileMode mode) => new(TarEntryType.Directory, name) { Mode = mode, ModificationTime = Then };

    private static PaxTarEntry File(string name, string content) =>
        new(TarEntryType.RegularFile, name)
        {
            DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)),
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead,
            ModificationTime = Then.AddTicks(1234567),
        };

    private static async Task<StagedRestore> Stage(string dest, bool force, params TarEntry[] entries)
    {
        var folder = Staging.Folder.Begin(dest, force);
        var extraction = await TarExtractor.ExtractAsync(Tar(entries), folder.Path, CancellationToken.None);
        return folder.Staged(extraction.Facts, () => TarExtractor.ApplyRoot(folder.Destination, extraction.Root));
    }

    private static string[] Names(string dir) =>
        Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(dir, p)).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public async Task Nothing_shows_under_the_destination_until_published_and_then_modes_and_times_are_the_archives()
    {
        var dest = _dir["dest"];
        var staged = await Stage(dest, force: false, Dir("d", (UnixFileMode)0b111_101_000), File("d/a.txt", "abc"), Dir("d/ro", (UnixFileMode)0b101_101_101));
        Assert.All(Directory.GetFileSystemEntries(dest), e => Assert.StartsWith(Staging.Prefix, Path.GetFileName(e), StringComparison.Ordinal));
        staged.Publish();
        Assert.Equal(["d", "d/a.txt", "d/ro"], Names(dest));
        Assert.Equal("abc", System.IO.File.ReadAllText(Path.Combine(dest, "d/a.txt")));
        Assert.Equal((UnixFileMode)0b110_100_000, System.IO.File.GetUnixFileMode(Path.Combine(dest, "d/a.txt")));
        Assert.Equal(Then.AddTicks(1234567).UtcDateTime, System.IO.File.GetLastWriteTimeUtc(Path.Combine(dest, "d/a.txt")));
        Assert.Equal((UnixFileMode)0b111_101_000, System.IO.File.GetUnixFileMode(Path.Combine(dest, "d")));
        Assert.Equal(Then.UtcDateTime, Directory.GetLastWriteTimeUtc(Path.Combine(dest, "d")));
        Assert.Equal((UnixFileMode)0b101_101_101, System.IO.File.GetUnixFileMode(Path.Combine(dest, "d/ro")));
    }

    [Fact]
    public async Task Discarding_removes_the_staging_and_a_destination_the_restore_created()
    {
        var dest = _dir["new/dest"];
        var staged = await Stage(dest, force: false, Dir("d", (UnixFileMode)0b101_101_101), File("x.txt", "x"));
        staged.Discard();
        Assert.False(Directory.Exists(_dir["new"])); // and its parent, created for it

        var existing = _dir["existing"];
        Directory.CreateDirectory(existing);
        (await Stage(existing, force: false, File("x.txt", "x"))).Discard();
        Assert.True(Directory.Exists(existing));
        Assert.Empty(Directory.GetFileSystemEntries(existing));
    }

    [Fact]
    public async Task With_force_files_are_replaced_folders_merged_and_what_was_there_kept()
    {
        var dest = _dir["dest"];
        Directory.CreateDirectory(Path.Combine(dest, "d"));
        System.IO.File.WriteAllText(Path.Combine(dest, "keep.txt"), "mine");
        System.IO.File.WriteAllText(Path.Combine(dest, "d/a.txt"), "old");
        System.IO.File.WriteAllText(Path.Combine(dest, "d/other.txt"), "mine too");
        await Assert.ThrowsAsync<DestinationException>(() => Stage(dest, force: false, File("d/a.txt", "new")));

        (await Stage(dest, force: true, Dir("d", (UnixFileMode)0b111_000_000), File("d/a.txt", "new"))).Publish();
        Assert.Equal(["d", "d/a.txt", "d/other.txt", "keep.txt"], Names(dest));
        Assert.Equal("new", System.IO.File.ReadAllText(Path.Combine(dest, "d/a.txt")));
        Assert.Equal("mine too", System.IO.File.ReadAllText(Path.Combine(dest, "d/other.txt")));
        Assert.Equal((UnixFileMode)0b111_000_000, System.IO.File.GetUnixFileMode(Path.Combine(dest, "d")));
        Assert.Equal(Then.UtcDateTime, Directory.GetLastWriteTimeUtc(Path.Combine(dest, "d")));
    }

    [Fact]
    public async Task A_file_over_a_folder_is_refused_naming_it_and_the_rest_of_the_staging_removed()
    {
        var dest = _dir["dest"];
        Directory.CreateDirectory(Path.Combine(dest, "x.txt"));
        var staged = await Stage(dest, force: true, File("a.txt", "a"), Dir("d", (UnixFileMode)0b111_101_101), File("d/b.txt", "b"), File("x.txt", "x"));
        var e = Assert.Throws<DestinationException>(staged.Publish);
        Assert.Contains("a folder is there and the backup has a file", e.Message, StringComparison.Ordinal);
        Assert.Contains("(nothing was moved)", e.Message, StringComparison.Ordinal);
        Assert.Equal(["x.txt"], Names(dest)); // found before anything moved: no half restore
    }

    [Fact]
    public async Task A_staging_left_by_a_killed_restore_is_removed_and_one_of_a_running_restore_kept()
    {
        var dest = _dir["dest"];
        var dead = Path.Combine(dest, Staging.Prefix + "4999999-0badf00d");
        Directory.CreateDirectory(Path.Combine(dead, "half"));
        System.IO.File.WriteAllText(Path.Combine(dead, "half/written"), "x");
        (await Stage(dest, force: false, File("x.txt", "x"))).Publish();
        Assert.Equal(["x.txt"], Names(dest));

        var running = Path.Combine(dest, Staging.Prefix + "1-0badf00d"); // pid 1 is always there
        Directory.CreateDirectory(running);
        (await Stage(dest, force: true, File("y.txt", "y"))).Publish();
        Assert.True(Directory.Exists(running));
    }

    [Fact]
    public async Task The_archives_entry_for_the_top_folder_is_applied_to_the_destination_after_publishing()
    {
        var dest = _dir["dest"];
        (await Stage(dest, force: false, Dir(".", (UnixFileMode)0b111_101_000), File("x.txt", "x"))).Publish();
        Assert.Equal(["x.txt"], Names(dest));
        Assert.Equal((UnixFileMode)0b111_101_000, System.IO.File.GetUnixFileMode(dest));
        Assert.Equal(Then.UtcDateTime, Directory.GetLastWriteTimeUtc(dest));
    }

    [Fact]
    public async Task A_file_restore_that_is_discarded_removes_the_folders_it_created_and_only_those()
    {
        Directory.CreateDirectory(_dir["kept"]);
        var aside = await Staging.WriteAsideAsync(_dir["kept/a/b/db.sqlite"], new MemoryStream([1, 2, 3]), CancellationToken.None);
        Assert.Equal(3, aside.Bytes);
        Assert.Equal(_dir["kept/a/b"], Path.GetDirectoryName(aside.Temp));
        Assert.StartsWith(Staging.Prefix, Path.GetFileName(aside.Temp), StringComparison.Ordinal);
        aside.Staged(new Dictionary<string, long>()).Discard();
        Assert.True(Directory.Exists(_dir["kept"]));
        Assert.Empty(Directory.GetFileSystemEntries(_dir["kept"]));

        var published = await Staging.WriteAsideAsync(_dir["kept/a/db.sqlite"], new MemoryStream([4]), CancellationToken.None);
        published.Staged(new Dictionary<string, long>()).Publish();
        Assert.Equal(["a", "a/db.sqlite"], Names(_dir["kept"]));
    }
}
