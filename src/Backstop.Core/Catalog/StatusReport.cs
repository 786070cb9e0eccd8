using Backstop.Core.Config;

namespace Backstop.Core.Catalog;

public enum SourceState
{
    Ok,
    Degraded,
    Failing,
    Stale,
    Never,
}

/// <summary>The state of a snapshot's copy on one configured target (verified, failed, missing, corrupt, pruned, or none
/// when the target never got one), and why it is not verified.</summary>
public sealed record CopyStatus(string State, string? Error);

/// <summary>The newest valid snapshot; <see cref="Copies"/> holds, per configured target, the state of its copy there.</summary>
public sealed record LastValid(string Snapshot, DateTimeOffset FinishedAt, long StoredBytes, int VerifiedCopies, IReadOnlyDictionary<string, CopyStatus> Copies);

public sealed record LastRun(string Snapshot, string State, string? Error);

/// <summary>The newest drill: <see cref="Seconds"/> is the measured RTO; <see cref="RtoSeconds"/> the objective (null when none).</summary>
public sealed record LastDrill(string Snapshot, bool Passed, double Seconds, DateTimeOffset At, long? RtoSeconds, bool? RtoMet, string? Error)
{
    /// <summary>The target whose copy the drill restored.</summary>
    public string? Target { get; init; }
}

/// <summary>One source's line of <c>status</c>: the contract that monitoring reads.</summary>
public sealed record SourceStatus(
    string Name,
    string Kind,
    SourceState State,
    LastValid? LastValid,
    LastRun? LastRun,
    long RpoSeconds,
    bool RpoMet,
    LastDrill? LastDrill,
    IReadOnlyList<string> Reasons,
    int Copies,
    int Targets)
{
    /// <summary>The recovery window and current RPO of a source that keeps a continuous archive (<c>wal:</c>); null for others.</summary>
    public ArchiveWindow? Archive { get; init; }

    /// <summary>The machine that runs the source.</summary>
    public string Machine { get; init; } = "";
}

/// <summary>Computes each configured source's state from the catalog, as DESIGN defines them.</summary>
public static class StatusReport
{
    public static IReadOnlyList<SourceStatus> Compute(BackstopConfig config, CatalogStore catalog, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(catalog);
        var recent = RecentEnough(catalog, config.Sources);
        var drills = catalog.LatestDrillsOf(config.Sources.Select(d => d.Name).ToList());
        return config.Sources.Select(def => Compute(def, recent[def.Name], now, drills[def.Name],
            def.Archive is null ? null : ArchiveWindow.Compute(def, catalog.Snapshots(def.Name), catalog.Archive(def.Name), now)) with { Machine = def.Machine }).ToList();
    }

    /// <summary><see cref="RecentEnough(CatalogStore, SourceDefinition)"/> of every source at once: each round reads the sources still short of a valid snapshot together.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<SnapshotInfo>> RecentEnough(CatalogStore catalog, IReadOnlyList<SourceDefinition> sources)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(sources);
        var found = new Dictionary<string, IReadOnlyList<SnapshotInfo>>(StringComparer.Ordinal);
        var wanted = sources.DistinctBy(d => d.Name, StringComparer.Ordinal).ToList();
        // From 2: a healthy source's newest snapshot is valid, and a thousand sources read 2,000 rows, not 8,000.
        for (var limit = 2; wanted.Count > 0; limit *= 8)
        {
            var read = catalog.RecentSnapshotsOf(wanted.Select(d => d.Name).ToList(), limit, facts: false);
            var next = new List<SourceDefinition>();
            foreach (var def in wanted)
            {
                var recent = read[def.Name];
                found[def.Name] = recent;
                if (recent.Count == limit && !recent.Any(s => Restorable(def, s)))
                {
                    next.Add(def);
                }
            }

            wanted = next;
        }

