using Backstop.Core.Config;

namespace Backstop.Core.Checks;

public enum BreachSeverity
{
    /// <summary>Recorded on the snapshot, which counts but is degraded.</summary>
    Warn,

    /// <summary>The snapshot does not count.</summary>
    Fail,

    /// <summary>A shrink the user accepted for this run (<c>run --accept-shrink</c>): recorded, not degraded.</summary>
    Accepted,
}

/// <summary>One broken expectation, with the numbers.</summary>
public sealed record Breach(BreachSeverity Severity, string Message);

/// <summary>One artifact's raw size and facts.</summary>
public sealed record ArtifactShape(string Name, long RawBytes, IReadOnlyDictionary<string, long> Facts)
{
    /// <summary>The bytes compared with history and min_bytes: the raw bytes, or for a chained artifact the whole tree's (a quiet night's level is small).</summary>
    public long Compared { get; init; } = RawBytes;
}

/// <summary>A snapshot's raw size and facts, in total and per artifact: the one being checked, or a past valid one.</summary>
public sealed record SnapshotShape(string? Snapshot, long RawBytes, IReadOnlyDictionary<string, long> Facts, IReadOnlyList<ArtifactShape> Artifacts)
{
    /// <summary>A shape of one artifact named "a" (tests and single-artifact sources).</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "A shape of a single artifact; the name reads as the word, not the type.")]
    public static SnapshotShape Single(long rawBytes, IReadOnlyDictionary<string, long> facts, string? snapshot = null) =>
        new(snapshot, rawBytes, facts, [new ArtifactShape("a", rawBytes, facts)]);
}

/// <summary>
/// Checks a captured snapshot against its source's expectations: an empty artifact always fails; <c>min_bytes</c>
/// and <c>min_&lt;fact&gt;</c>; a count fact that falls to 0 from the last valid snapshot; <c>max_shrink</c> against
/// the median of the last five valid snapshots (raw bytes and every count fact, in total and per artifact); a first
/// snapshot that holds nothing is a warning.
/// </summary>
public static class ExpectationChecker
{
    public const int HistoryDepth = 5;

    /// <summary>Facts that count containers, not content: a snapshot with databases but no tables holds nothing.</summary>
    private static readonly HashSet<string> ContainerFacts = new(StringComparer.Ordinal) { "databases" };

    /// <summary>The prefix of a warning that records a shrink accepted with <c>--accept-shrink</c>; history restarts there.</summary>
    public const string AcceptedPrefix = "accepted: ";

    /// <param name="expect">The source's rules.</param>
    /// <param name="countFacts">The kind's count facts (<see cref="Plugins.ISourceKind.CountFacts"/>).</param>
    /// <param name="now">The snapshot being checked.</param>
    /// <param name="history">Past valid snapshots, oldest first, since the last accepted shrink.</param>
    /// <param name="acceptShrink">This run accepts a fall to 0 or a shrink (<c>run --accept-shrink</c>).</param>
    /// <param name="source">The source's name, for the hint that says how to accept a shrink.</param>
    /// <param name="historyAccepted">The history starts at a snapshot whose shrink the user accepted (an emptiness they chose).</param>
    public static IReadOnlyList<Breach> Check(
        Expectations expect,
        IReadOnlyList<string> countFacts,
        SnapshotShape now,
        IReadOnlyList<SnapshotShape> history,
        bool acceptShrink = false,
        bool historyAccepted = false,
        string source = "NAME")
    {
        ArgumentNullException.ThrowIfNull(expect);
        ArgumentNullException.ThrowIfNull(countFacts);
        ArgumentNullException.ThrowIfNull(now);
        ArgumentNullException.ThrowIfNull(history);
        var breaches = new List<Breach>();
        if (now.Artifacts.Count == 0)
        {
            breaches.Add(new Breach(BreachSeverity.Fail, "the source produced no artifact"));
        }

        foreach (var a in now.Artifacts.Where(a => a.RawBytes == 0))
        {
            breaches.Add(new Breach(BreachSeverity.Fail, $"artifact {a.Name} is empty (0 bytes): an empty dump is never a backup"));
        }

        if (expect.MinBytes is { } minBytes && now.RawBytes < minBytes)
        {
            breaches.Add(new Breach(BreachSeverity.Fail,
                $"the snapshot holds {now.RawBytes} bytes ({Quantities.FormatSize(now.RawBytes)}), less than expect.min_bytes {minBytes} ({Quantities.FormatSize(minBytes)})"));
        }

        foreach (var (fact, min) in expect.MinFacts)
        {
            var have = now.Facts.GetValueOrDefault(fact);
            if (have < min)
            {
                breaches.Add(new Breach(BreachSeverity.Fail, $"the source reported {have} {fact}, fewer than expect.min_{fact} {min}"));
            }
        }

        var anomaly = acceptShrink ? BreachSeverity.Accepted : expect.OnAnomaly == AnomalyAction.Warn ? BreachSeverity.Warn : BreachSeverity.Fail;
        // How to accept it, unless accepted: said once, after the last finding it applies to (never once per fact).
        var hint = acceptShrink ? "" : $"; if this is intended, run once with --source {source} --accept-shrink";
        var beforeShrinks = breaches.Count;
        var fellToZero = new HashSet<string>(StringComparer.Ordinal);
        if (!expect.AllowEmpty && history.Count > 0)
        {
            CheckFallToZero(countFacts, now, history[^1], anomaly, hint, fellToZero, breaches);
        }

        if (expect.MaxShrinkPercent is { } maxShrink && history.Count > 0)
        {
            var recent = history.TakeLast(HistoryDepth).ToList();
            CheckShrink("bytes", now.RawBytes, recent.Select(h => h.RawBytes).ToList(), maxShrink, anomaly, hint, breaches);
            foreach (var fact in countFacts.Where(f => !fellToZero.Contains(f) && now.Facts.ContainsKey(f)))
            {
                var past = recent.Where(h => h.Facts.ContainsKey(fact)).Select(h => h.Facts[fact]).ToList();
                CheckShrink(fact, now.Facts.GetValueOrDefault(fact), past, maxShrink, anomaly, hint, breaches);
            }

            // Per artifact, where the total could hide it (one database of several losing its tables).
            if (now.Artifacts.Count > 1 || recent.Any(h => h.Artifacts.Count > 1))
            {
                foreach (var a in now.Artifacts)
                {
                    var pastA = recent.Select(h => h.Artifacts.FirstOrDefault(x => x.Name == a.Name)).OfType<ArtifactShape>().ToList();
                    if (pastA.Count == 0)
                    {
                        continue;
                    }

                    CheckShrink($"artifact {a.Name}: bytes", a.Compared, pastA.Select(p => p.Compared).ToList(), maxShrink, anomaly, hint, breaches);
                    foreach (var fact in countFacts.Where(f => !fellToZero.Contains(a.Name + "/" + f) && a.Facts.ContainsKey(f)))
                    {
                        var past = pastA.Where(p => p.Facts.ContainsKey(fact)).Select(p => p.Facts[fact]).ToList();
                        CheckShrink($"artifact {a.Name}: {fact}", a.Facts.GetValueOrDefault(fact), past, maxShrink, anomaly, hint, breaches);
                    }
                }
            }
        }

        if (breaches.Count > beforeShrinks && hint.Length > 0)
        {
            for (var i = beforeShrinks; i < breaches.Count - 1; i++)
            {
                breaches[i] = breaches[i] with { Message = breaches[i].Message.Replace(hint, "", StringComparison.Ordinal) };
            }
        }

        // A fact the source does not report now (rows when they are only estimated) is not a zero.
        // Empty now and never held anything: said on every run (a second empty run is no more proof than the first).
        var content = countFacts.Where(f => !ContainerFacts.Contains(f) && now.Facts.ContainsKey(f)).ToList();
        if (!expect.AllowEmpty && !historyAccepted && !acceptShrink && content.Count > 0 && content.All(f => now.Facts.GetValueOrDefault(f) == 0)
            && history.All(h => content.All(f => h.Facts.GetValueOrDefault(f) == 0)))
        {
            breaches.Add(new Breach(BreachSeverity.Warn,
                $"{(history.Count == 0 ? "the first snapshot" : "the source has never held anything and this snapshot")} holds nothing ({string.Join(", ", content.Select(f => f + " 0"))}): " +
                "check that the source points at the data (a disk or share that is not mounted, a wrong path, database or server); if it is meant to be empty, set expect: {allow_empty: true}"));
        }

        return breaches;
    }

