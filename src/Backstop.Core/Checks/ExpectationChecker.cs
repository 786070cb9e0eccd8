using Backstop.Core.Config;

namespace Backstop.Core.Checks;

public enum FindingSeverity
{
    Warn,
    Fail,
}

/// <summary>One broken expectation, with the numbers.</summary>
public sealed record Finding(FindingSeverity Severity, string Message);

/// <summary>A past valid snapshot's size and facts, for shrink checks.</summary>
public sealed record HistoryPoint(long RawBytes, IReadOnlyDictionary<string, long> Facts);

/// <summary>
/// Checks a captured snapshot against its source's expectations: an empty artifact always fails; <c>min_bytes</c>
/// and <c>min_&lt;fact&gt;</c>; <c>max_shrink</c> against the median of the last five valid snapshots.
/// </summary>
public static class ExpectationChecker
{
    public const int HistoryDepth = 5;

    public static IReadOnlyList<Finding> Check(
        Expectations expect,
        IReadOnlyList<(string Name, long RawBytes)> artifacts,
        long rawBytes,
        IReadOnlyDictionary<string, long> facts,
        IReadOnlyList<HistoryPoint> history)
    {
        ArgumentNullException.ThrowIfNull(expect);
        ArgumentNullException.ThrowIfNull(artifacts);
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentNullException.ThrowIfNull(history);
        var findings = new List<Finding>();
        if (artifacts.Count == 0)
        {
            findings.Add(new Finding(FindingSeverity.Fail, "the source produced no artifact"));
        }

        foreach (var (name, raw) in artifacts)
        {
            if (raw == 0)
            {
                findings.Add(new Finding(FindingSeverity.Fail, $"artifact {name} is empty (0 bytes): an empty dump is never a backup"));
            }
        }

        if (expect.MinBytes is { } minBytes && rawBytes < minBytes)
        {
            findings.Add(new Finding(FindingSeverity.Fail,
                $"the snapshot holds {rawBytes} bytes ({Quantities.FormatSize(rawBytes)}), less than expect.min_bytes {minBytes} ({Quantities.FormatSize(minBytes)})"));
        }

        foreach (var (fact, min) in expect.MinFacts)
        {
            var have = facts.GetValueOrDefault(fact);
            if (have < min)
            {
                findings.Add(new Finding(FindingSeverity.Fail, $"the source reported {have} {fact}, fewer than expect.min_{fact} {min}"));
            }
        }

        if (expect.MaxShrinkPercent is { } maxShrink && history.Count > 0)
        {
            var recent = history.TakeLast(HistoryDepth).ToList();
            var severity = expect.OnAnomaly == AnomalyAction.Warn ? FindingSeverity.Warn : FindingSeverity.Fail;
            CheckShrink("bytes", rawBytes, recent.Select(h => h.RawBytes).ToList(), maxShrink, severity, findings);
            foreach (var (fact, value) in facts)
            {
                if (fact == "bytes")
                {
                    continue;
                }

                var past = recent.Where(h => h.Facts.ContainsKey(fact)).Select(h => h.Facts[fact]).ToList();
                if (past.Count > 0)
                {
                    CheckShrink(fact, value, past, maxShrink, severity, findings);
                }
            }
        }

        return findings;
    }

    /// <summary>The median, as the lower middle for an even count (integer arithmetic only).</summary>
    public static long Median(IReadOnlyList<long> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[(sorted.Count - 1) / 2];
    }

    private static void CheckShrink(string what, long now, IReadOnlyList<long> past, int maxShrink, FindingSeverity severity, List<Finding> findings)
    {
        var median = Median(past);
        if (median <= 0)
        {
            return;
        }

        // now < median * (100 - maxShrink) / 100, in integers: now * 100 < median * (100 - maxShrink)
        if ((Int128)now * 100 < (Int128)median * (100 - maxShrink))
        {
            var shrink = (int)(((Int128)(median - now) * 100) / median);
            findings.Add(new Finding(severity,
                $"{what} shrank by {shrink}% ({now} against a median of {median} over the last {past.Count} valid snapshots), more than expect.max_shrink {maxShrink}%"));
        }
    }
}
