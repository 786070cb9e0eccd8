using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Maintenance;
using Backstop.Core.Plugins;
using Backstop.Core.Restore;
using Backstop.Core.Run;
using Backstop.Core.Storage;

namespace Backstop.Core.Retention;

/// <summary>
/// One line of <c>prune</c>: a snapshot on a target (or "-" when it holds nothing), kept or removed, and why.
/// <paramref name="Pending"/>: it goes, but the target did not let it be removed yet (the next run removes it).
/// </summary>
public sealed record PruneLine(string Source, string Target, string Snapshot, DateTimeOffset Time, bool Keep, string Why, bool Pending = false);

/// <summary>
/// Applies each source's retention rules per target, over the snapshots with a verified copy there: failed
/// snapshots never count, the newest valid one is always kept, and a source whose newest snapshot is not valid is
/// left alone (unless forced), so a run of failures can never eat the last good backups. A copy is marked pruned
/// in the catalog before its folder is removed (manifest first), so an interrupted prune is finished by the next run.
/// </summary>
public sealed class Pruner(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog, RunObserver observer)
{
    /// <summary>The snapshot column of a line about a source's shared blobs (<c>&lt;source&gt;/blobs/</c>), not one snapshot.</summary>
    public const string BlobsLine = "blobs";

    /// <summary>The snapshot column of a line about a source's continuous archive (<c>&lt;source&gt;/wal/</c>).</summary>
    public const string ArchiveLine = "wal";

    /// <summary>Whether a line is about a source's shared files (blobs, archive) rather than one snapshot.</summary>
    public static bool IsSharedLine(PruneLine line) => line?.Snapshot is BlobsLine or ArchiveLine;

    /// <summary>Called with the snapshot id between the restore-mark check and the marking of its copies (interleaving tests).</summary>
    internal Action<string>? BeforeMarkingPruned { get; init; }

