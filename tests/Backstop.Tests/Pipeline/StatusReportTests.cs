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
    public void A_newest_snapshot_whose_every_copy_went_missing_is_unrestorable_and_makes_the_source_failing()
    {
        // Positive evidence (the target answered: absent): the newest backup is broken, whatever older one restores.
        var s = Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(2)), Snap("2", SnapshotState.Committed, TimeSpan.FromHours(1), CopyState.Missing));
        Assert.Equal(SourceState.Failing, s.State);
        Assert.Equal("1", s.LastValid!.Snapshot);
        Assert.Contains(s.Reasons, r => r.Contains("the newest snapshot 2 is unrestorable", StringComparison.Ordinal) && r.Contains("falls back to 1", StringComparison.Ordinal));
    }

    [Fact]
    public void A_newest_snapshot_whose_copy_could_not_be_read_makes_the_source_degraded_not_failing()
    {
        // A target that timed out proves nothing: not unrestorable.
        var s = Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(2)), Snap("2", SnapshotState.Committed, TimeSpan.FromHours(1), CopyState.Failed));
        Assert.Equal(SourceState.Degraded, s.State);
        Assert.Equal("1", s.LastValid!.Snapshot);
    }

    [Fact]
    public void The_only_snapshot_found_corrupt_leaves_nothing_restorable_and_the_source_failing()
    {
        var s = Status(Snap("1", SnapshotState.Committed, TimeSpan.FromHours(1), CopyState.Corrupt));
        Assert.Equal(SourceState.Failing, s.State);
        Assert.Null(s.LastValid);
    }

    [Fact]
    public void The_state_from_the_catalog_reads_back_past_a_long_run_of_failures_to_the_last_valid_snapshot_as_the_whole_history_says()
    {
        using var dir = new Backstop.Tests.Support.TempDir();
        using var catalog = CatalogStore.Open(dir["catalog.db"]);
        var all = new List<SnapshotInfo>();
        for (var i = 0; i < 100; i++)
        {
            // 20 valid snapshots, then 80 failed runs (past the first windows of 8 and 64), the newest an hour ago.
            var snap = Snap($"2026{i:D4}", i < 20 ? SnapshotState.Committed : SnapshotState.Failed, TimeSpan.FromHours(100 - i), error: i < 20 ? null : "refused");
            catalog.BeginSnapshot(snap.Id, "db", "sqlite", snap.StartedAt, "h");
            catalog.FinishSnapshot(snap);
            all.Add(snap);
        }

        var recent = StatusReport.RecentEnough(catalog, Def);
        Assert.Equal(100, recent.Count); // widened 8, 64, then 512: the whole history, as no newer snapshot is valid
        var fromCatalog = StatusReport.Compute(Def, recent, Now, catalog.LatestDrills("db"));
        var fromHistory = StatusReport.Compute(Def, catalog.Snapshots("db"), Now);
        Assert.Equal("20260019", fromCatalog.LastValid!.Snapshot);
        Assert.Equal(fromHistory.State, fromCatalog.State);
        Assert.Equal(fromHistory.LastValid, fromCatalog.LastValid with { Copies = fromHistory.LastValid!.Copies });
        Assert.Equal(fromHistory.LastRun, fromCatalog.LastRun);
        Assert.Equal(fromHistory.Reasons, fromCatalog.Reasons);

        // A valid snapshot after them: the first window (8) is enough.
        var fresh = Snap("20260100", SnapshotState.Committed, TimeSpan.FromMinutes(10));
        catalog.BeginSnapshot(fresh.Id, "db", "sqlite", fresh.StartedAt, "h");
        catalog.FinishSnapshot(fresh);
        Assert.Equal(8, StatusReport.RecentEnough(catalog, Def).Count);
        Assert.Equal(SourceState.Ok, StatusReport.Compute(Def, StatusReport.RecentEnough(catalog, Def), Now).State);
    }
}
