using Backstop.Core.Checks;
using Backstop.Core.Config;

namespace Backstop.Tests.Pipeline;

public class ExpectationCheckerTests
{
    private static readonly Dictionary<string, long> NoFacts = [];

    private static IReadOnlyList<Finding> Check(Expectations e, long raw, Dictionary<string, long>? facts = null, params HistoryPoint[] history) =>
        ExpectationChecker.Check(e, [("a", raw)], raw, facts ?? NoFacts, history);

    [Fact]
    public void An_empty_artifact_always_fails()
    {
        var f = Check(Expectations.None, 0);
        Assert.Contains(f, x => x.Severity == FindingSeverity.Fail && x.Message.Contains("empty", StringComparison.Ordinal));
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
        var history = new[] { 10L, 1000, 1000, 1000, 1000, 1000 }
            .Select(b => new HistoryPoint(b, new Dictionary<string, long> { ["tables"] = 38 })).ToArray();
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
        var f = Check(e, 10, null, new HistoryPoint(1000, NoFacts));
        Assert.Equal(FindingSeverity.Warn, Assert.Single(f).Severity);
    }

    [Fact]
    public void Without_history_shrink_cannot_fail() =>
        Assert.Empty(Check(Expectations.None with { MaxShrinkPercent = 10 }, 10));

    [Fact]
    public void Median_uses_integers() => Assert.Equal(3, ExpectationChecker.Median([5, 1, 3, 4, 2, 100]));
}
