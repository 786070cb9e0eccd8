using System.Text;
using Backstop.Core.Catalog;
using Backstop.Core.Config;

namespace Backstop.Core.Notify;

/// <summary>
/// Tells people, from what the catalog recorded and only after it recorded it. Each notifier is told once per change
/// of a source's state (failed, stale, degraded, recovered; the last state told is kept in the catalog), of each
/// failed drill and failed doctor, and, when it asks for them, of each valid backup (success). Healthchecks-style
/// notifiers are pinged at a run's start and end instead. A delivery is tried three times; one that still fails is
/// recorded (and shown by <c>status</c>), never raised: a notifier never changes a backup's outcome or exit code.
/// </summary>
public sealed class Notifier(BackstopConfig config, CatalogStore catalog, Action<string>? log = null) : IDisposable
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(20) };

    /// <summary>Delays between attempts (tests shorten them).</summary>
    public IReadOnlyList<TimeSpan> Backoff { get; init; } = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(4)];

    public void Dispose() => _http.Dispose();

    private IEnumerable<NotifierDefinition> For(string? source) =>
        config.Notify.Where(n => n.Source is null || n.Source == source);

    /// <summary>Healthchecks <c>/start</c> for the whole run and for each source about to run.</summary>
    public async Task RunStartingAsync(IReadOnlyCollection<string> sources, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(sources);
        if (config.Notify.Count == 0)
        {
            return;
        }

        foreach (var n in config.Notify.Where(n => n.Kind == "healthchecks" && (n.Source is null || sources.Contains(n.Source))))
        {
            await DeliverAsync(n, "start", n.Source, sink => ((HealthchecksSink)sink).PingAsync("start", null, ct), ct).ConfigureAwait(false);
        }
    }

    /// <summary>After a run was recorded: pings, success events, and the sources' changes of state.</summary>
    public async Task RunFinishedAsync(IReadOnlyList<SnapshotInfo> results, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (config.Notify.Count == 0)
        {
            return;
        }

        var now = DateTimeOffset.UtcNow;
        var statuses = StatusReport.Compute(config, catalog, now).ToDictionary(s => s.Name, StringComparer.Ordinal);
        string Summary(SnapshotInfo s)
        {
            var def = config.Source(s.Source);
            return s.IsValid(def?.MinCopies ?? 1)
                ? $"{s.Source}: snapshot {s.Id} valid, verified on {string.Join(", ", s.VerifiedTargets)}"
                : $"{s.Source}: snapshot {s.Id} FAILED: {s.Error ?? string.Join("; ", s.CopyProblems)}";
        }

        // Healthchecks: the whole run, and each source's own check.
        var ran = results.Select(r => r.Source).ToHashSet(StringComparer.Ordinal);
        foreach (var n in config.Notify.Where(n => n.Kind == "healthchecks" && (n.Source is null || ran.Contains(n.Source))))
        {
            var mine = results.Where(r => n.Source is null || r.Source == n.Source).ToList();
            var failed = mine.Any(r => !r.IsValid(config.Source(r.Source)?.MinCopies ?? 1));
            var body = string.Join("\n", mine.Select(Summary));
            await DeliverAsync(n, failed ? "fail" : "success", n.Source, sink => ((HealthchecksSink)sink).PingAsync(failed ? "fail" : null, body, ct), ct).ConfigureAwait(false);
        }

        foreach (var s in results.Where(r => r.IsValid(config.Source(r.Source)?.MinCopies ?? 1)))
        {
            var status = statuses.GetValueOrDefault(s.Source);
            var text = $"Backup of '{s.Source}' ({s.Kind}) is valid: snapshot {s.Id}, {Quantities.FormatSize(s.StoredBytes)} stored, " +
                       $"verified on {string.Join(", ", s.VerifiedTargets)}.";
            await SendAsync(NotifyEvents.Success, new Notification(NotifyEvents.Success, s.Source, s.Kind, status?.State.ToString().ToLowerInvariant(), s.Id, null, now, text), ct)
                .ConfigureAwait(false);
        }

        await EvaluateAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Every configured source's state against what each notifier was last told: a change is sent once (failed,
    /// stale, degraded; recovered when back to ok). <c>serve</c> calls this every minute, so a stale source is told
    /// even when nothing runs.
    /// </summary>
    public async Task EvaluateAsync(CancellationToken ct)
    {
        if (config.Notify.Count == 0)
        {
            return;
        }

        var now = DateTimeOffset.UtcNow;
        foreach (var status in StatusReport.Compute(config, catalog, now))
        {
            // The state as status names it (failing, never…); the event says what happened.
            var state = status.State.ToString().ToLowerInvariant();
            var @event = status.State switch
            {
                SourceState.Ok => NotifyEvents.Recovered,
                SourceState.Degraded => NotifyEvents.Degraded,
                SourceState.Stale => NotifyEvents.Stale,
                SourceState.Failing => NotifyEvents.Failed,
                _ when status.LastRun?.State == "failed" => NotifyEvents.Failed,
                _ => "", // never backed up and never failed: nothing to tell yet
            };
            if (@event.Length == 0)
            {
                continue;
            }

            var reasons = string.Join("; ", status.Reasons);
            var text = state == "ok"
                ? $"'{status.Name}' ({status.Kind}) is ok again: last valid backup {status.LastValid?.Snapshot}, {status.Copies} of {status.Targets} copies verified."
                : $"'{status.Name}' ({status.Kind}) is {state}: {reasons}";
            // A failure names the snapshot that failed; any other change, the last valid one it is about.
            var snapshot = @event == NotifyEvents.Failed && status.LastRun is { State: "failed" } failedRun ? failedRun.Snapshot
                : status.LastValid?.Snapshot ?? status.LastRun?.Snapshot;
            var notification = new Notification(@event, status.Name, status.Kind, state, snapshot, state == "ok" ? null : reasons, now, text);
            foreach (var n in For(status.Name).Where(n => n.Kind != "healthchecks"))
            {
                var told = catalog.NotifiedState(n.Name, status.Name) ?? "ok"; // a source starts out as if ok: only trouble is news
                if (told == state || (told == "failed" && @event == NotifyEvents.Failed)) // "failed": how catalogs before issue 20 recorded a failure told
                {
                    continue;
                }

                if (!n.Events.Contains(@event))
                {
                    catalog.SetNotifiedState(n.Name, status.Name, state, now); // not wanted: the change is noted, not sent
                    continue;
                }

                if (await DeliverAsync(n, @event, status.Name, sink => sink.SendAsync(notification, ct), ct).ConfigureAwait(false) is null)
                {
                    catalog.SetNotifiedState(n.Name, status.Name, state, now);
                }
            }
        }
    }

    /// <summary>Each failed drill, once (a drill is an event of its own, not a state that lasts).</summary>
    public async Task DrillsFinishedAsync(IEnumerable<Drill.DrillResult> drills, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(drills);
        if (config.Notify.Count == 0)
        {
            return;
        }

        foreach (var d in drills.Where(d => !d.Passed))
        {
            var text = $"The restore drill of '{d.Source}' ({d.Kind}) failed{(d.Snapshot is null ? "" : $" on snapshot {d.Snapshot}")}: {d.Error}" +
                       (d.Evidence is null ? "" : $"\nEvidence: {d.Evidence}");
            await SendAsync(NotifyEvents.DrillFailed, new Notification(NotifyEvents.DrillFailed, d.Source, d.Kind, "drill failed", d.Snapshot, d.Error, d.At, text), ct)
                .ConfigureAwait(false);
        }

        await EvaluateAsync(ct).ConfigureAwait(false); // a failed drill makes the source degraded
    }

    /// <summary>A disaster rehearsal that failed or came back slower than its scenario's rto: told to the top-level notifiers.</summary>
    public async Task RehearsalFinishedAsync(Recovery.RehearsalResult result, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Passed || config.Notify.Count == 0)
        {
            return;
        }

        var text = $"The disaster rehearsal of '{result.Scenario}' failed: {result.Error}\n" +
                   $"Measured: {Drill.DrillRunner.Seconds(result.Seconds)} against an rto of {Config.Quantities.FormatDuration(TimeSpan.FromSeconds(result.RtoSeconds))}" +
                   (result.CriticalPath.Count > 0 ? $"; critical path {string.Join(" → ", result.CriticalPath)}" : "") +
                   (result.Runbook is null ? "" : $"\nRunbook: {result.Runbook}");
        await SendAsync(NotifyEvents.RehearsalFailed,
            new Notification(NotifyEvents.RehearsalFailed, null, null, "rehearsal failed", null, result.Error, result.At, text), ct).ConfigureAwait(false);
    }

    /// <summary><c>doctor</c>'s failed checks, once per change (failing, then passing again).</summary>
    public async Task DoctorFinishedAsync(IReadOnlyList<Plugins.Finding> findings, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(findings);
        var failed = findings.Where(f => f.Status == Plugins.FindingStatus.Fail).ToList();
        var state = failed.Count > 0 ? "failed" : "ok";
        var text = failed.Count > 0
            ? $"backstop doctor found {failed.Count} failing check(s):\n" + string.Join("\n", failed.Select(f => $"- {f.Check} {f.Subject}: {f.Message}" + (f.Fix is null ? "" : $" (fix: {f.Fix})")))
            : "backstop doctor: every check passes again.";
        var now = DateTimeOffset.UtcNow;
        foreach (var n in config.Notify.Where(n => n.Source is null && n.Kind != "healthchecks"))
        {
            var told = catalog.NotifiedState(n.Name, "doctor") ?? "ok";
            if (told == state)
            {
                continue;
            }

            var @event = state == "failed" ? NotifyEvents.DoctorFailed : NotifyEvents.Recovered;
            if (!n.Events.Contains(@event)
                || await DeliverAsync(n, @event, null, sink => sink.SendAsync(new Notification(@event, null, null, state, null, null, now, text), ct), ct).ConfigureAwait(false) is null)
            {
                catalog.SetNotifiedState(n.Name, "doctor", state, now);
            }
        }
    }

    /// <summary>The daily digest: every source's state in one message, to one notifier (<c>digest:</c>).</summary>
    public async Task DigestAsync(string notifier, CancellationToken ct)
    {
        var n = config.Notify.First(x => x.Name == notifier);
        var now = DateTimeOffset.UtcNow;
        var statuses = StatusReport.Compute(config, catalog, now).Where(s => n.Source is null || s.Name == n.Source).ToList();
        var text = new StringBuilder($"Backstop on {Environment.MachineName}: {statuses.Count(s => s.State == SourceState.Ok)} of {statuses.Count} source(s) ok.\n");
        foreach (var s in statuses)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"- {s.Name} ({s.Kind}): {s.State.ToString().ToLowerInvariant()}");
            text.Append(s.LastValid is { } v ? $", last valid backup {Quantities.FormatDuration(TimeSpan.FromMinutes(Math.Round((now - v.FinishedAt).TotalMinutes)))} ago" : ", no valid backup");
            text.Append(s.LastDrill is { } d ? $", last drill {(d.Passed ? "passed" : "FAILED")}" : ", never drilled");
            text.Append(s.Reasons.Count > 0 ? $": {string.Join("; ", s.Reasons)}\n" : "\n");
        }

        var worst = statuses.Select(s => s.State).DefaultIfEmpty(SourceState.Ok).Max().ToString().ToLowerInvariant();
        await DeliverAsync(n, "digest", n.Source, sink => sink.SendAsync(new Notification("digest", n.Source, null, worst, null, null, now, text.ToString()), ct), ct)
            .ConfigureAwait(false);
    }

    /// <summary><c>notify test</c>: a test message to every notifier; the failures, by name.</summary>
    public async Task<IReadOnlyList<(string Notifier, string? Error)>> TestAsync(CancellationToken ct)
    {
        var results = new List<(string, string?)>();
        foreach (var n in config.Notify)
        {
            var text = $"A test message from backstop on {Environment.MachineName} ({config.File}), notifier '{n.Name}'. Nothing is wrong.";
            var error = await DeliverAsync(n, "test", n.Source, sink => sink.SendAsync(new Notification("test", n.Source, null, null, null, null, DateTimeOffset.UtcNow, text), ct),
                ct).ConfigureAwait(false);
            results.Add((n.Name, error));
        }

        return results;
    }

    private async Task SendAsync(string @event, Notification notification, CancellationToken ct)
    {
        foreach (var n in For(notification.Source).Where(n => n.Kind != "healthchecks" && n.Events.Contains(@event)))
        {
            await DeliverAsync(n, @event, notification.Source, sink => sink.SendAsync(notification, ct), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Tries a delivery three times; records the outcome; returns null when delivered, else the last error. Never throws but for cancellation.</summary>
    private async Task<string?> DeliverAsync(NotifierDefinition n, string @event, string? subject, Func<ISink, Task> send, CancellationToken ct)
    {
        var sink = Sink(n);
        string? error = null;
        var attempts = 0;
        for (; attempts <= Backoff.Count; attempts++)
        {
            if (attempts > 0)
            {
                await Task.Delay(Backoff[attempts - 1], ct).ConfigureAwait(false);
            }

            try
            {
                await send(sink).ConfigureAwait(false);
                catalog.AddNotification(new NotificationInfo(DateTimeOffset.UtcNow, n.Name, @event, subject, true, attempts + 1, null));
                return null;
            }
            catch (Exception e) when (e is NotifyException or ConfigException)
            {
                error = e.Message;
            }
            catch (Exception e) when (e is not OperationCanceledException && e is not OutOfMemoryException)
            {
                error = $"{e.Message} ({e.GetType().Name})"; // Decision: whatever a notifier throws is its own failure, never the run's
            }
        }

        catalog.AddNotification(new NotificationInfo(DateTimeOffset.UtcNow, n.Name, @event, subject, false, attempts, error));
        catalog.AddEvent("warn", subject, null, $"notifier '{n.Name}' could not deliver '{@event}': {error}");
        log?.Invoke($"notifier '{n.Name}' could not deliver '{@event}'{(subject is null ? "" : $" for '{subject}'")} after {attempts} attempts: {error}");
        return error ?? "undelivered";
    }

    private ISink Sink(NotifierDefinition n) => n.Kind switch
    {
        "email" => new EmailSink((EmailNotifier)n.Options),
        "webhook" => new WebhookSink((UrlNotifier)n.Options, _http),
        "ntfy" => new NtfySink((UrlNotifier)n.Options, _http),
        "healthchecks" => new HealthchecksSink((UrlNotifier)n.Options, _http),
        _ => throw new InvalidOperationException($"notifier kind {n.Kind}"),
    };

    /// <summary>Notifiers whose last delivery failed, with when and why: what <c>status</c> shows.</summary>
    public static IReadOnlyList<NotificationInfo> Failing(CatalogStore catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.Notifications().GroupBy(n => n.Notifier, StringComparer.Ordinal).Select(g => g.First()).Where(n => !n.Delivered).ToList();
    }
}