    public async Task<IReadOnlyList<PruneLine>> RunAsync(IReadOnlyCollection<string> only, bool dryRun, bool force, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(only);
        var targets = config.Targets.ToDictionary(t => t.Name, t => GuardedTarget.Create(plugins, t), StringComparer.Ordinal);
        var lines = new List<PruneLine>();
        foreach (var def in config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)))
        {
            if (def.Retention is not { IsEmpty: false } rules)
            {
                observer.Notice($"'{def.Name}': no retention rules configured; nothing pruned");
                continue;
            }

            if (!dryRun)
            {
                catalog.Fence(def.Name, $"pruning '{def.Name}'");
            }

            var snapshots = catalog.Snapshots(def.Name).Where(s => s.State != SnapshotState.Running).ToList();
            var newest = snapshots.LastOrDefault();
            if (newest is not null && !newest.IsValid(def.MinCopies) && !force)
            {
                observer.Notice(
                    $"'{def.Name}': the newest snapshot {newest.Id} is not valid ({newest.Error ?? "too few verified copies"}); nothing pruned until a run succeeds (or use --force)");
                continue;
            }

            // Kept on every target whatever the rules or --force say: the last snapshot that is a whole backup.
            var newestValid = snapshots.LastOrDefault(s => s.IsValid(def.MinCopies));
            foreach (var s in snapshots.Where(s => s.State == SnapshotState.Failed))
            {
                lines.Add(new PruneLine(def.Name, "-", s.Id, s.StartedAt, true, "failed: never counts, holds no data"));
            }

            // Unrestorable (every copy of an artifact proven bad): kept until a newer valid snapshot exists, then removed
            // from every target that holds what is left of it. A dry run names them.
            foreach (var s in snapshots.Where(s => s.Unrestorable && newestValid is not null && s.StartedAt < newestValid.StartedAt))
            {
                ct.ThrowIfCancellationRequested();
                const string Why = "unrestorable: no good copy left, and a newer valid snapshot exists";
                foreach (var targetName in s.Artifacts.SelectMany(a => a.Copies).Where(c => c.State != CopyState.Pruned && targets.ContainsKey(c.Target))
                             .Select(c => c.Target).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
                {
                    var line = new PruneLine(def.Name, targetName, s.Id, s.StartedAt, false, $"{Why} ({string.Join("; ", s.CopyProblems)})");
                    if (dryRun)
                    {
                        lines.Add(line);
                        continue;
                    }

                    catalog.SetCopies(s.Artifacts.Where(a => a.Copies.Any(c => c.Target == targetName))
                        .Select(a => (s.Id, a.Name, new CopyInfo(targetName, CopyState.Pruned, DateTimeOffset.UtcNow, $"pruned: {Why}"))));
                    catalog.Fence(def.Name, $"pruning '{def.Name}' on '{targetName}'");
                    var removed = await Orphans.DeleteFolderAsync(targets[targetName], Layout.Folder(def.Name, s.Id), observer).ConfigureAwait(false);
                    lines.Add(line with { Pending = !removed });
                    catalog.AddEvent(removed ? "info" : "warn", def.Name, s.Id, removed
                        ? $"pruned from '{targetName}': {Why}"
                        : $"pruned from '{targetName}' ({Why}) but not removed yet: the target refused; the next run removes it");
                }
            }

            foreach (var targetName in def.Targets.Distinct(StringComparer.Ordinal))
            {
                var here = snapshots.Where(s => s.State == SnapshotState.Committed && s.Artifacts.Count > 0 && s.OwnVerifiedTargets.Contains(targetName)).ToList(); // its shared blobs too
                var decisions = KeepParents(RetentionPolicy.Decide(here.Select(s => new RetentionCandidate(s.Id, s.StartedAt)), rules), snapshots, newestValid?.Id);
                foreach (var decided in decisions.OrderBy(d => d.Time))
                {
                    ct.ThrowIfCancellationRequested(); // Ctrl-C stops between snapshots, never inside one's removal
                    var d = !decided.Keep && decided.Id == newestValid?.Id
                        ? decided with { Keep = true, Reasons = [$"newest valid snapshot ({def.MinCopies} verified copies); never pruned, also with --force"] }
                        : decided;
                    if (!d.Keep && RestoreMarks.Readers(config, d.Id) is [var reader, ..])
                    {
                        d = d with { Keep = true, Reasons = [$"being restored (pid {reader}); {d.Reasons[0]}: a later prune removes it"] };
                    }

                    var line = new PruneLine(def.Name, targetName, d.Id, d.Time, d.Keep, string.Join("; ", d.Reasons));
                    if (d.Keep || dryRun)
                    {
                        lines.Add(line);
                        continue;
                    }

                    // Recorded pruned first: a removal that fails or is interrupted is finished by the next run's sweep.
                    var snapshot = here.Single(s => s.Id == d.Id);
                    BeforeMarkingPruned?.Invoke(snapshot.Id);
                    catalog.SetCopies(snapshot.Artifacts.Select(a =>
                        (snapshot.Id, a.Name, new CopyInfo(targetName, CopyState.Pruned, DateTimeOffset.UtcNow, $"pruned: {d.Reasons[0]}"))));

                    // A restore that marked the snapshot after the check above chose its copies before they were marked
                    // pruned, or will see them pruned: in the first case they are put back and kept.
                    if (RestoreMarks.Readers(config, d.Id) is [var late, ..])
                    {
                        catalog.SetCopies(snapshot.Artifacts.Select(a => (snapshot.Id, a.Name, a.Copies.First(c => c.Target == targetName))));
                        lines.Add(line with { Keep = true, Why = $"being restored (pid {late}); {d.Reasons[0]}: a later prune removes it" });
                        continue;
                    }

                    catalog.Fence(def.Name, $"pruning '{def.Name}' on '{targetName}'");
                    var removed = await Orphans.DeleteFolderAsync(targets[targetName], Layout.Folder(def.Name, snapshot.Id), observer).ConfigureAwait(false);
                    lines.Add(line with { Pending = !removed });
                    catalog.AddEvent(removed ? "info" : "warn", def.Name, snapshot.Id, removed
                        ? $"pruned from '{targetName}': {d.Reasons[0]}"
                        : $"pruned from '{targetName}' ({d.Reasons[0]}) but not removed yet: the target refused; the next run removes it");
                }
            }

            var going = lines.Where(l => l.Source == def.Name && !l.Keep).Select(l => (l.Snapshot, l.Target)).ToHashSet();
            await PruneBlobsAsync(def, targets, dryRun, going, lines, ct).ConfigureAwait(false);
            await PruneArchiveAsync(def, targets, dryRun, going, lines, ct).ConfigureAwait(false);
        }

        return lines;
    }

    /// <summary>
    /// A continuous archive is kept, on each target, from the oldest base snapshot kept there (a committed one this prune
    /// leaves, or one being restored): the files that end at or before where its replay starts, on its timeline or an
    /// earlier one, go. Timeline history files and partial segments stay (small, and a timeline's lineage). Nothing goes
    /// while no base is kept on the target.
    /// </summary>
    private async Task PruneArchiveAsync(SourceDefinition def, Dictionary<string, ITarget> targets, bool dryRun, HashSet<(string Snapshot, string Target)> going,
        List<PruneLine> lines, CancellationToken ct)
    {
        if (def.Archive is not { } policy)
        {
            return;
        }

        var archive = catalog.Archive(def.Name);
        var snapshots = catalog.Snapshots(def.Name);
        long? reach = null; // where the oldest base kept anywhere starts: markers before it can no longer be recovered to
        foreach (var targetName in def.Targets.Distinct(StringComparer.Ordinal).Where(targets.ContainsKey))
        {
            var oldest = snapshots.Where(s => (s.State == SnapshotState.Committed && !going.Contains((s.Id, targetName))
                                               && s.Artifacts.Count > 0 && s.Artifacts.All(a => a.Copies.Any(c => c.Target == targetName && c.State == CopyState.Verified)))
                                              || RestoreMarks.Readers(config, s.Id).Count > 0)
                .Select(s => policy.BaseRange(s.Facts)).Where(r => r is not null).MinBy(r => r!.Start);
            if (oldest is null)
            {
                continue;
            }

            reach = reach is { } r ? Math.Min(r, oldest.Start) : oldest.Start;
            var old = archive.Where(a => a.End > 0 && a.End <= oldest.Start && string.CompareOrdinal(a.Folder, oldest.Folder) <= 0
                                         && a.Copies.Any(c => c.Target == targetName)).ToList();
            if (old.Count == 0)
            {
                continue;
            }

            var why = $"{old.Count} WAL file(s) older than the oldest kept base backup ({old[0].Name} to {old[^1].Name}, " +
                      $"{Config.Quantities.FormatSize(old.Sum(a => a.StoredBytes.GetValueOrDefault(targetName)))})";
            if (dryRun)
            {
                lines.Add(new PruneLine(def.Name, targetName, ArchiveLine, DateTimeOffset.UtcNow, false, why));
                continue;
            }

            catalog.Fence(def.Name, $"pruning the WAL of '{def.Name}' on '{targetName}'");
            var (_, failure) = await ForgetThenDeleteAsync(targets[targetName],
                old.Select(file => ((Action)(() => catalog.DeleteArchiveCopy(def.Name, file.Name, targetName)), Storage.Layout.ArchiveKey(def.Name, file.Folder, file.StoredFile))), ct)
                .ConfigureAwait(false);
            lines.Add(new PruneLine(def.Name, targetName, ArchiveLine, DateTimeOffset.UtcNow, false, why, Pending: failure is not null));
            catalog.AddEvent(failure is null ? "info" : "warn", def.Name, null, failure is null
                ? $"pruned from '{targetName}': {why}"
                : $"pruned from '{targetName}': {why}, but not all removed ({failure}); the files stay on the target until removed by hand");
        }

        if (reach is { } from && !dryRun)
        {
            catalog.DeleteMarkersBefore(def.Name, from);
        }
    }

    /// <summary>
    /// Shared blobs (<c>&lt;source&gt;/blobs/sha256/</c>) that no snapshot needs on a target any more: a blob stays while a
    /// running snapshot names it, or a committed one not pruned from that target, or one being restored; every other
    /// file there (known to the catalog or left by a run that was killed after its upload) is removed. Runs under the
    /// run lock, like a run of the source.
    /// </summary>
    /// <param name="going">Snapshots this prune removes (or, dry, would remove) from a target.</param>
    private async Task PruneBlobsAsync(SourceDefinition def, Dictionary<string, ITarget> targets, bool dryRun, HashSet<(string Snapshot, string Target)> going,
        List<PruneLine> lines, CancellationToken ct)
    {
        var snapshots = catalog.Snapshots(def.Name);
        var known = catalog.BlobCopies(def.Name);
        if (known.Count == 0 && snapshots.All(s => s.Blobs.Count == 0))
        {
            return;
        }

        var running = snapshots.Any(s => s.State == SnapshotState.Running);
        foreach (var targetName in def.Targets.Concat(known.Select(k => k.Copy.Target)).Distinct(StringComparer.Ordinal).Where(targets.ContainsKey).Order(StringComparer.Ordinal))
        {
            var target = targets[targetName];
            var needed = snapshots.Where(s => s.State == SnapshotState.Running
                                              || (s.State == SnapshotState.Committed && !going.Contains((s.Id, targetName))
                                                  && s.Artifacts.SelectMany(a => a.Copies).Any(c => c.Target == targetName && c.State != CopyState.Pruned))
                                              || RestoreMarks.Readers(config, s.Id).Count > 0)
                .SelectMany(s => s.Blobs.Select(b => b.FileName)).ToHashSet(StringComparer.Ordinal);
            var stored = new Dictionary<string, long>(StringComparer.Ordinal);
            var partials = new List<string>();
            try
            {
                await foreach (var o in target.ListAsync(Layout.BlobFolder(def.Name), ct).ConfigureAwait(false))
                {
                    var name = o.Key[Layout.BlobFolder(def.Name).Length..];
                    if (Layout.IsBlobFile(name))
                    {
                        stored[name] = o.Size;
                    }
                    else if (Orphans.IsPartial(o.Key))
                    {
                        partials.Add(o.Key);
                    }
                }
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                observer.Notice($"'{def.Name}': the shared blobs on '{targetName}' could not be listed ({e.Message}); none removed there now");
                continue;
            }

            var unneeded = stored.Keys.Concat(known.Where(k => k.Copy.Target == targetName).Select(k => k.File)).Distinct(StringComparer.Ordinal)
                .Where(f => !needed.Contains(f)).Order(StringComparer.Ordinal).ToList();
            if (unneeded.Count == 0 && (partials.Count == 0 || running))
            {
                continue;
            }

            var bytes = unneeded.Sum(f => stored.GetValueOrDefault(f));
            var why = $"{unneeded.Count} shared blob(s) no kept snapshot needs ({Config.Quantities.FormatSize(bytes)})";
            if (dryRun)
            {
                lines.Add(new PruneLine(def.Name, targetName, BlobsLine, DateTimeOffset.UtcNow, false, why));
                continue;
            }

            catalog.Fence(def.Name, $"pruning the shared blobs of '{def.Name}' on '{targetName}'");
            var (removed, failure) = await ForgetThenDeleteAsync(target,
                unneeded.Concat(running ? [] : partials.Select(p => p[Layout.BlobFolder(def.Name).Length..]))
                    .Select(file => ((Action)(() => catalog.DeleteBlobCopy(def.Name, file, targetName)), Layout.BlobKey(def.Name, file))), ct).ConfigureAwait(false);
            lines.Add(new PruneLine(def.Name, targetName, BlobsLine, DateTimeOffset.UtcNow, false, why, Pending: failure is not null));
            catalog.AddEvent(failure is null ? "info" : "warn", def.Name, null, failure is null
                ? $"pruned from '{targetName}': {why}"
                : $"pruned from '{targetName}': {why}, but {unneeded.Count - Math.Min(removed, unneeded.Count)} not removed yet ({failure}); the next prune tries again");
        }
    }

    /// <summary>
    /// Each shared file (a blob, an archive file) forgotten in the catalog first, then deleted on the target: a removal
    /// cut short leaves a file the next prune or a person removes, never a copy counted that is gone. Stops only on
    /// Ctrl-C between files; the number removed and the first failure.
    /// </summary>
    private static async Task<(int Removed, string? Failure)> ForgetThenDeleteAsync(ITarget target, IEnumerable<(Action Forget, string Key)> files, CancellationToken ct)
    {
        var removed = 0;
        string? failure = null;
        foreach (var (forget, key) in files)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                forget();
                await target.DeleteAsync(key, ct).ConfigureAwait(false);
                removed++;
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                failure ??= e.Message;
            }
        }

        return (removed, failure);
    }

    /// <summary>
    /// A chain is one unit: every level below a snapshot that is kept (by a rule, as the newest valid one, or being
    /// restored) is kept too, saying whose parent it is, so retention never orphans a level.
    /// </summary>
    private List<RetentionDecision> KeepParents(IReadOnlyList<RetentionDecision> decisions, IReadOnlyList<SnapshotInfo> snapshots, string? newestValid)
    {
        var byId = snapshots.ToDictionary(s => s.Id, StringComparer.Ordinal);
        var parentOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var d in decisions.Where(d => d.Keep || d.Id == newestValid || RestoreMarks.Readers(config, d.Id).Count > 0).OrderByDescending(d => d.Time))
        {
            foreach (var below in byId.TryGetValue(d.Id, out var kept) ? kept.Ancestors : [])
            {
                parentOf.TryAdd(below.Id, d.Id);
            }
        }

        return decisions.Select(d => !d.Keep && parentOf.TryGetValue(d.Id, out var child)
            ? d with { Keep = true, Reasons = [$"kept: parent of {child} (a level of its chain needs it)"] }
            : d).ToList();
    }
}
