using System.Globalization;
using Backstop.Core.Config;

namespace Backstop.Core.Retention;

/// <summary>
/// <c>retention: {last, hourly, daily, weekly, monthly, yearly}</c>: how many snapshots, and how many of each calendar
/// bucket (UTC; ISO weeks), to keep. Zero means the rule is off; all zero means keep everything.
/// </summary>
public sealed record RetentionRules(int Last, int Hourly, int Daily, int Weekly, int Monthly, int Yearly)
{
    public bool IsEmpty => Last == 0 && Hourly == 0 && Daily == 0 && Weekly == 0 && Monthly == 0 && Yearly == 0;

    /// <summary>The block's keys (the top level's <c>retention:</c>; a source's own takes the same).</summary>
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("retention.last", "3", "Keep the newest N valid snapshots (0: the rule is off; all 0: keep everything)"),
        new("retention.hourly", "0", "Keep the newest snapshot of each of the newest N hours that hold one (UTC)"),
        new("retention.daily", "7", "… of each of N days"),
        new("retention.weekly", "4", "… of each of N ISO weeks"),
        new("retention.monthly", "12", "… of each of N months"),
        new("retention.yearly", "0", "… of each of N years"),
    ];

    public static RetentionRules? Parse(ConfigMap? map)
    {
        if (map is null)
        {
            return null;
        }

        var rules = new RetentionRules(
            map.IntOr("last", 0, 0, 100_000), map.IntOr("hourly", 0, 0, 100_000), map.IntOr("daily", 0, 0, 100_000),
            map.IntOr("weekly", 0, 0, 100_000), map.IntOr("monthly", 0, 0, 100_000), map.IntOr("yearly", 0, 0, 100_000));
        map.EnsureAllKeysKnown(KeyRows.Hint("retention", Keys, "retention."));
        return rules;
    }

    public override string ToString() =>
        string.Join(", ", new[] { ("last", Last), ("hourly", Hourly), ("daily", Daily), ("weekly", Weekly), ("monthly", Monthly), ("yearly", Yearly) }
            .Where(r => r.Item2 > 0).Select(r => $"{r.Item1} {r.Item2}"));
}

/// <summary>A valid snapshot that retention may keep or let go.</summary>
public sealed record RetentionCandidate(string Id, DateTimeOffset Time);

/// <summary>Keep, with every rule that keeps it; or go, with why.</summary>
public sealed record RetentionDecision(string Id, DateTimeOffset Time, bool Keep, IReadOnlyList<string> Reasons);

public static class RetentionPolicy
{
    /// <summary>
    /// Decides over valid snapshots only (failed ones never count). The newest is always kept. A bucket rule keeps the
    /// newest snapshot of each of the newest N buckets that hold one (as restic's forget does).
    /// </summary>
    public static IReadOnlyList<RetentionDecision> Decide(IEnumerable<RetentionCandidate> valid, RetentionRules rules)
    {
        ArgumentNullException.ThrowIfNull(valid);
        ArgumentNullException.ThrowIfNull(rules);
        var newestFirst = valid.OrderByDescending(c => c.Time).ThenByDescending(c => c.Id, StringComparer.Ordinal).ToList();
        var reasons = newestFirst.ToDictionary(c => c.Id, _ => new List<string>(), StringComparer.Ordinal);
        if (newestFirst.Count > 0)
        {
            reasons[newestFirst[0].Id].Add("newest valid snapshot");
        }

        for (var i = 0; i < Math.Min(rules.Last, newestFirst.Count); i++)
        {
            reasons[newestFirst[i].Id].Add($"last {rules.Last}");
        }

        void Buckets(int count, string name, Func<DateTimeOffset, string> bucket)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var c in newestFirst)
            {
                if (seen.Count == count)
                {
                    break;
                }

                var key = bucket(c.Time.ToUniversalTime());
                if (seen.Add(key))
                {
                    reasons[c.Id].Add($"{name} {key}");
                }
            }
        }

        Buckets(rules.Hourly, "hourly", t => t.ToString("yyyy-MM-dd HH':00'", CultureInfo.InvariantCulture));
        Buckets(rules.Daily, "daily", t => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        Buckets(rules.Weekly, "weekly", t => $"{ISOWeek.GetYear(t.UtcDateTime)}-W{ISOWeek.GetWeekOfYear(t.UtcDateTime):00}");
        Buckets(rules.Monthly, "monthly", t => t.ToString("yyyy-MM", CultureInfo.InvariantCulture));
        Buckets(rules.Yearly, "yearly", t => t.ToString("yyyy", CultureInfo.InvariantCulture));

        return newestFirst.Select(c => reasons[c.Id] is { Count: > 0 } r
            ? new RetentionDecision(c.Id, c.Time, true, r)
            : new RetentionDecision(c.Id, c.Time, false, [$"matches no rule ({rules})"])).ToList();
    }
}