        return found;
    }

    /// <summary>
    /// The newest snapshots of a source, enough for its state: a window that holds a valid snapshot (the newest
    /// committed and the last finished are then in it too) or the whole history. Widened 8, 64, 512… so that a
    /// long history is never read whole while the newest backups are good. Read without their facts (empty), which a
    /// state does not use.
    /// </summary>
    public static IReadOnlyList<SnapshotInfo> RecentEnough(CatalogStore catalog, SourceDefinition def)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(def);
        for (var limit = 8; ; limit *= 8)
        {
            var recent = catalog.RecentSnapshots(def.Name, limit, facts: false);
            if (recent.Count < limit || recent.Any(s => Restorable(def, s)))
            {
                return recent;
            }
        }
    }

    public static SourceStatus Compute(SourceDefinition def, IReadOnlyList<SnapshotInfo> snapshots, DateTimeOffset now, IReadOnlyList<DrillInfo>? drills = null,
        ArchiveWindow? archive = null)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshots);
        drills ??= [];
        var finished = snapshots.Where(s => s.State != SnapshotState.Running).ToList();
        var last = finished.LastOrDefault();
        // The newest snapshot that can be restored (a verified copy on a configured target): what restore's latest takes.
        // Counted from the copies' states, which every finding (verify, restore, drill, heal) updates where it is recorded.
        var valid = finished.LastOrDefault(s => Restorable(def, s));
        var newestCommitted = finished.LastOrDefault(s => s.State == SnapshotState.Committed);
        var reasons = new List<string>();
        var rpoMet = valid?.FinishedAt is { } at && now - at <= def.Rpo;

        SourceState state;
        if (newestCommitted is { Unrestorable: true } dead && (valid is null || dead.StartedAt > valid.StartedAt))
        {
            state = SourceState.Failing;
            reasons.Add($"the newest snapshot {dead.Id} is unrestorable ({string.Join("; ", dead.CopyProblems)})" +
                        (valid is null ? "; no older snapshot has a good copy either" : $"; restore falls back to {valid.Id}"));
        }
        else if (valid is null)
        {
            state = newestCommitted is null ? SourceState.Never : SourceState.Failing;
            reasons.Add(last?.Error is { } e ? $"no valid snapshot; last run failed: {e}" : newestCommitted is not null
                ? $"no snapshot can be restored: the copies of the committed ones are missing, corrupt or unreadable ({string.Join("; ", newestCommitted.CopyProblems)}; see verify)"
                : "no snapshot yet");
        }
        else if (!rpoMet)
        {
            state = SourceState.Stale;
            reasons.Add($"newest valid snapshot is {Quantities.FormatDuration(now - valid.FinishedAt!.Value)} old, RPO is {Quantities.FormatDuration(def.Rpo)}");
        }
        else if (last is { State: SnapshotState.Failed })
        {
            state = SourceState.Failing;
            reasons.Add($"last run failed: {last.Error}");
        }
        else
        {
            var verified = Verified(def, valid);
            if (verified < def.MinCopies)
            {
                reasons.Add($"snapshot {valid.Id} has {verified} verified cop{(verified == 1 ? "y" : "ies")} of the {def.MinCopies} the policy asks");
            }

            reasons.AddRange(DegradedReasons(def, valid));
            reasons.AddRange(DrillReasons(def, drills, now));
            if (newestCommitted is not null && !ReferenceEquals(newestCommitted, valid) && newestCommitted.StartedAt > valid.StartedAt)
            {
                reasons.Add($"newer snapshot {newestCommitted.Id} lost its verified copies (see verify); relying on {valid.Id}");
            }

            state = reasons.Count > 0 ? SourceState.Degraded : SourceState.Ok;
        }

        if (archive is not null)
        {
            // The archive's own standing: a present out of reach fails the source however fresh its base is; a weaker window degrades it.
            reasons.AddRange(archive.Failing);
            reasons.AddRange(archive.Degraded);
            state = state is SourceState.Ok or SourceState.Degraded && archive.Failing.Count > 0 ? SourceState.Failing
                : state is SourceState.Ok && archive.Degraded.Count > 0 ? SourceState.Degraded
                : state;
        }

        return new SourceStatus(
            def.Name, def.Kind, state,
            valid is null ? null : new LastValid(valid.Id, valid.FinishedAt!.Value, valid.StoredBytes, Verified(def, valid), CopyStates(def, valid)),
            last is null ? null : new LastRun(last.Id, last.State.ToString().ToLowerInvariant(), last.Error),
            (long)def.Rpo.TotalSeconds, rpoMet,
            drills.LastOrDefault() is { } d ? new LastDrill(d.Snapshot, d.Passed, d.Seconds, d.At, d.RtoSeconds, d.RtoMet, d.Error) { Target = d.Target } : null, reasons,
            valid is null ? 0 : Verified(def, valid), def.Targets.Distinct(StringComparer.Ordinal).Count()) { Archive = archive };
    }

    /// <summary>Whether a snapshot can be restored: committed, with a verified copy of every artifact on a configured target.</summary>
    public static bool Restorable(SourceDefinition def, SnapshotInfo snapshot)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshot);
        return snapshot.State == SnapshotState.Committed && Verified(def, snapshot) > 0;
    }

    /// <summary>The configured targets that hold a verified copy of every artifact of the snapshot.</summary>
    public static int Verified(SourceDefinition def, SnapshotInfo snapshot) => snapshot.VerifiedTargets.Count(def.Targets.Contains);

    /// <summary>
    /// Why a valid snapshot is degraded: a configured target without a verified copy (with the copy's reason), or an
    /// expectation that warned. Empty when it is fully good. <c>status</c> and <c>run</c>'s exit code 3 both use this.
    /// </summary>
    public static IReadOnlyList<string> DegradedReasons(SourceDefinition def, SnapshotInfo snapshot)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshot);
        var reasons = new List<string>();
        foreach (var (target, copy) in CopyStates(def, snapshot).Where(c => c.Value.Error is not null))
        {
            // Not verified, with why; or verified with a key problem a deep verify found (the copy is good, the key not).
            reasons.Add(copy.State == "verified" ? copy.Error! : $"no verified copy on target '{target}' ({copy.State}: {copy.Error})");
        }

        reasons.AddRange(snapshot.Warnings.Where(w => w.StartsWith("expectation:", StringComparison.Ordinal)));
        return reasons;
    }

    /// <summary>
    /// Why the drills make a source degraded: with <c>drill: {every: …}</c>, the last drill failed, or no drill passed
    /// within that interval (or ever). Without it, a failed last drill is still said: a backup that does not restore
    /// in practice is not ok.
    /// </summary>
    public static IReadOnlyList<string> DrillReasons(SourceDefinition def, IReadOnlyList<DrillInfo> drills, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(drills);
        var reasons = new List<string>();
        if (drills.LastOrDefault() is { Passed: false } failed)
        {
            reasons.Add($"the last drill ({failed.At.UtcDateTime:yyyy-MM-dd HH:mm}Z, snapshot {failed.Snapshot}) failed: {failed.Error ?? "see its evidence file"}; " +
                        $"fix it and run 'backstop drill --source {def.Name}'");
        }
        else if (def.Drill.Every is { } every)
        {
            var passed = drills.LastOrDefault(d => d.Passed);
            if (passed is null)
            {
                reasons.Add($"no drill has passed yet and drill.every is {Quantities.FormatDuration(every)}: run 'backstop drill --source {def.Name}'");
            }
            else if (now - passed.At > every)
            {
                reasons.Add($"the last passed drill is {Quantities.FormatDuration(now - passed.At)} old, drill.every is {Quantities.FormatDuration(every)}: " +
                            $"run 'backstop drill --source {def.Name}'");
            }
        }

        return reasons;
    }

    /// <summary>Per configured target: verified when every artifact is verified there, else the worst state found and its reason.</summary>
    public static IReadOnlyDictionary<string, CopyStatus> CopyStates(SourceDefinition def, SnapshotInfo snapshot)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshot);
        return def.Targets.Distinct(StringComparer.Ordinal).ToDictionary(t => t, t =>
        {
            // The artifacts, then the shared blobs the snapshot needs: a copy there is all of them.
            var copies = snapshot.Artifacts.Select(a => a.Copies.FirstOrDefault(c => c.Target == t))
                .Concat(snapshot.Blobs.Select(b => b.Copies.FirstOrDefault(c => c.Target == t) is { } c
                    ? c with { Error = c.Error is null ? null : $"blob {b.FileName}: {c.Error}" }
                    : snapshot.Artifacts.Any(a => a.Copies.Any(x => x.Target == t))
                        ? new CopyInfo(t, CopyState.Missing, DateTimeOffset.MinValue, $"blob {b.FileName} is not stored on '{t}'")
                        : null)).ToList();
            if (copies.Count > 0 && copies.All(x => x?.State == CopyState.Verified))
            {
                // Verified, with the key problem a deep verify found, if any (the copy is good; the configured key does not open it).
                return new CopyStatus("verified", copies.Select(x => x!.Error).FirstOrDefault(e => e is not null));
            }

            if (copies.Count == 0 || copies.Any(x => x is null))
            {
                return new CopyStatus("none", $"target '{t}' never got a copy of snapshot {snapshot.Id} (added to the configuration after it, or never healed)");
            }

            var bad = copies.First(x => x!.State != CopyState.Verified)!;
            return new CopyStatus(bad.State.ToString().ToLowerInvariant(), bad.Error ?? "(no reason recorded)");
        }, StringComparer.Ordinal);
    }
}

/// <summary>A disaster scenario's standing: its objective and its last rehearsal (null: never rehearsed).</summary>
public sealed record ScenarioStatus(string Name, long RtoSeconds, LastRehearsal? LastRehearsal)
{
    /// <summary>The scenario's own rehearsal interval (<c>every:</c>), in seconds; null: by hand only.</summary>
    public long? EverySeconds { get; init; }

    public static IReadOnlyList<ScenarioStatus> Compute(Config.BackstopConfig config, CatalogStore catalog)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(catalog);
        return config.Recovery.Scenarios.Select(s => new ScenarioStatus(s.Name, (long)s.Rto.TotalSeconds,
            catalog.Rehearsals(s.Name).LastOrDefault() is { } r ? new LastRehearsal(r.At, r.Passed, r.Seconds, r.RtoMet, r.Error, r.Runbook) : null)
        {
            EverySeconds = s.Every is { } e ? (long)e.TotalSeconds : null,
        }).ToList();
    }
}

/// <summary>The last rehearsal of a scenario: when, passed, the measured total against the objective, and its runbook.</summary>
public sealed record LastRehearsal(DateTimeOffset At, bool Passed, double Seconds, bool RtoMet, string? Error, string? Runbook);
