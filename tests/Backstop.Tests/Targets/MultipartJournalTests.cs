using Backstop.Targets.S3;
using Backstop.Tests.Support;

namespace Backstop.Tests.Targets;

public sealed class MultipartJournalTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A journal as a process killed with -9 leaves it: lines as written, and no lock on it any more.</summary>
    private void Dead(string text) => File.WriteAllText(System.IO.Path.Combine(_dir.Path, $"{MultipartJournal.Prefix}1-0a0b0c0d.journal"), text);

    [Fact]
    public void A_dead_process_journal_gives_its_open_uploads_and_the_keys_it_had_not_begun_and_ignores_a_torn_line()
    {
        Dead("intent s/1/a.zst\nbegin u1 s/1/a.zst\nintent s/1/b.zst\nbegin u2 s/1/b.zst\nend u1\nintent s/1/c.zst\nbegin u3 s/1/c");
        var (file, open, intents, _) = Assert.Single(MultipartJournal.Dead(_dir.Path));
        file.Dispose();
        Assert.Equal(new Dictionary<string, string> { ["u2"] = "s/1/b.zst" }, open);
        Assert.Equal(["s/1/c.zst"], intents); // its begin line was torn: looked up by key
    }

    [Fact]
    public void A_live_process_journal_is_left_alone_and_its_own_journal_goes_once_nothing_is_open()
    {
        var journal = new MultipartJournal(_dir.Path);
        journal.Intent("s/1/a.zst");
        journal.Begin("u1", "s/1/a.zst");
        Assert.Single(Directory.GetFiles(_dir.Path));
        Assert.Empty(MultipartJournal.Dead(_dir.Path)); // its owner is alive: the lock says so, whatever its pid
        journal.End("u1");
        Assert.Empty(Directory.GetFiles(_dir.Path)); // a process that finished its uploads leaves no journal
    }
}

public sealed class HeldFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_held_file_is_taken_only_once_its_owner_lets_it_go_and_by_one_taker()
    {
        var path = _dir["mark"];
        var owner = Backstop.Core.FileSystem.HeldFile.Create(path);
        owner.Append("begin\n"u8);
        Assert.Null(Backstop.Core.FileSystem.HeldFile.TakeAbandoned(path)); // alive (even in this very process)
        owner.Dispose(); // what the kernel does when the owner dies, however it dies
        using var taken = Backstop.Core.FileSystem.HeldFile.TakeAbandoned(path);
        Assert.NotNull(taken);
        Assert.Equal("begin\n", taken.ReadAllText());
        Assert.Null(Backstop.Core.FileSystem.HeldFile.TakeAbandoned(path)); // a second sweeper does not take it too
    }

    [Fact]
    public void A_file_locked_by_another_process_is_alive_and_free_once_that_process_is_killed()
    {
        var path = _dir.Write("journal", "intent k\n");
        using var holder = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("flock", ["-s", path, "sleep", "60"]))!;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (Backstop.Core.FileSystem.HeldFile.TakeAbandoned(path) is { } early)
        {
            early.Dispose(); // flock(1) has not taken it yet
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "flock(1) never took the lock");
            Thread.Sleep(20);
        }

        holder.Kill(entireProcessTree: true);
        holder.WaitForExit();
        Backstop.Core.FileSystem.HeldFile? taken;
        clock.Restart();
        while ((taken = Backstop.Core.FileSystem.HeldFile.TakeAbandoned(path)) is null)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the lock stayed after its holders were killed");
            Thread.Sleep(20); // its child (sleep), which holds the lock too, is gone a moment after flock(1)
        }

        taken.Dispose();
    }
}
