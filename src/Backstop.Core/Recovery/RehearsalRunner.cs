using System.Diagnostics;
using System.Text.Json.Serialization;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Drill;
using Backstop.Core.Maintenance;
using Backstop.Core.Plugins;
using Backstop.Core.Run;

namespace Backstop.Core.Recovery;

/// <summary>One source brought back by a rehearsal: the copy used, when it started, how long each phase took, and whether it passed.</summary>
public sealed record RehearsalRestore(string Source, string Kind, string? Target, string? Snapshot, bool Passed, DateTimeOffset StartedAt, double Seconds,
    IReadOnlyDictionary<string, double> Phases, string? Error)
{
    /// <summary>Seconds from the rehearsal's first restore to this one's start and end (wall clock, setup and teardown included).</summary>
    public double Began { get; init; }

    public double Ended { get; init; }

    /// <summary>The drill behind it (checks, copies, notes); not part of the JSON contract.</summary>
    [JsonIgnore]
    public DrillResult? Drill { get; init; }
}

/// <summary>A manual step's estimate, as added to the total.</summary>
public sealed record ManualEstimate(string Step, long EstimateSeconds);

/// <summary>
/// A rehearsal, as <c>rehearse --json</c> prints it: passed only when every restore passed and the total is within the
/// scenario's objective. <see cref="Seconds"/> is the measured total (the restores' wall clock, in dependency order,
/// as many at once as <c>recovery.parallel</c> allows) plus the manual estimates.
/// </summary>
public sealed record RehearsalResult(
    string Scenario,
    bool Passed,
    double Seconds,
    long RtoSeconds,
    bool RtoMet,
    IReadOnlyList<string> CriticalPath,
    IReadOnlyList<RehearsalRestore> Restores,
    IReadOnlyList<Unrecoverable> Unrecoverable,
    IReadOnlyList<ManualEstimate> Manual,
    string? Runbook)
{
    public DateTimeOffset At { get; init; }

    public string? Error { get; init; }

    /// <summary>The sum of every restore's own time (what drilling each alone would take): parallel restores bring the total below it.</summary>
    public double SumOfRestores { get; init; }

    /// <summary>What the rehearsal noticed (the escrowed key used, snapshots rebuilt from the surviving targets).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>What the scenario loses: machines and targets.</summary>
    public IReadOnlyList<string> LostMachines { get; init; } = [];

    public IReadOnlyList<string> LostTargets { get; init; } = [];
}

/// <summary>
/// <c>rehearse SCENARIO</c>: a disaster rehearsed on this machine. Nothing the scenario loses is trusted: the view of the
/// snapshots is rebuilt from the surviving targets' manifests into a scratch catalog (never the live one), the escrowed
/// identity stands in for one kept on a lost machine, and every source the scenario loses is restored from the surviving
/// copies only, into scratch places (the drills' machinery, always removed), in dependency order, with its kind's drill
/// checks. The total is measured against the scenario's objective; the runbook of what was just done is written.
/// </summary>
public sealed class RehearsalRunner(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog)
{
    /// <summary>Scratch folders in the staging folder: <c>.backstop-rehearsal-PID-xxxxxxxx</c> (a killed rehearsal's are swept).</summary>
    public const string ScratchPrefix = ".backstop-rehearsal-";

    /// <summary>Progress lines; null for none.</summary>
    public Action<string>? Progress { get; init; }

    /// <summary>For tests: called with each source as its restore starts (the order the rehearsal followed).</summary>
    public Action<string>? Started { get; init; }

    public string EvidenceFolder => Path.Combine(Path.GetDirectoryName(config.CatalogPath)!, "drills");

