using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Locking;
using Backstop.Core.Plugins;
using Backstop.Core.Run;
using Microsoft.Extensions.Logging;

namespace Backstop.Core.Serve;

/// <summary>A scheduled job: a source's backup, a source's drill, the deep verify of everything, or a disaster rehearsal.</summary>
public sealed record ServeJob(string Kind, string? Source, Schedule? Schedule, TimeSpan? Every)
{
    /// <summary>The notifier of a digest job.</summary>
    public string? Notifier { get; init; }

    /// <summary>The disaster scenario of a rehearsal job (it runs alone, like a deep verify).</summary>
    public string? Scenario { get; init; }

    public string Name => Notifier is not null ? $"{Kind} to {Notifier}" : Scenario is not null ? $"{Kind} {Scenario}" : Source is null ? Kind : $"{Kind} {Source}";
}

/// <summary>
/// <c>serve</c>'s scheduler: runs what is due, at most <c>serve.parallel</c> jobs at once and never two of one source;
/// under the same lock as <c>run</c> (a manual run in between is waited for, and the slot it delayed is said and run
/// after it); with jitter; catching up at start a source never backed up or whose last valid backup is older than
/// its schedule's interval. Every minute the sources' states are evaluated for notifications (a stale source is told
/// even when nothing runs). Cancelling stops what runs cleanly; the runs record themselves as interrupted.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "SemaphoreSlim holds an OS handle only once its AvailableWaitHandle is read, which nothing here does; there is nothing to release.")]
public sealed class ServeLoop(BackstopConfig config, PluginRegistry plugins, Func<RunObserver> observer, ILogger log)
{
    private readonly Dictionary<ServeJob, DateTimeOffset> _next = [];
    private readonly HashSet<string> _busy = new(StringComparer.Ordinal);
    private readonly List<Task> _running = [];
    private readonly SemaphoreSlim _parallel = new(config.Serve.Parallel);
    private readonly SemaphoreSlim _lockGate = new(1);
    private RunLock? _lock;
    private int _holders;

    // The sources this agent runs (all with the embedded catalog; its machine's with a shared one).
    private readonly BackstopConfig _own = config.ForThisMachine();
    private FleetLocks? _locks;
    private bool _leader = config.CatalogServer is null;

    /// <summary>
    /// How often serve evaluates the sources' states, reports in and asks for the leader's lock: a minute
    /// (<c>BACKSTOP_SERVE_EVALUATE_SECONDS</c> shortens it, for tests of a fleet).
    /// </summary>
    public static TimeSpan EvaluateEvery { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("BACKSTOP_SERVE_EVALUATE_SECONDS"), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s) && s > 0
            ? TimeSpan.FromSeconds(s)
            : TimeSpan.FromMinutes(1);

    /// <summary>How long a serve agent may be silent before the fleet's view says it is stale (it reports every minute).</summary>
    public static readonly TimeSpan ReportEvery = TimeSpan.FromMinutes(3);

    /// <summary>Whether this instance does the fleet's duties now (always with the embedded catalog).</summary>
    public bool IsLeader => _leader;

    /// <summary>The jobs and when each is next due (the dashboard's "next run").</summary>
    public IReadOnlyDictionary<ServeJob, DateTimeOffset> NextDue
    {
        get
        {
            lock (_next)
            {
                return new Dictionary<ServeJob, DateTimeOffset>(_next);
            }
        }
    }

    /// <summary>"Run now", "drill now": the job is due at once (a source without a schedule gets a one-off job).</summary>
    public void Trigger(string kind, string source)
    {
        lock (_next)
        {
            var job = _next.Keys.FirstOrDefault(j => j.Kind == kind && j.Source == source) ?? new ServeJob(kind, source, null, null);
            _next[job] = DateTimeOffset.MinValue;
        }

        ServeLog.AskedForNow(log, kind, source);
    }

    private Timer? _collector;

