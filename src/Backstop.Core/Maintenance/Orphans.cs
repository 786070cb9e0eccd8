using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Restore;
using Backstop.Core.Run;
using Backstop.Core.Storage;

namespace Backstop.Core.Maintenance;

/// <summary>Snapshot folders without a manifest on a target: never a backup.</summary>
public static class Orphans
{
    /// <summary>Folders <c>&lt;source&gt;/&lt;snapshot&gt;/</c> of the given sources that hold no manifest, with their newest object's time.</summary>
    public static async Task<IReadOnlyList<(string Folder, string Source, string Snapshot, DateTimeOffset Newest)>> FindAsync(
        ITarget target, IReadOnlyCollection<string> sources, CancellationToken cancellationToken) =>
        (await FindAllAsync(target, sources, cancellationToken).ConfigureAwait(false)).Folders;

    /// <summary>A target's temporary name for an upload in progress: <c>.name.xxxxxxxx.partial</c> beside the final name.</summary>
    public static bool IsPartial(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var name = key[(key.LastIndexOf('/') + 1)..];
        return name.StartsWith('.') && name.EndsWith(".partial", StringComparison.Ordinal);
    }

    /// <summary>
    /// Folders without a manifest, temporary objects (with their snapshot) left by uploads that never finished, and the
    /// folders that have a manifest (a prune the target refused leaves those).
    /// </summary>
    public static async Task<(IReadOnlyList<(string Folder, string Source, string Snapshot, DateTimeOffset Newest)> Folders,
        IReadOnlyList<(string Key, string Snapshot, DateTimeOffset Modified)> Partials,
        IReadOnlyList<(string Folder, string Snapshot)> Complete)> FindAllAsync(
        ITarget target, IReadOnlyCollection<string> sources, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(sources);
        var folders = new Dictionary<string, (bool HasManifest, DateTimeOffset Newest)>(StringComparer.Ordinal);
        var partials = new List<(string Key, string Snapshot, DateTimeOffset Modified)>();
        foreach (var source in sources)
        {
            await foreach (var o in target.ListAsync(source + "/", cancellationToken).ConfigureAwait(false))
            {
                var parts = o.Key.Split('/');
                if (parts.Length < 3 || !SnapshotId.IsValid(parts[1]))
                {
                    continue;
                }

                if (IsPartial(o.Key))
                {
                    partials.Add((o.Key, parts[1], o.Modified));
                }

                var folder = $"{parts[0]}/{parts[1]}/";
                var (has, newest) = folders.GetValueOrDefault(folder);
                folders[folder] = (has || (parts.Length == 3 && parts[2] == Layout.ManifestName), o.Modified > newest ? o.Modified : newest);
            }
        }

        return (folders.Where(f => !f.Value.HasManifest)
            .Select(f => (f.Key, f.Key.Split('/')[0], f.Key.Split('/')[1], f.Value.Newest))
            .OrderBy(f => f.Key, StringComparer.Ordinal).ToList(), partials,
            folders.Where(f => f.Value.HasManifest).Select(f => (f.Key, f.Key.Split('/')[1])).OrderBy(f => f.Key, StringComparer.Ordinal).ToList());
    }

    /// <summary>Removes a snapshot folder, manifest first; false (with a notice naming the cause) when the target refused or was unreachable.</summary>
    public static async Task<bool> DeleteFolderAsync(ITarget target, string folder, RunObserver observer)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(observer);
        try
        {
            var keys = new List<string>();
            await foreach (var o in target.ListAsync(folder, CancellationToken.None).ConfigureAwait(false))
            {
                keys.Add(o.Key);
            }

            foreach (var k in keys.OrderBy(k => k.EndsWith(Layout.ManifestName, StringComparison.Ordinal) ? 0 : 1))
            {
                await target.DeleteAsync(k, CancellationToken.None).ConfigureAwait(false);
            }

            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or BackupException)
        {
            observer.Notice($"could not remove {folder} from target '{target.Name}': {e.Message}; the next run tries again");
            return false;
        }
    }
}

/// <summary>
/// What a run clears before it starts: leftovers of runs that died (staging folders, snapshot folders without a
/// manifest). It only touches this configuration's sources, never a snapshot the catalog holds as committed, and
/// leaves alone a folder it does not know that is younger than a day (another host's run may be writing it).
/// </summary>
internal sealed class Sweeper(BackstopConfig config, CatalogStore catalog, RunObserver observer)
{
    private static readonly TimeSpan UnknownGrace = TimeSpan.FromDays(1);
    // Only this configuration's sources (a fleet's catalog holds every machine's: never read them all on each run).
    private readonly Dictionary<string, SnapshotInfo> _snapshots =
        config.Sources.SelectMany(d => catalog.Snapshots(d.Name)).DistinctBy(s => s.Id, StringComparer.Ordinal).ToDictionary(s => s.Id, StringComparer.Ordinal);
    private Dictionary<string, SnapshotState> _known => field ??= _snapshots.ToDictionary(s => s.Key, s => s.Value.State, StringComparer.Ordinal);