    public async Task<RehearsalResult> RunAsync(string scenarioName, CancellationToken cancellationToken)
    {
        var scenario = config.Recovery.Scenarios.FirstOrDefault(s => s.Name == scenarioName)
                       ?? throw new ConfigException(config.Recovery.Scenarios.Count == 0
                           ? $"no scenario is configured in {config.File}: add recovery.scenarios (for example {{name: node-vps1, rto: 4h, lost: {{machines: [vps1]}}}})"
                           : $"no scenario named '{scenarioName}' in {config.File}; scenarios: {string.Join(", ", config.Recovery.Scenarios.Select(s => s.Name))}");
        var plan = RecoveryPlan.For(config, plugins, scenario);
        var at = DateTimeOffset.UtcNow;

        // What lives on a lost machine and no source backs up (doctor's coverage, asked of the servers now): lost for good.
        var uncovered = (await new Doctor.DoctorRunner(config, plugins, catalog).UncoveredAsync(cancellationToken).ConfigureAwait(false))
            .Where(u => u.Machines.Any(plan.LostMachines.Contains)).ToList();
        if (uncovered.Count > 0)
        {
            plan = plan.With(uncovered.Select(u => new Unrecoverable(u.Sources,
                $"{scenario.Name}: {u.What}: not backed up by any source, and lost with {string.Join(", ", u.Machines.Where(plan.LostMachines.Contains))}; add it to a source")));
        }

        var notes = new List<string>();
        foreach (var swept in await DrillSweeper.SweepAsync(config, plugins, cancellationToken).ConfigureAwait(false))
        {
            Progress?.Invoke(swept); // killed drills' and rehearsals' leftovers
        }

        // What a rehearsal on this machine cannot measure is named, timed only where recovery.manual gives an estimate.
        var manual = config.Recovery.Manual.Select(m => new ManualEstimate(m.Step, (long)m.Estimate.TotalSeconds)).ToList();
        if (manual.Count == 0)
        {
            manual.AddRange(plan.LostMachines.Order(StringComparer.Ordinal)
                .Select(m => new ManualEstimate($"provision {m} again (a machine, its OS, its servers): not measured here; give an estimate in recovery.manual", 0)));
        }

        manual.AddRange(plan.Restores.SelectMany(r => r.SurvivingTargets.Take(1)).Distinct(StringComparer.Ordinal)
            .Where(t => config.Targets.First(x => x.Name == t).Machine != config.Machine)
            .Select(t => new ManualEstimate($"the copies come from '{t}' over the network the new machines have: read here from {config.Machine}, not timed over that network", 0)));
        RehearsalResult Finish(IReadOnlyList<RehearsalRestore> restores, string? error, double measured)
        {
            var total = Math.Round(measured + manual.Sum(m => m.EstimateSeconds), 3);
            var met = total <= scenario.Rto.TotalSeconds;
            var passed = error is null && plan.Unrecoverable.Count == 0 && restores.All(r => r.Passed) && met;
            error ??= plan.Unrecoverable.Count > 0 ? string.Join("; ", plan.Unrecoverable.Select(u => u.Reason))
                : restores.FirstOrDefault(r => !r.Passed) is { } bad ? $"{bad.Source}: {bad.Error}"
                : !met ? $"the recovery took {DrillRunner.Seconds(total)}, more than the scenario's rto of {Quantities.FormatDuration(scenario.Rto)}" : null;
            return new RehearsalResult(scenario.Name, passed, total, (long)scenario.Rto.TotalSeconds, met, CriticalPath(restores, plan), restores, plan.Unrecoverable, manual, null)
            {
                At = at,
                Error = error,
                SumOfRestores = Math.Round(restores.Sum(r => r.Seconds), 3),
                Notes = notes,
                LostMachines = plan.LostMachines.Order(StringComparer.Ordinal).ToList(),
                LostTargets = plan.LostTargets.Order(StringComparer.Ordinal).ToList(),
            };
        }

        if (plan.Unrecoverable.Count > 0)
        {
            return Record(Finish([], null, 0), plan);
        }

        if (plan.IdentityNote is { } said)
        {
            notes.Add(said);
        }

        FileSystem.PrivateFolder.Ensure(config.StagingPath);
        var scratch = Path.Combine(config.StagingPath, FileSystem.Stale.Name(ScratchPrefix));
        Directory.CreateDirectory(scratch, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            // The view of the estate as the surviving targets tell it: their manifests, into a scratch catalog.
            var surviving = config.Targets.Where(t => !plan.LostTargets.Contains(t.Name)).ToList();
            // The live catalog's path stays (restore marks keep a prune off what is being read; each restore's drill
            // evidence lands beside the runbook); the snapshots themselves come from the scratch catalog only.
            var scratchDb = Path.Combine(scratch, "catalog.db");
            var view = config with
            {
                Targets = surviving,
                Sources = plan.Restores.Select(r => r.Source with { Targets = r.SurvivingTargets, MinCopies = 1 }).ToList(),
                Encryption = config.Encryption is null ? null : config.Encryption with { Identities = plan.Identities },
            };
            Progress?.Invoke($"{scenario.Name}: reading the snapshots from the surviving targets ({string.Join(", ", surviving.Select(t => t.Name))})");
            using (var scratchCatalog = CatalogStore.Open(scratchDb))
            {
                var rebuilt = await new CatalogRebuilder(view, plugins, new RunObserver()) { ReadCopies = false }.RebuildAsync(scratchCatalog, cancellationToken).ConfigureAwait(false);
                notes.Add($"{rebuilt.Snapshots} snapshot(s) read from the manifests on {string.Join(", ", surviving.Select(t => t.Name))}; nothing taken from the live catalog");
                if (SpaceProblem(view, plan, scratchCatalog) is { } space)
                {
                    return Record(Finish([], space, 0), plan);
                }
            }

            var (restores, measured) = await RestoreAllAsync(plan, view, scratchDb, cancellationToken).ConfigureAwait(false);
            var result = Finish(restores, null, measured);
            using var scratchView = CatalogStore.Open(scratchDb);
            return Record(result, plan, scratchView);
        }
        finally
        {
            DrillSweeper.RemoveFolder(scratch);
        }
    }

