using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Tests.Pipeline;

/// <summary>
/// The recovery window of a source with a continuous archive: from the oldest base that becomes consistent to the newest
/// file reached without a gap; a gap before the newest file or an RPO over wal.max_rpo fails the source, a gap inside
/// the window or a target without a verified copy degrades it.
/// </summary>
public class ArchiveWindowTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);
    private const long Segment = 16;

    // Facts folder (as a number), start and end positions, as a kind records them.
    private static readonly SourceDefinition Def = new("pg", "postgres", new object(), Expectations.None, TimeSpan.FromDays(1), 1, ["nas", "usb"], default)
    {
        Archive = new ArchivePolicy(TimeSpan.FromMinutes(5), ArchivePolicy.DefaultQueueMax,
            f => f.TryGetValue("tli", out var t) ? new ArchiveRange(t.ToString("X8", System.Globalization.CultureInfo.InvariantCulture), f["start"], f["end"]) : null),
    };

    private static SnapshotInfo Base(string id, TimeSpan ago, long start, long end, long timeline = 1) =>
        new(id, "pg", "postgres", SnapshotState.Committed, Now - ago - TimeSpan.FromMinutes(1), Now - ago, "h", 10, 5,
            new Dictionary<string, long> { ["tli"] = timeline, ["start"] = start, ["end"] = end }, [], null,
            [new ArtifactInfo("base.tar", "base.tar.zst", 10, 5, "00", "zstd", new Dictionary<string, long>(), [new CopyInfo("nas", CopyState.Verified, Now, null)])]);

    private static ArchiveInfo File(long index, TimeSpan ago, long timeline = 1, params string[] verifiedOn) =>
        new("pg", $"{timeline:X8}{index:X16}", timeline.ToString("X8", System.Globalization.CultureInfo.InvariantCulture), index * Segment, (index + 1) * Segment, Segment, "00", "x.zst", Now - ago,
            (verifiedOn.Length == 0 ? ["nas", "usb"] : verifiedOn).Select(t => new CopyInfo(t, t == "-" ? CopyState.Failed : CopyState.Verified, Now, t == "-" ? "down" : null))
            .Select(c => c.Target == "-" ? c with { Target = "nas" } : c).ToList());

    private static ArchiveWindow Window(SnapshotInfo[] bases, params ArchiveInfo[] files) => ArchiveWindow.Compute(Def, bases, files, Now);

    [Fact]
    public void A_whole_chain_gives_the_window_from_the_oldest_base_to_the_newest_file_and_the_current_rpo()
    {
        var w = Window([Base("b1", TimeSpan.FromHours(3), 16, 20), Base("b2", TimeSpan.FromHours(1), 48, 50)],
            File(1, TimeSpan.FromHours(3)), File(2, TimeSpan.FromHours(2)), File(3, TimeSpan.FromMinutes(30)), File(4, TimeSpan.FromMinutes(1)));
        Assert.Equal(Now - TimeSpan.FromHours(3), w.From);
        Assert.Equal("b1", w.FromSnapshot);
        Assert.Equal(Now - TimeSpan.FromMinutes(1), w.To);
        Assert.Equal(60, w.RpoSeconds);
        Assert.True(w.RpoMet);
        Assert.Empty(w.Failing);
        Assert.Empty(w.Degraded);
    }

    [Fact]
    public void A_gap_before_the_newest_file_fails_the_source_and_names_where_the_window_ends()
    {
        // File 3 was never stored anywhere (let go past queue_max): file 4 cannot be reached.
        var w = Window([Base("b1", TimeSpan.FromHours(3), 16, 20)],
            File(1, TimeSpan.FromHours(3)), File(2, TimeSpan.FromHours(2)), File(3, TimeSpan.FromMinutes(30), 1, "-"), File(4, TimeSpan.FromMinutes(1)));
        Assert.Equal(Now - TimeSpan.FromHours(2), w.To);
        var failing = Assert.Single(w.Failing);
        Assert.Contains("the archive breaks after 000000010000000000000002", failing, StringComparison.Ordinal);
        Assert.Contains("000000010000000000000003 has no verified copy on any target: down", failing, StringComparison.Ordinal);

        var status = StatusReport.Compute(Def, [Base("b1", TimeSpan.FromHours(3), 16, 20)], Now, null, w);
        Assert.Equal(SourceState.Failing, status.State);
        Assert.Same(w, status.Archive);
    }

    [Fact]
    public void A_gap_that_a_newer_base_jumps_over_degrades_the_window_which_is_whole_from_that_base()
    {
        var w = Window([Base("b1", TimeSpan.FromHours(5), 16, 20), Base("b2", TimeSpan.FromHours(2), 64, 70)],
            File(1, TimeSpan.FromHours(5)), File(2, TimeSpan.FromHours(4)), File(4, TimeSpan.FromHours(2)), File(5, TimeSpan.FromMinutes(2)));
        Assert.Empty(w.Failing);
        Assert.Equal(Now - TimeSpan.FromHours(2), w.From);
        Assert.Equal("b2", w.FromSnapshot);
        Assert.Equal(Now - TimeSpan.FromMinutes(2), w.To);
        Assert.Contains(w.Degraded, d => d.Contains("gap after 000000010000000000000002 (next: 000000010000000000000004)", StringComparison.Ordinal));
    }

    [Fact]
    public void An_archive_that_stopped_more_than_max_rpo_ago_fails_the_source()
    {
        var w = Window([Base("b1", TimeSpan.FromHours(3), 16, 20)], File(1, TimeSpan.FromHours(3)), File(2, TimeSpan.FromMinutes(20)));
        Assert.False(w.RpoMet);
        Assert.Equal(1200, w.RpoSeconds);
        Assert.Contains("is 20m old, wal.max_rpo is 5m", Assert.Single(w.Failing), StringComparison.Ordinal);
    }

    [Fact]
    public void A_base_the_archive_never_reaches_the_end_of_is_failing()
    {
        var w = Window([Base("b1", TimeSpan.FromMinutes(3), 16, 40)], File(1, TimeSpan.FromMinutes(2)));
        Assert.Null(w.To);
        Assert.Contains("never becomes consistent", Assert.Single(w.Failing), StringComparison.Ordinal);
    }

    [Fact]
    public void A_target_without_a_verified_copy_of_some_files_degrades_the_window()
    {
        var w = Window([Base("b1", TimeSpan.FromHours(3), 16, 20)], File(1, TimeSpan.FromHours(3)), File(2, TimeSpan.FromMinutes(1), 1, "nas"));
        Assert.Empty(w.Failing);
        Assert.Contains("1 archived file(s) have no verified copy on target 'usb' (first: 000000010000000000000002, never stored there)", Assert.Single(w.Degraded),
            StringComparison.Ordinal);
    }

    [Fact]
    public void A_timeline_switch_continues_the_chain_in_the_next_folder()
    {
        // Timeline 1 up to file 2; a promotion at a position inside file 3: timeline 2 goes on from file 3.
        var w = Window([Base("b1", TimeSpan.FromHours(3), 16, 20)],
            File(1, TimeSpan.FromHours(3)), File(2, TimeSpan.FromHours(2)), File(3, TimeSpan.FromMinutes(10), 2), File(4, TimeSpan.FromMinutes(1), 2));
        Assert.Empty(w.Failing);
        Assert.Equal(Now - TimeSpan.FromMinutes(1), w.To);
        Assert.Equal("000000020000000000000004", w.NewestFile);
    }

    [Fact]
    public void With_several_branches_the_chain_follows_the_newest_timelines_history_never_a_sibling()
    {
        // Timeline 2 branched from 1 inside file 3 (a failover); later timeline 3 branched from 1 inside file 2 (a
        // restore to an earlier moment, promoted). The newest timeline's history: 1 until 40, then 3.
        var lineage = (Func<IEnumerable<ArchiveFile>, IReadOnlyList<ArchiveStretch>?>)(files =>
            Cli.Plugins.Registry.Source("postgres")!.Lineage(files));
        var def = Def with { Archive = Def.Archive! with { Lineage = lineage } };
        var history2 = File(0, TimeSpan.FromHours(3), 2) with { Name = "00000002.history", Start = 0, End = 0, Detail = "1\t0/38\tno recovery target specified\n" };
        var history3 = File(0, TimeSpan.FromHours(1), 3) with { Name = "00000003.history", Start = 0, End = 0, Detail = "1\t0/28\tbefore 2026-12-06 10:00:00+00\n" };
        var w = ArchiveWindow.Compute(def, [Base("b1", TimeSpan.FromHours(5), 16, 20)],
        [
            File(1, TimeSpan.FromHours(5)), File(2, TimeSpan.FromHours(4)), File(3, TimeSpan.FromHours(3)),
            File(3, TimeSpan.FromMinutes(170), 2), File(4, TimeSpan.FromMinutes(160), 2), history2,
            File(2, TimeSpan.FromMinutes(50), 3), File(3, TimeSpan.FromMinutes(40), 3), File(4, TimeSpan.FromMinutes(2), 3), history3,
        ], Now);
        Assert.Empty(w.Failing);
        Assert.Equal("000000030000000000000004", w.NewestFile);

        // Timeline 3's first file is missing: the chain stops at timeline 1's last file before the branch, not on timeline 2.
        var broken = ArchiveWindow.Compute(def, [Base("b1", TimeSpan.FromHours(5), 16, 20)],
        [
            File(1, TimeSpan.FromHours(5)), File(2, TimeSpan.FromHours(4)), File(3, TimeSpan.FromHours(3)),
            File(3, TimeSpan.FromMinutes(170), 2), File(4, TimeSpan.FromMinutes(160), 2), history2,
            File(3, TimeSpan.FromMinutes(40), 3), File(4, TimeSpan.FromMinutes(2), 3), history3,
        ], Now);
        Assert.Equal("000000010000000000000001", broken.NewestFile);
        Assert.Contains("the archive breaks after 000000010000000000000001", Assert.Single(broken.Failing), StringComparison.Ordinal);
    }

    [Fact]
    public void A_base_on_a_timeline_newer_than_every_archived_history_follows_its_own_line_and_a_malformed_history_is_not_followed()
    {
        var lineage = (Func<IEnumerable<ArchiveFile>, IReadOnlyList<ArchiveStretch>?>)(files => Cli.Plugins.Registry.Source("postgres")!.Lineage(files));
        var def = Def with { Archive = Def.Archive! with { Lineage = lineage } };
        var history2 = File(0, TimeSpan.FromHours(9), 2) with { Name = "00000002.history", Start = 0, End = 0, Detail = "1\t0/18\tno recovery target specified\n" };

        // Timeline 3 was promoted with archiving off: its history never reached the archive. Its base still has a window.
        var w = ArchiveWindow.Compute(def, [Base("b3", TimeSpan.FromHours(2), 48, 50, timeline: 3)],
            [history2, File(2, TimeSpan.FromHours(8), 2), File(3, TimeSpan.FromHours(1), 3), File(4, TimeSpan.FromMinutes(1), 3)], Now);
        Assert.Empty(w.Failing);
        Assert.Equal("000000030000000000000004", w.NewestFile);

        // Timelines out of order (PostgreSQL refuses such a file): not a lineage to follow.
        Assert.Null(lineage([(history2 with { Detail = "1\t0/18\tx\n1\t0/20\ty\n" }).AsFile()]));
        Assert.Null(lineage([(history2 with { Detail = "3\t0/18\tx\n" }).AsFile()]));
        Assert.Null(lineage([(history2 with { Detail = "1\tnot-an-lsn\tx\n" }).AsFile()]));
        Assert.Equal([new ArchiveStretch("00000001", 0x18), new ArchiveStretch("00000002", long.MaxValue)], lineage([history2.AsFile()]));
    }
}
