using Backstop.Targets.S3;
using Backstop.Tests.Support;

namespace Backstop.Tests.Targets;

public sealed class MultipartJournalTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A journal as a process killed with -9 leaves it: another pid's name (one that cannot be running), lines as written.</summary>
    private void Dead(string text) => File.WriteAllText(System.IO.Path.Combine(_dir.Path, $"{MultipartJournal.Prefix}{int.MaxValue - 1}-0a0b0c0d.journal"), text);

    [Fact]
    public void A_dead_process_journal_gives_its_open_uploads_and_the_keys_it_had_not_begun_and_ignores_a_torn_line()
    {
        Dead("intent s/1/a.zst\nbegin u1 s/1/a.zst\nintent s/1/b.zst\nbegin u2 s/1/b.zst\nend u1\nintent s/1/c.zst\nbegin u3 s/1/c");
        var (_, open, intents) = Assert.Single(MultipartJournal.Dead(_dir.Path));
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
        Assert.Empty(MultipartJournal.Dead(_dir.Path)); // this process is alive
        journal.End("u1");
        Assert.Empty(Directory.GetFiles(_dir.Path)); // a process that finished its uploads leaves no journal
    }
}
