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

/// <summary>The newest valid snapshot; <see cref="Copies"/> holds, per configured target, the state of its copy there
/// (verified, missing, corrupt, failed, or none when the target never got one).</summary>
public sealed record LastValid(string Snapshot, DateTimeOffset FinishedAt, long StoredBytes, int VerifiedCopies, IReadOnlyDictionary<string, string> Copies);

public sealed record LastRun(string Snapshot, string State, string? Error);

public sealed record LastDrill(string Snapshot, bool Passed, double Seconds);

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
    int Targets);

/// <summary>Computes each configured source's state from the catalog, as DESIGN defines them.</summary>
public static class StatusReport
{
    public static IReadOnlyList<SourceStatus> Compute(BackstopConfig config, CatalogStore catalog, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(catalog);
        var all = catalog.Snapshots().GroupBy(s => s.Source).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        return config.Sources.Select(def => Compute(def, all.GetValueOrDefault(def.Name) ?? [], now)).ToList();
    }

    public static SourceStatus Compute(SourceDefinition def, IReadOnlyList<SnapshotInfo> snapshots, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshots);
        var finished = snapshots.Where(s => s.State != SnapshotState.Running).ToList();
        var last = finished.LastOrDefault();
        var valid = finished.LastOrDefault(s => s.IsValid(def.MinCopies));
        var newestCommitted = finished.LastOrDefault(s => s.State == SnapshotState.Committed);
        var reasons = new List<string>();
        var rpoMet = valid?.FinishedAt is { } at && now - at <= def.Rpo;

        SourceState state;
        if (valid is null)
        {
            state = SourceState.Never;
            reasons.Add(last?.Error is { } e ? $"no valid snapshot; last run failed: {e}" : newestCommitted is not null
                ? "no valid snapshot: the copies of the committed ones are missing or corrupt (see verify)"
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
            var missing = def.Targets.Where(t => !valid.VerifiedTargets.Contains(t)).ToList();
            if (missing.Count > 0)
            {
                reasons.Add($"no verified copy on target(s) {string.Join(", ", missing)}");
            }

            if (newestCommitted is not null && !ReferenceEquals(newestCommitted, valid) && newestCommitted.StartedAt > valid.StartedAt)
            {
                reasons.Add($"newer snapshot {newestCommitted.Id} lost its verified copies (see verify); relying on {valid.Id}");
            }

            reasons.AddRange(valid.Warnings.Where(w => w.StartsWith("expectation:", StringComparison.Ordinal)));
            state = reasons.Count > 0 ? SourceState.Degraded : SourceState.Ok;
        }

        return new SourceStatus(
            def.Name, def.Kind, state,
            valid is null ? null : new LastValid(valid.Id, valid.FinishedAt!.Value, valid.StoredBytes, valid.VerifiedTargets.Count, CopyStates(def, valid)),
            last is null ? null : new LastRun(last.Id, last.State.ToString().ToLowerInvariant(), last.Error),
            (long)def.Rpo.TotalSeconds, rpoMet, null, reasons,
            valid?.VerifiedTargets.Count ?? 0, def.Targets.Count);
    }

    /// <summary>Per configured target: verified when every artifact is verified there, else the worst state found.</summary>
    private static Dictionary<string, string> CopyStates(SourceDefinition def, SnapshotInfo snapshot) =>
        def.Targets.Distinct(StringComparer.Ordinal).ToDictionary(t => t, t =>
        {
            var states = snapshot.Artifacts.Select(a => a.Copies.FirstOrDefault(c => c.Target == t)?.State).ToList();
            return states.Count > 0 && states.All(x => x == CopyState.Verified) ? "verified"
                : states.Any(x => x is null) ? "none"
                : states.Where(x => x != CopyState.Verified).Select(x => x!.Value.ToString().ToLowerInvariant()).First();
        }, StringComparer.Ordinal);
}
