using Backstop.Core.Locking;
using Backstop.Tests.Support;

namespace Backstop.Tests.Pipeline;

public class RunLockTests
{
    [Fact]
    public void A_second_holder_is_refused_naming_the_first()
    {
        using var dir = new TempDir();
        var path = dir["catalog.db.lock"];
        using var first = RunLock.Acquire(path);
        var e = Assert.Throws<LockHeldException>(() => RunLock.Acquire(path));
        Assert.Contains($"pid {Environment.ProcessId}", e.Message, StringComparison.Ordinal);
        Assert.Contains("started", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_released_lock_is_taken_cleanly()
    {
        using var dir = new TempDir();
        var path = dir["catalog.db.lock"];
        RunLock.Acquire(path).Dispose();
        using var again = RunLock.Acquire(path);
        Assert.Null(again.TakenOverFrom);
    }

    [Fact]
    public void A_lock_left_by_a_dead_holder_is_taken_over_and_said_so()
    {
        using var dir = new TempDir();
        var path = dir["catalog.db.lock"];
        // What a killed holder leaves: its line in the file, and no flock (the kernel dropped it).
        File.WriteAllText(path, "pid 999999 on somehost, started 2026-01-01T00:00:00Z\n");
        using var l = RunLock.Acquire(path);
        Assert.Equal("pid 999999 on somehost, started 2026-01-01T00:00:00Z", l.TakenOverFrom);
    }
}