    public void CleanStaging()
    {
        IEnumerable<string> folders;
        IEnumerable<string> spools;
        try
        {
            folders = Directory.Exists(config.StagingPath) ? Directory.GetDirectories(config.StagingPath) : [];
            spools = Directory.Exists(config.StagingPath) ? Directory.GetFiles(config.StagingPath, Restorer.SpoolPrefix + "*") : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            observer.Notice($"cannot list staging {config.StagingPath}: {e.Message}");
            return;
        }

        foreach (var d in folders)
        {
            var id = Path.GetFileName(d);
            // A staging outlives its run only when the run died or its removal failed; committed or failed, it is spent.
            var spent = _known.TryGetValue(id, out var state) ? state != SnapshotState.Running : MayRemove(id, Directory.GetLastWriteTimeUtc(d));
            if (SnapshotId.IsValid(id) && spent && TryDeleteDirectory(d, observer))
            {
                observer.Notice($"removed staging leftovers {d}");
            }
        }

        try
        {
            if (RestoreMarks.SweepDead(config) is > 0 and var marks)
            {
                observer.Notice($"removed {marks} mark(s) of restores that were killed");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            observer.Notice($"could not tidy the marks of killed restores: {e.Message}");
        }

        // The spool of a database restore whose process is gone (killed): a whole copy of a dump.
        foreach (var f in spools.Where(f => FileSystem.Stale.OwnerIsGone(Path.GetFileName(f), Restorer.SpoolPrefix)))
        {
            try
            {
                File.Delete(f);
                observer.Notice($"removed {f}, left by a restore that was killed");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                observer.Notice($"could not remove {f}: {e.Message}");
            }
        }
    }

    public async Task RemoveOrphansAsync(IEnumerable<ITarget> targets, CancellationToken ct)
    {
        var sources = config.Sources.Select(s => s.Name).ToList();
        foreach (var t in targets)
        {
            IReadOnlyList<(string Folder, string Source, string Snapshot, DateTimeOffset Newest)> orphans;
            IReadOnlyList<(string Key, string Snapshot, DateTimeOffset Modified)> partials;
            IReadOnlyList<(string Folder, string Snapshot)> complete;
            try
            {
                await t.ProbeAsync(ct).ConfigureAwait(false);
                (orphans, partials, complete) = await Orphans.FindAllAsync(t, sources, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                continue; // the sources using this target meet the same problem in their preflight, with the reason
            }

            // Temporary objects of uploads killed with their run (kill -9, a power cut) inside folders that stay.
            foreach (var p in partials.Where(p => _known.GetValueOrDefault(p.Snapshot) == SnapshotState.Committed))
            {
                try
                {
                    await t.DeleteAsync(p.Key, ct).ConfigureAwait(false);
                    observer.Notice($"removed {p.Key} from target '{t.Name}': the temporary object of an upload that never finished");
                }
                catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
                {
                    observer.Notice($"could not remove {p.Key} from target '{t.Name}': {e.Message}; the next run tries again");
                }
            }

            // Temporary objects of shared-blob uploads killed with their run: never a blob (only a whole upload takes the
            // blob's name), removed while no snapshot of that source runs (serve runs several sources in one process).
            foreach (var source in sources.Where(s => !_snapshots.Values.Any(x => x.Source == s && x.State == SnapshotState.Running)))
            {
                try
                {
                    var leftovers = new List<string>();
                    await foreach (var o in t.ListAsync(Layout.BlobFolder(source), ct).ConfigureAwait(false))
                    {
                        if (Orphans.IsPartial(o.Key))
                        {
                            leftovers.Add(o.Key);
                        }
                    }

                    // Asked again now, after the listing: a snapshot of this source that began meanwhile (serve runs several
                    // at once) began before its upload's temporary object existed, so it is seen here and its upload kept.
                    if (leftovers.Count > 0 && catalog.RecentSnapshots(source, 5, facts: false).Any(x => x.State == SnapshotState.Running))
                    {
                        continue;
                    }

                    foreach (var key in leftovers)
                    {
                        await t.DeleteAsync(key, ct).ConfigureAwait(false);
                        observer.Notice($"removed {key} from target '{t.Name}': the temporary object of a blob upload that never finished");
                    }
                }
                catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
                {
                    observer.Notice($"could not tidy {Layout.BlobFolder(source)} on target '{t.Name}': {e.Message}; the next run tries again");
                }
            }

            // Temporary objects of wal-push uploads that were killed: wal-push runs beside runs (never under the lock), so
            // only one untouched for an hour is taken for dead (a push of a segment takes about a second).
            foreach (var source in sources)
            {
                try
                {
                    var dead = new List<string>();
                    await foreach (var o in t.ListAsync($"{source}/wal/", ct).ConfigureAwait(false))
                    {
                        if (Orphans.IsPartial(o.Key) && DateTimeOffset.UtcNow - o.Modified > TimeSpan.FromHours(1))
                        {
                            dead.Add(o.Key);
                        }
                    }

                    foreach (var key in dead)
                    {
                        await t.DeleteAsync(key, ct).ConfigureAwait(false);
                        observer.Notice($"removed {key} from target '{t.Name}': the temporary object of a WAL upload that never finished");
                    }
                }
                catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
                {
                    observer.Notice($"could not tidy {source}/wal/ on target '{t.Name}': {e.Message}; the next run tries again");
                }
            }

            // Snapshots pruned from this target whose removal the target refused (the manifest is still there).
            foreach (var c in complete.Where(c => IsPrunedFrom(c.Snapshot, t.Name)))
            {
                if (await Orphans.DeleteFolderAsync(t, c.Folder, observer).ConfigureAwait(false))
                {
                    observer.Notice($"removed {c.Folder} from target '{t.Name}': pruned earlier, the target refused its removal then");
                }
            }

            // A snapshot recorded failed whose manifest is there: its run was killed between writing its manifests and its
            // commit (or its own cleanup could not reach the target). The catalog is the truth; it never was a backup, and a
            // rebuild from the target must not bring it back as one.
            foreach (var c in complete.Where(c => _known.GetValueOrDefault(c.Snapshot) == SnapshotState.Failed))
            {
                if (await Orphans.DeleteFolderAsync(t, c.Folder, observer).ConfigureAwait(false))
                {
                    observer.Notice($"removed {c.Folder} from target '{t.Name}': snapshot {c.Snapshot} is recorded failed (its run died after writing its {Layout.ManifestName})");
                    catalog.AddEvent("warn", c.Folder.Split('/')[0], c.Snapshot, $"files of failed snapshot removed from target '{t.Name}'");
                }
            }

            foreach (var o in orphans)
            {
                if (_known.GetValueOrDefault(o.Snapshot) == SnapshotState.Committed)
                {
                    if (IsPrunedFrom(o.Snapshot, t.Name))
                    {
                        if (await Orphans.DeleteFolderAsync(t, o.Folder, observer).ConfigureAwait(false))
                        {
                            observer.Notice($"removed {o.Folder} from target '{t.Name}': the rest of a prune that was interrupted");
                        }

                        continue;
                    }

                    if (!_snapshots[o.Snapshot].VerifiedTargets.Contains(t.Name))
                    {
                        continue; // its copy there failed or went missing: healing writes it whole, manifest last
                    }

                    observer.Notice($"target '{t.Name}' has no {Layout.ManifestName} for committed snapshot {o.Snapshot} of '{o.Source}'; kept as it is; run 'backstop verify'");
                    continue;
                }

                if (!MayRemove(o.Snapshot, o.Newest.UtcDateTime))
                {
                    continue;
                }

                if (await Orphans.DeleteFolderAsync(t, o.Folder, observer).ConfigureAwait(false))
                {
                    observer.Notice($"removed {o.Folder} from target '{t.Name}': a snapshot folder without {Layout.ManifestName} (left by an interrupted run)");
                    catalog.AddEvent("warn", o.Source, o.Snapshot, $"orphan {o.Folder} removed from target '{t.Name}'");
                }
            }

            // What the listing cannot show: folders left empty (a run killed after making its snapshot's folder, before its
            // first file) under sources with no snapshot running now, and uploads a killed run began (S3 multipart).
            var idle = sources.Where(s => !catalog.RecentSnapshots(s, 5, facts: false).Any(x => x.State == SnapshotState.Running)).Select(s => s + "/").ToList();
            try
            {
                foreach (var line in await t.SweepLeftoversAsync(idle, ct).ConfigureAwait(false))
                {
                    observer.Notice(line);
                }
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                observer.Notice($"could not sweep leftovers on target '{t.Name}': {e.Message}; the next run tries again");
            }
        }
    }

    /// <summary>
    /// A committed snapshot whose every copy on this target was pruned (a prune decided it goes), and that no restore
    /// is reading now (an explicit <c>restore --snapshot</c> of it may still run from a copy not yet removed).
    /// </summary>
    private bool IsPrunedFrom(string snapshot, string target) =>
        _known.GetValueOrDefault(snapshot) == SnapshotState.Committed
        && _snapshots[snapshot].Artifacts.SelectMany(a => a.Copies).Where(c => c.Target == target).ToList() is { Count: > 0 } copies
        && copies.All(c => c.State == CopyState.Pruned)
        && RestoreMarks.Readers(config, snapshot).Count == 0;

    private bool MayRemove(string snapshot, DateTime newestUtc) =>
        _known.TryGetValue(snapshot, out var state)
            ? state == SnapshotState.Failed
            : DateTime.UtcNow - newestUtc > UnknownGrace;

    /// <summary>Removes a staging folder; false (with a notice) when it could not be removed.</summary>
    public static bool TryDeleteDirectory(string path, RunObserver observer)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }

            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            observer.Notice($"could not remove staging {path}: {e.Message}");
            return false;
        }
    }
}
