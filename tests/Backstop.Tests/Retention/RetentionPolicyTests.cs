using System.Globalization;
using Backstop.Core.Retention;

namespace Backstop.Tests.Retention;

/// <summary>Retention over random histories, against a plain oracle written from the rules' definitions.</summary>
public sealed class RetentionPolicyTests
{
    private static readonly DateTimeOffset Start = new(2023, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static List<RetentionCandidate> History(Random rng, int count)
    {
        var t = Start;
        var list = new List<RetentionCandidate>();
        for (var i = 0; i < count; i++)
        {
            // Gaps from minutes to weeks, so that hours, days, weeks, months and years all repeat and skip.
            t = t.AddMinutes(rng.Next(4) switch { 0 => rng.Next(1, 90), 1 => rng.Next(60, 60 * 30), 2 => rng.Next(60 * 24, 60 * 24 * 10), _ => rng.Next(60 * 24 * 20, 60 * 24 * 90) });
            list.Add(new RetentionCandidate($"s{i:000}", t));
        }

        return list;
    }

    /// <summary>The kept set by definition: the newest, the N newest, and the newest of each of the N newest buckets per rule.</summary>
    private static HashSet<string> Oracle(List<RetentionCandidate> valid, RetentionRules rules)
    {
        var kept = new HashSet<string>(StringComparer.Ordinal);
        var newestFirst = valid.OrderByDescending(c => c.Time).ToList();
        if (newestFirst.Count == 0)
        {
            return kept;
        }

        kept.Add(newestFirst[0].Id);
        kept.UnionWith(newestFirst.Take(rules.Last).Select(c => c.Id));
        foreach (var (n, key) in new (int, Func<DateTimeOffset, string>)[]
                 {
                     (rules.Hourly, t => t.ToString("yyyyMMddHH", CultureInfo.InvariantCulture)),
                     (rules.Daily, t => t.ToString("yyyyMMdd", CultureInfo.InvariantCulture)),
                     (rules.Weekly, t => $"{ISOWeek.GetYear(t.UtcDateTime)}{ISOWeek.GetWeekOfYear(t.UtcDateTime)}"),
                     (rules.Monthly, t => t.ToString("yyyyMM", CultureInfo.InvariantCulture)),
                     (rules.Yearly, t => t.ToString("yyyy", CultureInfo.InvariantCulture)),
                 })
        {
            kept.UnionWith(newestFirst.GroupBy(c => key(c.Time)).Take(n).Select(g => g.First().Id)); // groups keep newest-first order
        }

        return kept;
    }

    [Fact]
    public void Random_histories_keep_exactly_what_the_rules_say_and_always_the_newest_valid()
    {
        var rng = new Random(20261122);
        for (var round = 0; round < 600; round++)
        {
            var all = History(rng, rng.Next(0, 70));
            var valid = all.Where(_ => rng.Next(5) != 0).ToList(); // about one in five failed: they never reach the policy
            var rules = new RetentionRules(rng.Next(4), rng.Next(4), rng.Next(8), rng.Next(5), rng.Next(13), rng.Next(3));
            var decisions = RetentionPolicy.Decide(valid, rules);

            Assert.Equal(valid.Count, decisions.Count);
            Assert.All(decisions, d => Assert.Contains(valid, c => c.Id == d.Id));
            Assert.Equal(Oracle(valid, rules), decisions.Where(d => d.Keep).Select(d => d.Id).ToHashSet(StringComparer.Ordinal));
            if (valid.Count > 0)
            {
                var newest = valid.MaxBy(c => c.Time)!;
                Assert.True(decisions.Single(d => d.Id == newest.Id).Keep, $"round {round}: the newest valid snapshot was let go");
            }

            Assert.All(decisions, d => Assert.NotEmpty(d.Reasons));
            Assert.All(decisions.Where(d => !d.Keep), d => Assert.StartsWith("matches no rule", d.Reasons[0], StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Each_rule_names_itself_and_its_bucket()
    {
        var c = new List<RetentionCandidate>
        {
            new("a", new DateTimeOffset(2025, 3, 30, 23, 10, 0, TimeSpan.Zero)),
            new("b", new DateTimeOffset(2025, 3, 31, 1, 0, 0, TimeSpan.Zero)),
            new("c", new DateTimeOffset(2025, 3, 31, 9, 0, 0, TimeSpan.Zero)),
            new("d", new DateTimeOffset(2025, 4, 1, 9, 0, 0, TimeSpan.Zero)),
        };
        var d = RetentionPolicy.Decide(c, new RetentionRules(1, 0, 2, 1, 2, 0)).ToDictionary(x => x.Id);
        Assert.Equal(["newest valid snapshot", "last 1", "daily 2025-04-01", "weekly 2025-W14", "monthly 2025-04"], d["d"].Reasons);
        Assert.Equal(["daily 2025-03-31", "monthly 2025-03"], d["c"].Reasons);
        Assert.False(d["b"].Keep);
        Assert.False(d["a"].Keep);
        Assert.Equal("matches no rule (last 1, daily 2, weekly 1, monthly 2)", d["a"].Reasons[0]);
    }
}
