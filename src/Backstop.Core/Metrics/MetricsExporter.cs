using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Prometheus;

namespace Backstop.Core.Metrics;

/// <summary>
/// The catalog's recorded state as Prometheus metrics (prometheus-net), the same for <c>serve</c>'s <c>/metrics</c>
/// and <c>metrics --textfile</c>: one gauge per state with a <c>state</c> label, timestamps as Unix seconds, base
/// units in the names, <c>_total</c> only on the counter, labels bounded (source, kind, target, outcome, notifier).
/// </summary>
public static class MetricsExporter
{
    /// <summary>A registry holding the metrics as the catalog has them now.</summary>
    public static CollectorRegistry Collect(BackstopConfig config, CatalogStore catalog, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(catalog);
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var f = Prometheus.Metrics.WithCustomRegistry(registry);
        string[] sk = ["source", "kind"];
        var state = f.CreateGauge("backstop_source_state", "1 for the source's current state (ok, degraded, failing, stale, never), 0 for the others.",
            new GaugeConfiguration { LabelNames = ["source", "kind", "state"] });
        var lastSuccess = f.CreateGauge("backstop_last_success_timestamp_seconds", "When the newest valid snapshot finished (Unix seconds).", new GaugeConfiguration { LabelNames = sk });
        var age = f.CreateGauge("backstop_last_valid_age_seconds", "Age of the newest valid snapshot.", new GaugeConfiguration { LabelNames = sk });
        var rpo = f.CreateGauge("backstop_rpo_seconds", "The source's recovery point objective.", new GaugeConfiguration { LabelNames = sk });
        var duration = f.CreateGauge("backstop_last_run_duration_seconds", "How long the source's last finished run took.", new GaugeConfiguration { LabelNames = sk });
        var stored = f.CreateGauge("backstop_stored_bytes", "Bytes stored per copy of the newest valid snapshot.", new GaugeConfiguration { LabelNames = sk });
        var copies = f.CreateGauge("backstop_verified_copies", "1 when the target holds a verified copy of the newest valid snapshot, else 0.",
            new GaugeConfiguration { LabelNames = ["source", "target"] });
        var drillAt = f.CreateGauge("backstop_last_drill_timestamp_seconds", "When the last restore drill ran (Unix seconds).", new GaugeConfiguration { LabelNames = sk });
        var drillPassed = f.CreateGauge("backstop_last_drill_passed", "1 when the last restore drill passed, else 0.", new GaugeConfiguration { LabelNames = sk });
        var drillSeconds = f.CreateGauge("backstop_drill_duration_seconds", "The last drill's measured RTO: restore and checks, wall clock.", new GaugeConfiguration { LabelNames = sk });
        var rto = f.CreateGauge("backstop_rto_seconds", "The source's recovery time objective (only for sources that set one).", new GaugeConfiguration { LabelNames = sk });
        var runs = f.CreateCounter("backstop_runs_total", "Runs finished since the catalog began, by outcome (valid, failed); retention never lowers it.",
            new CounterConfiguration { LabelNames = ["source", "outcome"] });
        // When these values were computed: serve's are fresh on every scrape; a textfile's is the time it was written, so an
        // alert on time() minus it fires when the job that writes the file stopped (its states would say ok forever).
        var generated = f.CreateGauge("backstop_metrics_generated_timestamp_seconds", "When these metrics were computed (Unix seconds).");
        generated.Set(now.ToUnixTimeMilliseconds() / 1000.0);
        var notifier = f.CreateGauge("backstop_notifier_failing", "1 when the notifier's last delivery failed, else 0.", new GaugeConfiguration { LabelNames = ["notifier", "kind"] });

        var windowStart = f.CreateGauge("backstop_archive_window_start_timestamp_seconds", "The oldest point a point-in-time restore reaches (Unix seconds; sources with wal:).",
            new GaugeConfiguration { LabelNames = sk });
        var windowEnd = f.CreateGauge("backstop_archive_window_end_timestamp_seconds", "The newest point a point-in-time restore reaches: the newest archived file without a gap before it (Unix seconds).",
            new GaugeConfiguration { LabelNames = sk });
        var archiveRpo = f.CreateGauge("backstop_archive_rpo_seconds", "The current RPO of a source with wal:: now minus the newest point a restore reaches.", new GaugeConfiguration { LabelNames = sk });
        var statuses = StatusReport.Compute(config, catalog, now);
        var counts = catalog.RunCounts();
        foreach (var s in statuses)
        {
            var def = config.Source(s.Name)!;
            foreach (var st in Enum.GetValues<SourceState>())
            {
                state.WithLabels(s.Name, s.Kind, st.ToString().ToLowerInvariant()).Set(st == s.State ? 1 : 0);
            }

            rpo.WithLabels(s.Name, s.Kind).Set(s.RpoSeconds);
            if (def.Drill.Rto is { } r)
            {
                rto.WithLabels(s.Name, s.Kind).Set(r.TotalSeconds);
            }

            if (s.LastValid is { } v)
            {
                lastSuccess.WithLabels(s.Name, s.Kind).Set(v.FinishedAt.ToUnixTimeMilliseconds() / 1000.0);
                age.WithLabels(s.Name, s.Kind).Set(Math.Max(0, (now - v.FinishedAt).TotalSeconds));
                stored.WithLabels(s.Name, s.Kind).Set(v.StoredBytes);
                foreach (var (target, copy) in v.Copies)
                {
                    copies.WithLabels(s.Name, target).Set(copy.State == "verified" ? 1 : 0);
                }
            }

            if (s.LastRun is not null && catalog.SnapshotTimes(s.LastRun.Snapshot) is { } times)
            {
                duration.WithLabels(s.Name, s.Kind).Set((times.Finished - times.Started).TotalSeconds);
            }

            if (s.Archive is { From: { } from, To: { } to, RpoSeconds: { } archived })
            {
                windowStart.WithLabels(s.Name, s.Kind).Set(from.ToUnixTimeMilliseconds() / 1000.0);
                windowEnd.WithLabels(s.Name, s.Kind).Set(to.ToUnixTimeMilliseconds() / 1000.0);
                archiveRpo.WithLabels(s.Name, s.Kind).Set(archived);
            }

            // Every outcome is exported (0 included), so a rate() over it starts from a known value.
            runs.WithLabels(s.Name, "valid").IncTo(counts.GetValueOrDefault((s.Name, "valid")));
            runs.WithLabels(s.Name, "failed").IncTo(counts.GetValueOrDefault((s.Name, "failed")));
            if (s.LastDrill is { } d)
            {
                drillAt.WithLabels(s.Name, s.Kind).Set(d.At.ToUnixTimeMilliseconds() / 1000.0);
                drillPassed.WithLabels(s.Name, s.Kind).Set(d.Passed ? 1 : 0);
                drillSeconds.WithLabels(s.Name, s.Kind).Set(d.Seconds);
            }
        }

        // Disaster rehearsals: the estate's measured RTO per scenario, against its objective.
        var rehearsalSeconds = f.CreateGauge("backstop_rehearsal_seconds", "The last rehearsal's measured total (restores and manual estimates) of a disaster scenario.",
            new GaugeConfiguration { LabelNames = ["scenario"] });
        var rehearsalSuccess = f.CreateGauge("backstop_rehearsal_success", "1 when the scenario's last rehearsal passed within its rto, else 0.", new GaugeConfiguration { LabelNames = ["scenario"] });
        var rehearsalAt = f.CreateGauge("backstop_rehearsal_timestamp_seconds", "When the scenario was last rehearsed (Unix seconds).", new GaugeConfiguration { LabelNames = ["scenario"] });
        var scenarioRto = f.CreateGauge("backstop_scenario_rto_seconds", "The disaster scenario's recovery time objective.", new GaugeConfiguration { LabelNames = ["scenario"] });
        foreach (var sc in ScenarioStatus.Compute(config, catalog))
        {
            scenarioRto.WithLabels(sc.Name).Set(sc.RtoSeconds);
            rehearsalSuccess.WithLabels(sc.Name).Set(sc.LastRehearsal is { Passed: true } ? 1 : 0);
            if (sc.LastRehearsal is { } lr)
            {
                rehearsalSeconds.WithLabels(sc.Name).Set(lr.Seconds);
                rehearsalAt.WithLabels(sc.Name).Set(lr.At.ToUnixTimeMilliseconds() / 1000.0);
            }
        }

        // A fleet on a shared catalog: which machine runs each source (join on source), and each agent's last report.
        if (catalog.IsShared)
        {
            var info = f.CreateGauge("backstop_source_info", "1 for each source, labelled with the machine that runs it (a shared catalog).", new GaugeConfiguration { LabelNames = ["source", "machine"] });
            foreach (var s in statuses)
            {
                info.WithLabels(s.Name, s.Machine).Set(1);
            }

            var seen = f.CreateGauge("backstop_machine_last_report_timestamp_seconds", "When the machine's agent last reported to the shared catalog (Unix seconds).",
                new GaugeConfiguration { LabelNames = ["machine"] });
            var staleMachine = f.CreateGauge("backstop_machine_stale", "1 when the machine's agent is silent past the time it promised to report again, else 0.",
                new GaugeConfiguration { LabelNames = ["machine"] });
            foreach (var m in catalog.Machines())
            {
                seen.WithLabels(m.Name).Set(m.SeenAt.ToUnixTimeMilliseconds() / 1000.0);
                staleMachine.WithLabels(m.Name).Set(m.IsStale(now) ? 1 : 0);
            }
        }

        var failing = Notify.Notifier.Failing(catalog).Select(n => n.Notifier).ToHashSet(StringComparer.Ordinal);
        foreach (var n in config.Notify)
        {
            notifier.WithLabels(n.Name, n.Kind).Set(failing.Contains(n.Name) ? 1 : 0);
        }

        return registry;
    }

    /// <summary>The metrics in the Prometheus text format.</summary>
    public static async Task WriteAsync(BackstopConfig config, CatalogStore catalog, Stream output, CancellationToken cancellationToken)
    {
        var registry = Collect(config, catalog, DateTimeOffset.UtcNow);
        await registry.CollectAndExportAsTextAsync(output, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes node_exporter's textfile (<c>*.prom</c>) atomically: into a temporary file beside it, then renamed, so the
    /// collector never reads half a file.
    /// </summary>
    public static async Task WriteTextfileAsync(BackstopConfig config, CatalogStore catalog, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        // 0644: node_exporter reads it, and it holds no secret. Created new under a random name (a link planted in the
        // textfile folder is never followed), then renamed.
        await FileSystem.AtomicFile.WriteAsync(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            (file, ct) => WriteAsync(config, catalog, file, ct), cancellationToken).ConfigureAwait(false);
    }
}