    /// <summary>Whether the staging folder can hold what the restores write (the chosen snapshots' raw size, each chain whole).</summary>
    private static string? SpaceProblem(BackstopConfig view, RecoveryPlan plan, CatalogStore scratchCatalog)
    {
        long needed = 0;
        foreach (var r in plan.Restores)
        {
            var newest = scratchCatalog.Snapshots(r.Source.Name).LastOrDefault(s => s.State == SnapshotState.Committed && s.VerifiedTargets.Count > 0);
            needed += newest is null ? 0 : newest.RawBytes + newest.Ancestors.Sum(a => a.RawBytes) + newest.Blobs.Sum(b => b.RawBytes);
        }

        long free;
        try
        {
            free = FileSystem.DiskSpace.FreeBytes(view.StagingPath);
        }
        catch (IOException)
        {
            return null;
        }

        return free >= needed + (64L << 20) ? null
            : $"the scratch space {view.StagingPath} has {Quantities.FormatSize(free)} free; restoring what {plan.Scenario.Name} loses needs about {Quantities.FormatSize(needed)} " +
              "(the snapshots' raw size): free space there, or point staging elsewhere";
    }

    /// <summary>
    /// Every planned restore, each once all it needs is back, as many at once as <c>recovery.parallel</c>; a source whose
    /// need failed is not restored (it would come back on nothing), and says so.
    /// </summary>
    private async Task<(List<RehearsalRestore> Restores, double Seconds)> RestoreAllAsync(RecoveryPlan plan, BackstopConfig view, string scratchDb, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var results = new Dictionary<string, RehearsalRestore>(StringComparer.Ordinal);
        var started = new List<string>();
        var running = new Dictionary<Task<RehearsalRestore>, string>();
        var pending = plan.Restores.ToList();
        var parallel = Math.Max(1, config.Recovery.Parallel);
        while (pending.Count > 0 || running.Count > 0)
        {
            // Until nothing changes: a source blocked now blocks what needs it in the same pass.
            for (var changed = true; changed;)
            {
                changed = false;
                foreach (var blocked in pending.Where(p => p.Needs.Any(n => results.TryGetValue(n, out var r) && !r.Passed)).ToList())
                {
                    changed = true;
                    pending.Remove(blocked);
                    var failed = blocked.Needs.First(n => results.TryGetValue(n, out var r) && !r.Passed);
                    results[blocked.Source.Name] = new RehearsalRestore(blocked.Source.Name, blocked.Source.Kind, null, null, false, DateTimeOffset.UtcNow, 0,
                        new Dictionary<string, double>(), $"not restored: it needs {failed}, which did not come back")
                    {
                        Began = clock.Elapsed.TotalSeconds, Ended = clock.Elapsed.TotalSeconds,
                    };
                    started.Add(blocked.Source.Name);
                }
            }

            foreach (var ready in pending.Where(p => p.Needs.All(n => results.TryGetValue(n, out var r) && r.Passed)).Take(parallel - running.Count).ToList())
            {
                pending.Remove(ready);
                started.Add(ready.Source.Name);
                Started?.Invoke(ready.Source.Name);
                Progress?.Invoke($"{plan.Scenario.Name}: restoring {ready.Source.Name} from {string.Join(" or ", ready.SurvivingTargets)}");
                running[RestoreOneAsync(ready, view, scratchDb, clock, ct)] = ready.Source.Name;
            }

            if (running.Count == 0)
            {
                continue; // what is left is blocked, and is said above on the next pass
            }

            var done = await Task.WhenAny(running.Keys).ConfigureAwait(false);
            running.Remove(done);
            RehearsalRestore result;
            try
            {
                result = await done.ConfigureAwait(false);
            }
            catch
            {
                // Cancelled (Ctrl-C, SIGTERM) or broken: the restores still running stop and remove their scratch places
                // (servers, databases, folders) before this returns, so nothing is left behind.
                await Task.WhenAll(running.Keys.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default))).ConfigureAwait(false);
                throw;
            }

