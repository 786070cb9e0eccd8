using Backstop.Core.Checks;
using Backstop.Core.Config;

namespace Backstop.Tests.Pipeline;

public class ExpectationCheckerTests
{
    private static readonly Dictionary<string, long> NoFacts = [];
    private static readonly string[] Counts = ["tables", "rows"];

    private static IReadOnlyList<Breach> Check(Expectations e, long raw, Dictionary<string, long>? facts = null, params SnapshotShape[] history) =>
        ExpectationChecker.Check(e, Counts, SnapshotShape.Single(raw, facts ?? NoFacts), history);

    private static SnapshotShape Past(long raw, long tables, string? id = null) =>
        SnapshotShape.Single(raw, new Dictionary<string, long> { ["tables"] = tables }, id);

    private static ArtifactShape Db(string name, long raw, long tables, long rows) =>
        new(name, raw, new Dictionary<string, long> { ["tables"] = tables, ["rows"] = rows });

    private static SnapshotShape Databases(string? id, params ArtifactShape[] dbs) =>
        new(id, dbs.Sum(d => d.RawBytes), new Dictionary<string, long>
        {
            ["tables"] = dbs.Sum(d => d.Facts["tables"]),
            ["rows"] = dbs.Sum(d => d.Facts["rows"]),
        }, dbs);

    [Fact]
    public void An_empty_artifact_always_fails()
    {
        var f = Check(Expectations.None, 0);
        Assert.Contains(f, x => x.Severity == BreachSeverity.Fail && x.Message.Contains("empty", StringComparison.Ordinal));
    }

    [Fact]
    public void A_20_byte_dump_fails_min_bytes()
    {
        var f = Check(Expectations.None with { MinBytes = 150_000 }, 20);
        Assert.Contains(f, x => x.Message.Contains("less than expect.min_bytes 150000", StringComparison.Ordinal));
    }

    [Fact]
    public void Min_facts_fail_with_the_numbers()
    {
        var e = Expectations.None with { MinFacts = new Dictionary<string, long> { ["tables"] = 30 } };
        var f = Check(e, 1000, new() { ["tables"] = 0 });
        Assert.Equal("the source reported 0 tables, fewer than expect.min_tables 30", Assert.Single(f).Message);
    }

