using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Core.Run;

/// <summary>
/// One run as <c>run</c> and <c>serve</c> both do it, under the run lock the caller holds: what a killed drill left is
/// swept, Healthchecks are told it starts, the sources are backed up, retention is applied to each source whose backup
/// is valid, and notifiers are told from what was recorded.
/// </summary>
public static class RunJob
{
    public static async Task<IReadOnlyList<SnapshotInfo>> RunAsync(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog, RunObserver observer,
        IReadOnlyCollection<string> only, bool prune, bool acceptShrink, CancellationToken cancellationToken, bool full = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(observer);
        ArgumentNullException.ThrowIfNull(only);
        foreach (var swept in await Drill.DrillSweeper.SweepAsync(config, plugins, cancellationToken).ConfigureAwait(false))
        {
            observer.Notice(swept); // a drill killed with -9 left a scratch server or folder
        }

        // Failed records past catalog.keep_failed leave the catalog (the events keep their count; the run counter too).
        foreach (var (source, count) in catalog.PruneFailed(DateTimeOffset.UtcNow - config.KeepFailed))
        {
            catalog.AddEvent("info", source, null, $"removed {count} failed record(s) older than {Quantities.FormatDuration(config.KeepFailed)} (catalog.keep_failed)");
        }

        var runner = new BackupRunner(config, plugins, catalog, observer) { AcceptShrink = acceptShrink, Full = full };
        using var notifier = new Notify.Notifier(config, catalog, observer.Notice);
        await notifier.RunStartingAsync(only.Count > 0 ? only : config.Sources.Select(s => s.Name).ToList(), cancellationToken).ConfigureAwait(false);
        var done = await runner.RunAsync(only, cancellationToken).ConfigureAwait(false);

        // Retention for each source whose backup this run is valid: a failed or short one prunes nothing (its older
        // snapshots are what is left), and the pruner's own rules keep the newest valid snapshot on every target.
        var prunable = done.Where(r => config.Source(r.Source) is { Retention.IsEmpty: false } def && r.IsValid(def.MinCopies))
            .Select(r => r.Source).Distinct(StringComparer.Ordinal).ToList();
        if (prune && prunable.Count > 0 && !cancellationToken.IsCancellationRequested)
        {
            var lines = await new Retention.Pruner(config, plugins, catalog, observer).RunAsync(prunable, dryRun: false, force: false, cancellationToken).ConfigureAwait(false);
            foreach (var l in lines.Where(l => !l.Keep))
            {
                observer.Notice(Retention.Pruner.IsSharedLine(l)
                    ? $"{l.Source}: from '{l.Target}', {(l.Pending ? "not all removed yet (the next prune tries again): " : "removed ")}{l.Why}"
                    : l.Pending
                    ? $"{l.Source}: snapshot {l.Snapshot} pruned from '{l.Target}' ({l.Why}) but not removed yet: the target refused; the next run removes it"
                    : $"{l.Source}: pruned snapshot {l.Snapshot} from '{l.Target}': {l.Why}");
            }
        }

        // Told from what was recorded, after it was: never before, and never changing the run's outcome.
        await notifier.RunFinishedAsync(done, cancellationToken).ConfigureAwait(false);
        return done;
    }
}