    /// <summary>Whether no backup, drill or verify runs now.</summary>
    public bool Idle
    {
        get
        {
            lock (_running)
            {
                return _running.All(t => t.IsCompleted);
            }
        }
    }

    /// <summary>
    /// Asks for <see cref="CollectIfIdle"/> two seconds after the last request that built a large answer (a status, a
    /// scrape, the dashboard), once: the collection is off the request's path.
    /// </summary>
    public void CollectSoon()
    {
        Timer timer;
        lock (_running)
        {
            timer = _collector ??= new Timer(_ => CollectIfIdle(), null, Timeout.Infinite, Timeout.Infinite);
        }

        timer.Change(TimeSpan.FromSeconds(2), Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// When nothing runs, gives back what evaluations and requests left. The GC's gen0 budget follows the CPU's cache
    /// size (≈80 MiB on the bench machine), so their garbage (≈10 MiB a status) would otherwise sit in memory until it
    /// filled: 175 MiB resident while idle, against the 100 MiB goal. A full collection of serve's small heap takes
    /// a few milliseconds. While a job runs nothing is forced: the job's own allocations are the GC's to pace.
    /// </summary>
    public void CollectIfIdle()
    {
        if (Idle)
        {
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }
    }

    /// <summary>How often the loop looks (tests shorten it).</summary>
    public TimeSpan Tick { get; init; } = TimeSpan.FromSeconds(1);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var now = DateTimeOffset.UtcNow;
        ReportAndElect(now);
        PlanAtStart(now);
        if (_next.Count == 0)
        {
            ServeLog.NothingScheduled(log);
        }

        var nextEvaluation = now;

        // Sources whose archive serve receives itself (wal: {receive: true}): one receiver each, for as long as serve runs.
        var receivers = _own.Sources.Where(d => d.Archive is { Receive: true })
            .Select(d => (Def: d, Receiver: plugins.Source(d.Kind)?.Create(d).Capability<IArchiveReceiver>())).Where(x => x.Receiver is not null)
            .Select(x =>
            {
                ServeLog.Receiving(log, x.Def.Name);
                return new ArchiveReceiving(config, plugins, x.Def, x.Receiver!, log).RunAsync(cancellationToken);
            }).ToList();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                now = DateTimeOffset.UtcNow;
                foreach (var job in Due(now))
                {
                    Start(job, now, cancellationToken);
                }

                if (_marking is null || _marking.IsCompleted)
                {
                    _marking = MarkAsync(now, cancellationToken);
                }

                if (now >= nextEvaluation)
                {
                    nextEvaluation = now + EvaluateEvery;
                    ReportAndElect(now);
                    await EvaluateAsync(cancellationToken).ConfigureAwait(false);
                    CollectIfIdle();
                }

                lock (_running)
                {
                    _running.RemoveAll(t => t.IsCompleted);
                }

                await Task.Delay(Tick, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping: what runs was cancelled with the same token and records itself; wait for it below.
        }

        Task[] left;
        lock (_running)
        {
            left = [.. _running];
        }

        if (left.Length > 0)
        {
            ServeLog.Stopping(log, left.Length);
        }

        await Task.WhenAll(left.Append(_marking ?? Task.CompletedTask).Concat(receivers).Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default))).ConfigureAwait(false);
        _collector?.Dispose();
        _locks?.Dispose();
        ServeLog.Stopped(log);
    }

    /// <summary>
    /// Catch-up: a source never backed up, or whose newest valid backup is older than its schedule's interval, is due
    /// now; a drill whose last pass is older than drill.every is too. The rest wait for their next slot.
    /// </summary>
    private void PlanAtStart(DateTimeOffset now)
    {
        using var catalog = CatalogStore.Open(config);
        var statuses = StatusReport.Compute(config, catalog, now).ToDictionary(s => s.Name, StringComparer.Ordinal);
        foreach (var def in _own.Sources)
        {
            var status = statuses[def.Name];
            if (def.Schedule is { } schedule)
            {
                var job = new ServeJob("run", def.Name, schedule, null);
                var behind = status.LastValid is null || now - status.LastValid.FinishedAt > schedule.Interval(now);
                _next[job] = behind ? now : schedule.Next(now) ?? DateTimeOffset.MaxValue;
                if (behind)
                {
                    ServeLog.CatchUp(log, def.Name, status.LastValid is null ? "never backed up" : $"its newest valid backup ({status.LastValid.Snapshot}) is older than its schedule's interval");
                }
            }

            if (def.Drill.Schedule is not null || def.Drill.Every is not null)
            {
                var job = new ServeJob("drill", def.Name, def.Drill.Schedule, def.Drill.Every);
                var lastPassed = catalog.Drills(def.Name).LastOrDefault(d => d.Passed)?.At;
                _next[job] = def.Drill.Schedule is { } ds
                    ? ds.Next(now) ?? DateTimeOffset.MaxValue
                    : lastPassed is { } at && now - at < def.Drill.Every!.Value ? at + def.Drill.Every.Value : now + TimeSpan.FromMinutes(1); // after the catch-up runs
            }
        }

        foreach (var n in config.Notify.Where(n => n.Digest is not null))
        {
            _next[new ServeJob("digest", null, n.Digest, null) { Notifier = n.Name }] = n.Digest!.Next(now) ?? DateTimeOffset.MaxValue;
        }

        if (config.DeepVerifySchedule is { } verify)
        {
            _next[new ServeJob("verify", null, verify, null)] = verify.Next(now) ?? DateTimeOffset.MaxValue;
        }

        // A scenario with every: rehearsed when its last rehearsal is that old (after the catch-up runs, when overdue).
        foreach (var scenario in config.Recovery.Scenarios.Where(s => s.Every is not null))
        {
            var last = catalog.Rehearsals(scenario.Name).LastOrDefault()?.At;
            _next[new ServeJob("rehearse", null, null, scenario.Every) { Scenario = scenario.Name }] =
                last is { } at && now - at < scenario.Every!.Value ? at + scenario.Every.Value : now + TimeSpan.FromSeconds(10);
        }

        foreach (var (job, at) in _next.Where(j => j.Value > now).OrderBy(j => j.Value))
        {
            ServeLog.NextAt(log, job.Name, Text.Json.Time(at));
        }
    }

    private List<ServeJob> Due(DateTimeOffset now)
    {
        lock (_next)
        {
            var due = _next.Where(j => j.Value <= now).Select(j => j.Key).OrderBy(j => j.Kind == "run" ? 0 : 1).ToList();
            foreach (var job in due)
            {
                // The next slot is set now, from this one: a slot is never run twice, and a missed one is said, not lost.
                _next[job] = job.Schedule?.Next(now) ?? (job.Every is { } every ? now + every : DateTimeOffset.MaxValue);
            }

            return due;
        }
    }

    private void Start(ServeJob job, DateTimeOffset slot, CancellationToken ct)
    {
        if (job.Kind is "digest" or "rehearse" && !LeadsNow())
        {
            if (job.Kind == "rehearse")
            {
                lock (_next)
                {
                    _next[job] = DateTimeOffset.UtcNow + TimeSpan.FromMinutes(1); // overdue stays overdue: asked again when this agent may lead
                }
            }

            return; // the fleet's duty of the agent that leads now (a digest's next slot asks again)
        }

        if (job.Kind == "digest")
        {
            // A message, not a run: no lock, no parallel slot.
            var sending = Task.Run(async () =>
            {
                try
                {
                    using var catalog = CatalogStore.Open(config);
                    using var notifier = new Notify.Notifier(config, catalog, line => ServeLog.Progress(log, line));
                    await notifier.DigestAsync(job.Notifier!, ct).ConfigureAwait(false);
                    ServeLog.Sent(log, job.Name);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    ServeLog.JobFailed(log, job.Name, e.Message); // Decision: a digest that cannot be made is said; serve goes on
                }
            }, CancellationToken.None);
            lock (_running)
            {
                _running.Add(sending);
            }

            return;
        }

        var key = job.Source ?? "*";
        lock (_busy)
        {
            if (job.Kind == "rehearse" && (_busy.Count > 0))
            {
                // A rehearsal runs alone and is worth its wait: it goes again in a minute, not at its next interval.
                lock (_next)
                {
                    _next[job] = DateTimeOffset.UtcNow + TimeSpan.FromMinutes(1);
                }

                return;
            }

            if (_busy.Contains(key) || (key == "*" && _busy.Count > 0) || _busy.Contains("*"))
            {
                ServeLog.SkippedBusy(log, job.Name, Text.Json.Time(slot));
                Record("warn", job.Source, $"serve: {job.Name} skipped its slot of {Text.Json.Time(slot)}: the previous one was still running");
                return;
            }

            _busy.Add(key);
        }

        var task = Task.Run(async () =>
        {
            try
            {
                if (config.Serve.Jitter > TimeSpan.Zero)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * config.Serve.Jitter.TotalMilliseconds), ct).ConfigureAwait(false);
                }

                await _parallel.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    await HoldLockAsync(job, slot, ct).ConfigureAwait(false);
                    // The session this job takes its lock on, kept for the whole job: its fencing asks that one.
                    var session = _locks;
                    var sourceLock = job.Source is { } name && session is not null ? FleetLocks.SourceKey(name) : (long?)null;
                    try
                    {
                        if (config.CatalogServer is not null && (session is null || session.IsBroken))
                        {
                            ServeLog.SkippedNoSession(log, job.Name, Text.Json.Time(slot));
                            Record("warn", job.Source, $"serve: {job.Name} skipped its slot of {Text.Json.Time(slot)}: no lock session on the shared catalog");
                            sourceLock = null;
                            return;
                        }

                        if (sourceLock is { } key && !session!.TryTake(key))
                        {
                            var holder = session.Holder(key) ?? "another agent";
                            ServeLog.SkippedLocked(log, job.Name, Text.Json.Time(slot), holder);
                            Record("warn", job.Source, $"serve: {job.Name} skipped its slot of {Text.Json.Time(slot)}: {holder} holds the source's lock on the shared catalog");
                            sourceLock = null;
                            return;
                        }

                        await RunJobAsync(job, session, ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        if (sourceLock is { } key)
                        {
                            session!.Release(key);
                        }

                        await ReleaseLockAsync().ConfigureAwait(false);
                    }
                }
                finally
                {
                    _parallel.Release();
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                ServeLog.JobStopped(log, job.Name);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Decision: one job's failure is its own; serve goes on with the others and the next slots.
                ServeLog.JobFailed(log, job.Name, e.Message);
                Record("error", job.Source, $"serve: {job.Name} failed: {e.Message}");
            }
            finally
            {
                lock (_busy)
                {
                    _busy.Remove(key);
                }
            }
        }, CancellationToken.None);
        lock (_running)
        {
            _running.Add(task);
        }
    }

    private async Task RunJobAsync(ServeJob job, FleetLocks? session, CancellationToken ct)
    {
        using var catalog = CatalogStore.Open(config);
        catalog.Locks = session;
        switch (job.Kind)
        {
            case "run":
                ServeLog.RunStarted(log, job.Source!);
                // Each snapshot's outcome is said once, by the run's observer (committed or FAILED, with why): never again here.
                await RunJob.RunAsync(_own, plugins, catalog, observer(), [job.Source!], prune: true, acceptShrink: false, ct).ConfigureAwait(false);

                break;
            case "drill":
                ServeLog.DrillStarted(log, job.Source!);
                var drills = await new Drill.DrillRunner(config, plugins, catalog) { Progress = line => ServeLog.Progress(log, line) }.RunAsync([job.Source!], null, ct).ConfigureAwait(false);
                using (var notifier = new Notify.Notifier(config, catalog, line => ServeLog.Progress(log, line)))
                {
                    await notifier.DrillsFinishedAsync(drills, ct).ConfigureAwait(false);
                }

                foreach (var d in drills)
                {
                    if (d.Passed)
                    {
                        ServeLog.DrillPassed(log, d.Source, Drill.DrillRunner.Seconds(d.Seconds));
                    }
                    else
                    {
                        ServeLog.DrillFailed(log, d.Source, d.Error);
                    }
                }

                break;
            case "rehearse":
                ServeLog.RehearsalStarted(log, job.Scenario!);
                var rehearsal = await new Recovery.RehearsalRunner(config, plugins, catalog) { Progress = line => ServeLog.Progress(log, line) }.RunAsync(job.Scenario!, ct).ConfigureAwait(false);
                using (var notifier = new Notify.Notifier(config, catalog, line => ServeLog.Progress(log, line)))
                {
                    await notifier.RehearsalFinishedAsync(rehearsal, ct).ConfigureAwait(false);
                }

                if (rehearsal.Passed)
                {
                    ServeLog.RehearsalPassed(log, job.Scenario!, Drill.DrillRunner.Seconds(rehearsal.Seconds));
                }
                else
                {
                    ServeLog.RehearsalFailed(log, job.Scenario!, rehearsal.Error);
                }

                break;
            default:
                ServeLog.VerifyStarted(log);
                var report = await new Verify.VerifyRunner(_own, plugins, catalog).RunAsync([], deep: true, ct).ConfigureAwait(false);
                var bad = report.Copies.Count(c => c.State != CopyState.Verified);
                ServeLog.VerifyFinished(log, report.Copies.Count, bad);
                break;
        }
    }

    /// <summary>Takes the run lock for the first job that needs it, waiting for a manual run that holds it (said once).</summary>
    private async Task HoldLockAsync(ServeJob job, DateTimeOffset slot, CancellationToken ct)
    {
        await _lockGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_holders++ > 0)
            {
                return;
            }

            var said = false;
            while (true)
            {
                try
                {
                    _lock = RunLock.Acquire(config.LockPath);
                    if (said)
                    {
                        ServeLog.LockFree(log, job.Name, Text.Json.Time(slot));
                    }

                    return;
                }
                catch (LockHeldException e)
                {
                    if (!said)
                    {
                        said = true;
                        ServeLog.Waiting(log, job.Name, e.Message);
                        Record("warn", job.Source, $"serve: {job.Name}, slot of {Text.Json.Time(slot)}, waited for another run holding the lock ({e.Message})");
                    }

                    await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                }
            }
        }
        catch
        {
            _holders--;
            throw;
        }
        finally
        {
            _lockGate.Release();
        }
    }

    private async Task ReleaseLockAsync()
    {
        await _lockGate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (--_holders == 0)
            {
                _lock?.Dispose();
                _lock = null;
            }
        }
        finally
        {
            _lockGate.Release();
        }
    }

    private Task? _marking;
    private readonly Dictionary<string, DateTimeOffset> _nextMarker = new(StringComparer.Ordinal);
    private readonly HashSet<string> _markerFailing = new(StringComparer.Ordinal);
    private IReadOnlyList<(SourceDefinition Def, IRecoveryMarked Source)>? _marked;

    /// <summary>
    /// Recovery markers: each source that writes them (a physical PostgreSQL source with drill.marker_database) gets one
    /// every marker_every, recorded with the position right after its commit, for drills to a random moment. Off the
    /// scheduler's path, never under the run lock (like the server's own archiving). A failure is said once per streak.
    /// </summary>
    private async Task MarkAsync(DateTimeOffset now, CancellationToken ct)
    {
        _marked ??= _own.Sources.Select(d => (Def: d, Source: plugins.Source(d.Kind)?.Create(d).Capability<IRecoveryMarked>()))
            .Where(x => x.Source?.MarkerEvery is not null).Select(x => (x.Def, x.Source!)).ToList();
        foreach (var (def, source) in _marked)
        {
            if (_nextMarker.TryGetValue(def.Name, out var due) && now < due)
            {
                continue;
            }

            _nextMarker[def.Name] = now + source.MarkerEvery!.Value;
            try
            {
                var marker = await source.WriteMarkerAsync(ct).ConfigureAwait(false);
                using var catalog = CatalogStore.Open(config);
                catalog.RecordMarker(def.Name, marker);
                if (_markerFailing.Remove(def.Name))
                {
                    ServeLog.MarkersAgain(log, def.Name, marker.Seq, marker.Label);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                if (_markerFailing.Add(def.Name))
                {
                    ServeLog.MarkerFailing(log, def.Name, e.Message);
                    Record("warn", def.Name, $"{def.Name}: the recovery marker could not be written ({e.Message}); drills recover to older markers until it can");
                }
            }
        }
    }

    private async Task EvaluateAsync(CancellationToken ct)
    {
        if (!LeadsNow())
        {
            return; // one instance tells the fleet's state changes, never each agent again
        }

        try
        {
            using var catalog = CatalogStore.Open(config);
            using var notifier = new Notify.Notifier(config, catalog, line => ServeLog.Progress(log, line));
            await notifier.EvaluateAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BackupException or IOException or System.Data.Common.DbException)
        {
            ServeLog.StatesFailed(log, e.Message);
        }
    }

    /// <summary>
    /// Reports this agent in (the fleet's view names one that goes silent), and with a shared catalog takes or keeps the
    /// leader's lock: the fleet's duties (state notifications, digests, rehearsals) run on one instance at a time. A lost
    /// session is opened again here, a minute later.
    /// </summary>
    private void ReportAndElect(DateTimeOffset now)
    {
        try
        {
            using var catalog = CatalogStore.Open(config);
            catalog.ReportMachine(config.Machine, config.CatalogServer is null ? null : ReportEvery, now);
            if (!catalog.IsShared)
            {
                return;
            }

            if (_locks is null || _locks.IsBroken)
            {
                _locks?.Dispose();
                _locks = FleetLocks.Open(catalog);
            }

            var leading = _locks!.TryTake(FleetLocks.LeaderKey);
            if (leading != _leader)
            {
                if (leading)
                {
                    ServeLog.Leads(log, config.Machine);
                }
                else
                {
                    ServeLog.LeadsNoLonger(log, _locks.Holder(FleetLocks.LeaderKey) ?? "another agent");
                }
            }

            _leader = leading;
        }
        catch (Exception e) when (e is BackupException or IOException or System.Data.Common.DbException or InvalidOperationException)
        {
            if (_leader && config.CatalogServer is not null)
            {
                ServeLog.CatalogUnreachable(log, e.Message);
                _locks?.Release(FleetLocks.LeaderKey); // another may lead meanwhile (a lost session has let it go already)
            }

            _leader = config.CatalogServer is null;
        }
    }

    /// <summary>Whether this instance leads now, asked of the server (fencing: a leader cut off does nothing of the fleet's).</summary>
    private bool LeadsNow() => config.CatalogServer is null || (_leader && _locks?.Holds(FleetLocks.LeaderKey) == true);

    private void Record(string level, string? source, string message)
    {
        try
        {
            using var catalog = CatalogStore.Open(config);
            catalog.AddEvent(level, source, null, message);
        }
        catch (Exception e) when (e is BackupException or IOException or System.Data.Common.DbException)
        {
            ServeLog.NotRecorded(log, message, e.Message);
        }
    }
}