    [Fact]
    public void Shrink_is_measured_against_the_median_of_the_last_five()
    {
        var e = Expectations.None with { MaxShrinkPercent = 50 };
        var history = new[] { 10L, 1000, 1000, 1000, 1000, 1000 }.Select(b => Past(b, 38)).ToArray();
        Assert.Empty(Check(e, 600, new() { ["tables"] = 38 }, history));
        var f = Check(e, 400, new() { ["tables"] = 38 }, history);
        Assert.Contains("bytes shrank by 60%", Assert.Single(f).Message, StringComparison.Ordinal);
        var tables = Check(e, 1000, new() { ["tables"] = 3 }, history);
        Assert.Contains("tables shrank by 92%", Assert.Single(tables).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void On_anomaly_warn_turns_shrink_into_a_warning()
    {
        var e = Expectations.None with { MaxShrinkPercent = 10, OnAnomaly = AnomalyAction.Warn };
        var f = Check(e, 10, null, SnapshotShape.Single(1000, NoFacts));
        Assert.Equal(BreachSeverity.Warn, Assert.Single(f).Severity);
    }

    [Fact]
    public void Without_history_shrink_cannot_fail() =>
        Assert.Empty(Check(Expectations.None with { MaxShrinkPercent = 10 }, 10));

    [Fact]
    public void Median_uses_integers() => Assert.Equal(3, ExpectationChecker.Median([5, 1, 3, 4, 2, 100]));

    [Fact]
    public void By_default_a_count_that_falls_to_zero_fails_naming_the_last_valid_snapshot()
    {
        // Bytes barely moved (an empty schema dump is not much smaller), tables went from 30 to 0.
        var f = Check(Expectations.Default, 900, new() { ["tables"] = 0, ["rows"] = 0 },
            SnapshotShape.Single(1000, new Dictionary<string, long> { ["tables"] = 30, ["rows"] = 500 }, "20260101T000000Z-aaaa"));
        var tables = Assert.Single(f, x => x.Message.StartsWith("tables fell to 0 from 30", StringComparison.Ordinal));
        Assert.Equal(BreachSeverity.Fail, tables.Severity);
        Assert.Contains("20260101T000000Z-aaaa", tables.Message, StringComparison.Ordinal);
        Assert.Contains(f, x => x.Message.StartsWith("rows fell to 0 from 500", StringComparison.Ordinal));
        // How to accept it is said once, after the last finding it applies to, not once per fact.
        Assert.Single(f, x => x.Message.Contains("--accept-shrink", StringComparison.Ordinal));
        Assert.Contains("--accept-shrink", f[^1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void By_default_max_shrink_is_50_percent_and_none_turns_it_off()
    {
        var history = Enumerable.Range(0, 5).Select(_ => Past(1000, 30)).ToArray();
        Assert.Contains(Check(Expectations.Default, 1000, new() { ["tables"] = 1 }, history),
            x => x.Severity == BreachSeverity.Fail && x.Message.StartsWith("tables shrank by 96%", StringComparison.Ordinal));
        Assert.Contains(Check(Expectations.Default, 400, new() { ["tables"] = 30 }, history),
            x => x.Severity == BreachSeverity.Fail && x.Message.StartsWith("bytes shrank by 60%", StringComparison.Ordinal));
        Assert.Empty(Check(Expectations.Default with { MaxShrinkPercent = null }, 400, new() { ["tables"] = 1 }, history));
    }

    [Fact]
    public void One_database_of_several_losing_its_tables_is_caught_though_the_total_barely_moves()
    {
        var before = Databases("s1", Db("big.dump", 100_000, 40, 100_000), Db("small.dump", 5_000, 12, 300));
        var now = Databases(null, Db("big.dump", 100_000, 40, 100_000), Db("small.dump", 4_000, 0, 0));
        var f = ExpectationChecker.Check(Expectations.Default, Counts, now, [before]);
        Assert.Contains(f, x => x.Severity == BreachSeverity.Fail && x.Message.StartsWith("artifact small.dump: tables fell to 0 from 12", StringComparison.Ordinal));
        Assert.DoesNotContain(f, x => x.Message.StartsWith("tables", StringComparison.Ordinal));

        var halved = Databases(null, Db("big.dump", 100_000, 40, 100_000), Db("small.dump", 5_000, 5, 300));
        Assert.Contains(ExpectationChecker.Check(Expectations.Default, Counts, halved, [before]),
            x => x.Message.StartsWith("artifact small.dump: tables shrank by 58%", StringComparison.Ordinal));
    }

    [Fact]
    public void A_database_that_disappeared_is_named()
    {
        var before = Databases("s1", Db("a.dump", 1000, 3, 10), Db("b.dump", 1000, 4, 10));
        var now = Databases(null, Db("a.dump", 1000, 3, 10));
        var f = ExpectationChecker.Check(Expectations.Default with { MaxShrinkPercent = null }, Counts, now, [before]);
        Assert.Contains("artifact b.dump (4 tables, 10 rows in the last valid snapshot s1) is gone", Assert.Single(f).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Allow_empty_turns_off_the_fall_to_zero_rule_and_the_first_snapshot_warning()
    {
        var e = Expectations.Default with { AllowEmpty = true, MaxShrinkPercent = null };
        Assert.Empty(Check(e, 100, new() { ["tables"] = 0 }, Past(1000, 30)));
        Assert.Empty(Check(e, 100, new() { ["tables"] = 0 }));
    }

    [Fact]
    public void A_first_snapshot_that_holds_nothing_is_a_warning_saying_what_to_check()
    {
        var f = Assert.Single(ExpectationChecker.Check(Expectations.Default, ["databases", "tables"], SnapshotShape.Single(2048,
            new Dictionary<string, long> { ["databases"] = 1, ["tables"] = 0 }), []));
        Assert.Equal(BreachSeverity.Warn, f.Severity);
        Assert.Contains("the first snapshot holds nothing (tables 0)", f.Message, StringComparison.Ordinal);
        Assert.Contains("allow_empty: true", f.Message, StringComparison.Ordinal);
        Assert.Empty(ExpectationChecker.Check(Expectations.Default, ["tables"], SnapshotShape.Single(2048,
            new Dictionary<string, long> { ["tables"] = 1 }), []));
    }

    [Fact]
    public void A_source_that_never_held_anything_stays_degraded_run_after_run()
    {
        var empty = SnapshotShape.Single(2048, new Dictionary<string, long> { ["tables"] = 0 });
        var f = Assert.Single(ExpectationChecker.Check(Expectations.Default, ["tables"], empty, [empty, empty]));
        Assert.Equal(BreachSeverity.Warn, f.Severity);
        Assert.Contains("has never held anything", f.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_accepted_shrink_is_recorded_not_failed_and_says_no_hint()
    {
        var f = ExpectationChecker.Check(Expectations.Default, Counts, SnapshotShape.Single(100, new Dictionary<string, long> { ["tables"] = 0 }),
            [Past(1000, 30)], acceptShrink: true);
        Assert.NotEmpty(f);
        Assert.All(f, x => Assert.Equal(BreachSeverity.Accepted, x.Severity));
        Assert.All(f, x => Assert.DoesNotContain("--accept-shrink", x.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void Config_check_describes_defaults_and_opt_outs()
    {
        var d = Expectations.Default.Describe(["files"]);
        Assert.Contains("a count (files) that falls to 0 from the last valid snapshot fails, in total and per artifact (default)", d);
        Assert.Contains(d, r => r.StartsWith("max_shrink: 50% against the median", StringComparison.Ordinal) && r.EndsWith("(default)", StringComparison.Ordinal));
        var off = (Expectations.Default with { MaxShrinkPercent = null, AllowEmpty = true }).Describe(["files"]);
        Assert.Contains("max_shrink: none (no shrink check)", off);
        Assert.DoesNotContain(off, r => r.Contains("falls to 0", StringComparison.Ordinal));
    }
}