    /// <summary>The median, as the lower middle for an even count (integer arithmetic only).</summary>
    public static long Median(IReadOnlyList<long> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[(sorted.Count - 1) / 2];
    }

    /// <summary>A count that was above 0 in the last valid snapshot and is 0 now, in total, per artifact, or an artifact gone.</summary>
    private static void CheckFallToZero(IReadOnlyList<string> countFacts, SnapshotShape now, SnapshotShape last, BreachSeverity severity, string hint,
        HashSet<string> fellToZero, List<Breach> breaches)
    {
        var since = last.Snapshot is null ? "the last valid snapshot" : $"the last valid snapshot {last.Snapshot}";
        foreach (var fact in countFacts.Where(now.Facts.ContainsKey))
        {
            if (last.Facts.GetValueOrDefault(fact) is var was && was > 0 && now.Facts[fact] == 0)
            {
                fellToZero.Add(fact);
                breaches.Add(new Breach(severity,
                    $"{fact} fell to 0 from {was} in {since}: the source looks emptied (an unmounted disk, a wiped or dropped database?){hint}"));
            }
        }

        foreach (var a in last.Artifacts)
        {
            var counted = countFacts.Where(f => a.Facts.GetValueOrDefault(f) > 0).ToList();
            if (counted.Count == 0)
            {
                continue;
            }

            var current = now.Artifacts.FirstOrDefault(x => x.Name == a.Name);
            if (current is null)
            {
                if (!counted.All(fellToZero.Contains))
                {
                    breaches.Add(new Breach(severity,
                        $"artifact {a.Name} ({string.Join(", ", counted.Select(f => $"{a.Facts[f]} {f}"))} in {since}) is gone: a database dropped or renamed?{hint}"));
                }

                continue;
            }

            foreach (var fact in counted.Where(f => current.Facts.TryGetValue(f, out var v) && v == 0))
            {
                fellToZero.Add(a.Name + "/" + fact);
                if (!fellToZero.Contains(fact))
                {
                    breaches.Add(new Breach(severity,
                        $"artifact {a.Name}: {fact} fell to 0 from {a.Facts[fact]} in {since}: emptied or wiped?{hint}"));
                }
            }
        }
    }

    private static void CheckShrink(string what, long now, List<long> past, int maxShrink, BreachSeverity severity, string hint, List<Breach> breaches)
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
            breaches.Add(new Breach(severity,
                $"{what} shrank by {shrink}% ({now} against a median of {median} over the last {past.Count} valid snapshots), more than expect.max_shrink {maxShrink}%{(hint.Length == 0 ? "" : hint + ", or set expect: {max_shrink: none}")}"));
        }
    }
}
