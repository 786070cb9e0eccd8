using Backstop.Core.Catalog;
using Backstop.Core.Config;

namespace Backstop.Tests.Pipeline;

public class StatusReportTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 10, 12, 0, 0, TimeSpan.Zero);

    private static readonly SourceDefinition Def = new("db", "sqlite", new object(), Expectations.None, TimeSpan.FromHours(24), 1, ["local"], default);

    private static SnapshotInfo Snap(string id, SnapshotState state, TimeSpan ago, CopyState copy = CopyState.Verified, string? error = null) =>
        new(id, "db", "sqlite", state, Now - ago - TimeSpan.FromMinutes(1), Now - ago, "h", 10, 5, new Dictionary<string, long>(), [], error,
            state == SnapshotState.Failed ? [] : [new ArtifactInfo("a", "a.zst", 10, 5, "00", "zstd", new Dictionary<string, long>(), [new CopyInfo("local", copy, Now, null)])]);

    private static SourceStatus Status(params SnapshotInfo[] s) => StatusReport.Compute(Def, s, Now);

    [Fact]
    public void No_snapshot_is_never() => Assert.Equal(SourceState.Never, Status().State);

    [Fact]
    public void Only_failed_runs_is_never_with_the_cause()
    {
        var s = Status(Snap("1", SnapshotState.Failed, TimeSpan.FromHours(1), error: "connection refused"));
        Assert.Equal(SourceState.Never, s.State);
        Assert.Equal("connection refused", s.LastRun!.Error);
        Assert.Null(s.LastValid);
    }

    [Fact]
    public void Fresh_and_verified_is_ok() => Assert.Equal(SourceState.Ok, Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(1))).State);

    [Fact]
    public void Older_than_the_rpo_is_stale()
    {
        var s = Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(30)));
        Assert.Equal(SourceState.Stale, s.State);
        Assert.False(s.RpoMet);
    }

    [Fact]
    public void A_failed_run_after_a_fresh_valid_one_is_failing()
    {
        var s = Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(2)), Snap("2", SnapshotState.Failed, TimeSpan.FromHours(1), error: "boom"));
        Assert.Equal(SourceState.Failing, s.State);
        Assert.Equal("1", s.LastValid!.Snapshot);
    }

    [Fact]
    public void A_newest_snapshot_whose_copy_went_missing_makes_the_source_degraded()
    {
        var s = Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(2)), Snap("2", SnapshotState.Committed, TimeSpan.FromHours(1), CopyState.Missing));
        Assert.Equal(SourceState.Degraded, s.State);
        Assert.Equal("1", s.LastValid!.Snapshot);
    }

    [Fact]
    public void The_only_snapshot_found_corrupt_leaves_no_valid_backup()
    {
        var s = Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(1), CopyState.Corrupt));
        Assert.Equal(SourceState.Never, s.State);
    }
}