            results[result.Source] = result;
            Progress?.Invoke($"{plan.Scenario.Name}: {result.Source} {(result.Passed ? "came back" : "failed")} in {DrillRunner.Seconds(result.Seconds)}{(result.Error is null ? "" : ": " + result.Error)}");
        }

        var order = started.Select(s => results[s]).ToList();
        var first = order.Count == 0 ? 0 : order.Min(r => r.Began);
        var last = order.Count == 0 ? 0 : order.Max(r => r.Ended);
        return (order, Math.Round(last - first, 3));
    }

    /// <summary>One source, drilled into its scratch place from the surviving copies, with a catalog connection of its own (restores run at once).</summary>
    private async Task<RehearsalRestore> RestoreOneAsync(PlannedRestore planned, BackstopConfig view, string scratchDb, Stopwatch clock, CancellationToken ct)
    {
        await Task.Yield();
        var began = clock.Elapsed.TotalSeconds;
        var startedAt = DateTimeOffset.UtcNow;
        using var scratchCatalog = CatalogStore.Open(scratchDb);
        var drill = (await new DrillRunner(view, plugins, scratchCatalog) { Sweep = false }.RunAsync([planned.Source.Name], "latest", ct).ConfigureAwait(false)).Single();
        return new RehearsalRestore(planned.Source.Name, planned.Source.Kind, drill.Copies.FirstOrDefault()?.Target, drill.Snapshot, drill.Passed, startedAt,
            drill.Seconds, drill.Phases, drill.Error)
        {
            Began = Math.Round(began, 3),
            Ended = Math.Round(clock.Elapsed.TotalSeconds, 3),
            Drill = drill,
        };
    }

    /// <summary>
    /// The chain of restores that set the end: the one that finished last, then the need of it that finished last, and
    /// so on back to one that waited for nothing.
    /// </summary>
    private static List<string> CriticalPath(IReadOnlyList<RehearsalRestore> restores, RecoveryPlan plan)
    {
        var byName = restores.ToDictionary(r => r.Source, StringComparer.Ordinal);
        var needs = plan.Restores.ToDictionary(p => p.Source.Name, p => p.Needs, StringComparer.Ordinal);
        var path = new List<string>();
        var current = restores.OrderByDescending(r => r.Ended).FirstOrDefault();
        while (current is not null && !path.Contains(current.Source))
        {
            path.Add(current.Source);
            current = needs.GetValueOrDefault(current.Source, []).Select(n => byName.GetValueOrDefault(n)).OfType<RehearsalRestore>()
                .OrderByDescending(r => r.Ended).FirstOrDefault();
        }

        path.Reverse();
        return path;
    }

    /// <summary>Writes the runbook, records the rehearsal in the live catalog (and an event), and returns it with the runbook's path.</summary>
    private RehearsalResult Record(RehearsalResult result, RecoveryPlan plan, CatalogStore? view = null)
    {
        string? runbook = null;
        try
        {
            runbook = RunbookWriter.Write(EvidenceFolder, config, plugins, plan, result, (_, id) => view?.Snapshot(id));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            result = result with { Notes = [.. result.Notes, $"the runbook could not be written in {EvidenceFolder}: {e.Message}"] };
        }

        result = result with { Runbook = runbook };
        catalog.AddRehearsal(new RehearsalInfo(0, result.Scenario, result.At, result.Passed, result.Seconds, result.RtoSeconds, result.RtoMet, result.Error, runbook,
            System.Text.Json.JsonSerializer.Serialize(result, Text.Json.Options)));
        catalog.AddEvent(result.Passed ? "info" : "error", null, null, result.Passed
            ? $"rehearsal of {result.Scenario} passed in {DrillRunner.Seconds(result.Seconds)} (rto {Quantities.FormatDuration(TimeSpan.FromSeconds(result.RtoSeconds))})"
            : $"rehearsal of {result.Scenario} failed: {result.Error}");
        return result;
    }
}
