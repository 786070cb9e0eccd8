using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Run;
using Backstop.Core.Sealing;
using Backstop.Core.Storage;
using Backstop.Core.Verify;

namespace Backstop.Core.Restore;

/// <summary>What one artifact's restore did: where from, and the facts recorded against those found.</summary>
public sealed record RestoredArtifact(
    string Artifact,
    string Target,
    IReadOnlyList<string> SkippedCopies,
    IReadOnlyDictionary<string, long> Recorded,
    IReadOnlyDictionary<string, long> Found,
    string? Mismatch);

/// <summary>
/// <c>restore</c>: picks the snapshot (latest valid by default), and for each artifact the first target whose copy
/// still hashes to the recorded SHA-256 (falling back to the next when one is missing or corrupt), decrypts and
/// decompresses it into the source kind's restore. Nothing from a copy that fails its hash reaches the destination:
/// file-shaped kinds stage aside and publish after the hash matched; database kinds get the copy after it was checked.
/// </summary>
public sealed class Restorer(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog)
{
    private IReadOnlyList<Sealing.Age.AgeIdentity>? _identities;

    /// <summary>Identity files given on the command line (<c>--identity</c>), besides the configuration's.</summary>
    public IReadOnlyList<string> ExtraIdentityFiles { get; init; } = [];

    /// <summary>When set, each stage of the restore adds its busy time here (a drill's phases).</summary>
    public RestoreTimings? Timings { get; init; }

    private IReadOnlyList<Sealing.Age.AgeIdentity> Identities => _identities ??= Sealed.Identities(config.Encryption, ExtraIdentityFiles);

    private readonly List<string> _notes = [];

    /// <summary><c>--include</c> globs: only the paths they match (and what is under them) are restored.</summary>
    public IReadOnlyList<string> Include { get; init; } = [];

    /// <summary><c>--strip-prefix</c>: paths restore relative to it; what is not under it is left out.</summary>
    public string? StripPrefix { get; init; }

    /// <summary>A target whose copies are tried first (a drill's turn of the rotation, or drill --target).</summary>
    public string? PreferredTarget { get; set; }

    /// <summary>Only <see cref="PreferredTarget"/>'s copies are tried (drill --target: that copy is what is proven).</summary>
    public bool OnlyPreferredTarget { get; set; }

    /// <summary>What the choice of snapshot passed over or found short (said before restoring).</summary>
    public IReadOnlyList<string> Notes => _notes;

    private readonly List<(string Snapshot, string Artifact, CopyInfo Copy)> _findings = [];

    private readonly List<string> _passedOver = [];

    /// <summary>Newer committed snapshots that <c>latest</c> passed over (no good copy on a configured target): restored, but not the newest.</summary>
    public IReadOnlyList<string> PassedOver => _passedOver;

    /// <summary>
    /// Copies this restore proved bad (read from a reachable target and found corrupt, or absent): for the caller to
    /// record in the catalog with what it records, so that status, list and the next latest count from the truth. A copy
    /// that could not be read (a target down) is no finding.
    /// </summary>
    public IReadOnlyList<(string Snapshot, string Artifact, CopyInfo Copy)> Findings => _findings;

    /// <summary>Says why a copy was passed over, and keeps it as a finding when it was proven bad.</summary>
    private void Skip(List<string> skipped, SnapshotInfo snapshot, ArtifactInfo a, ITarget t, string problem, CopyState? proven)
    {
        skipped.Add(problem);
        if (proven is { } state)
        {
            _findings.Add((snapshot.Id, a.Name, new CopyInfo(t.Name, state, DateTimeOffset.UtcNow, problem)));
        }
    }

    /// <summary>Where a restore of a source with a continuous archive stops (null: the snapshot alone).</summary>
    public RestorePoint? Point { get; init; }

    /// <summary>The newest committed snapshot with a verified copy here that a restore to <paramref name="point"/> can start from.</summary>
    public SnapshotInfo FindSnapshotAt(SourceDefinition def, RestorePoint point)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(point);
        var pitr = plugins.Source(def.Kind)!.Create(def).Capability<IPointInTimeRestorable>()
                   ?? throw new ConfigException($"--to-time and --to-lsn: '{def.Name}' keeps no continuous archive (a postgres source with mode: physical does)");
        var configured = config.Targets.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var committed = catalog.Snapshots(def.Name).Where(s => s.State == SnapshotState.Committed && s.VerifiedTargets.Any(configured.Contains)).ToList();
        return committed.LastOrDefault(s => pitr.Covers(s, point))
               ?? throw new BackupException(committed.Count == 0
                   ? $"'{def.Name}' has no base backup with a verified copy to start from"
                   : $"{point} is before the recovery window of '{def.Name}': its oldest base backup, {committed[0].Id}, ended at {Text.Json.Time(committed[0].FinishedAt!.Value)}");
    }

    public SnapshotInfo FindSnapshot(SourceDefinition def, string? snapshot)
    {
        ArgumentNullException.ThrowIfNull(def);
        var snapshots = catalog.Snapshots(def.Name);
        if (snapshot is null or "latest")
        {
            // The newest snapshot that has a verified copy somewhere, even when short of min_copies: after a night whose
            // second target was down, the newest data is on the first target, and an older snapshot is not what a user
            // restoring "latest" wants. Whatever is passed over, or short, is said.
            var configured = config.Targets.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            var committed = snapshots.Where(s => s.State == SnapshotState.Committed).ToList();
            var gone = committed.SelectMany(s => s.VerifiedTargets).Where(t => !configured.Contains(t)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var passed = new List<(string Id, string? Why)>();
            var chosen = SnapshotNames.Latest(snapshots, configured, config.File, passed)
                         ?? throw new BackupException(snapshots.Count == 0
                             ? $"the catalog {config.CatalogName} holds no snapshot of '{def.Name}'; if the catalog was lost or replaced, " +
                               "'backstop catalog rebuild' recreates it from the manifests on the targets"
                             : gone.Count > 0
                                 ? $"source '{def.Name}' has verified copies only on {string.Join(", ", gone.Select(t => $"'{t}'"))}, no longer in {config.File}: " +
                                   "add the target back to restore from it"
                                 : $"source '{def.Name}' has no snapshot with a verified copy to restore; see 'backstop list --source {def.Name}'");
            foreach (var (id, why) in passed)
            {
                _passedOver.Add(id);
                if (why is not null)
                {
                    _notes.Add(why.Replace($"; using {chosen.Id}", $"; restoring {chosen.Id}", StringComparison.Ordinal));
                }
            }

            if (chosen.VerifiedTargets.Count < def.MinCopies)
            {
                _notes.Add($"snapshot {chosen.Id} has {chosen.VerifiedTargets.Count} verified cop{(chosen.VerifiedTargets.Count == 1 ? "y" : "ies")} " +
                           $"of the {def.MinCopies} required ({string.Join("; ", chosen.CopyProblems)}); restoring from what there is");
            }

            return chosen;
        }

        var found = SnapshotNames.Resolve(snapshots, snapshot, $"source '{def.Name}'")!; // an id, or a prefix only one snapshot has
        snapshot = found.Id;
        if (found.State != SnapshotState.Committed)
        {
            throw new BackupException($"snapshot {snapshot} is {found.State.ToString().ToLowerInvariant()}, not a backup: {found.Error}");
        }

        var copies = found.Artifacts.SelectMany(a => a.Copies).ToList();
        if (copies.Count > 0 && copies.All(c => c.State == CopyState.Pruned))
        {
            _notes.Add($"snapshot {snapshot} was pruned from every target ({copies[0].Error}); a copy whose removal failed may still restore, its hash decides");
        }

        return found;
    }

    public async Task<IReadOnlyList<RestoredArtifact>> RestoreAsync(SourceDefinition def, SnapshotInfo snapshot, string? artifact,
        string destination, bool force, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshot);
        var source = plugins.Source(def.Kind)!.Create(def);
        var restorable = source.Capability<IRestorable>()
                         ?? throw new BackupException(
                             $"'{def.Kind}' sources cannot be restored by backstop yet; restore with stock tools: 'backstop restore --source {def.Name} --explain' prints how");
        if (Include.Count > 0 || StripPrefix is not null)
        {
            (source.Capability<IPartialRestore>() ?? throw new ConfigException($"--include and --strip-prefix take part of a files snapshot; '{def.Name}' is a {def.Kind} source"))
                .Select(Include, StripPrefix);
        }
        var chosenNames = artifact is null
            ? snapshot.Artifacts.Select(a => a.Name).Where(restorable.Restores).ToList()
            : snapshot.Artifacts.Where(a => a.Name == artifact).Select(a => a.Name).ToList();
        if (chosenNames.Count == 0)
        {
            throw new ConfigException($"--artifact {artifact}: snapshot {snapshot.Id} has {string.Join(", ", snapshot.Artifacts.Select(a => a.Name))}");
        }

        if (chosenNames.FirstOrDefault(n => !restorable.Restores(n)) is { } kept)
        {
            throw new ConfigException($"--artifact {kept}: it is kept for the backup's own use (the listing the next level compares with), and holds nothing to restore");
        }

        var planned = restorable.Plan(chosenNames, destination);

        // A restore to a point of the archive: whether the archive reaches it is known before anything is written.
        var pointInTime = Point is not null && source.Capability<IPointInTimeRestorable>() is { RestoresToPoints: true } p ? p : null;
        var archive = pointInTime is null ? null : new ArchiveReader(def.Name, catalog.Archive(def.Name),
            config.Targets.Select(t => GuardedTarget.Create(plugins, t)).ToDictionary(t => t.Name, StringComparer.Ordinal), Identities, catalog.Markers(def.Name));
        if (pointInTime is not null)
        {
            _ = pointInTime.Needs(snapshot, Point!, archive!);
        }

        var existedBefore = Directory.Exists(destination) && Directory.EnumerateFileSystemEntries(destination).Any();
        var targets = config.Targets.Select(t => GuardedTarget.Create(plugins, t)).ToDictionary(t => t.Name, StringComparer.Ordinal);
        var results = new List<RestoredArtifact>();

        // Marked first, then the copies chosen from the catalog as it is now: a prune that marked them pruned before
        // this mark either sees it and puts them back (it re-checks after marking), or is already recorded here.
        using var reading = RestoreMarks.Mark(config, snapshot.Id);
        snapshot = catalog.Snapshot(snapshot.Id) ?? snapshot;
        var artifacts = planned.Select(n => snapshot.Artifacts.First(a => a.Name == n)).ToList();
        foreach (var a in artifacts)
        {
            // Verified copies first, in the order the configuration lists the targets (the user's preference).
            var order = config.Targets.Select(t => t.Name).ToList();
            var candidates = a.Copies.Where(c => !OnlyPreferredTarget || c.Target == PreferredTarget)
                .OrderBy(c => c.Target == PreferredTarget ? 0 : 1)
                .ThenBy(c => c.State == CopyState.Verified && (snapshot.Blobs.Count == 0 || snapshot.OwnVerifiedTargets.Contains(c.Target)) ? 0 : 1) // with its shared blobs
                .ThenBy(c => order.IndexOf(c.Target))
                .Select(c => targets.GetValueOrDefault(c.Target)).OfType<ITarget>().ToList();
            var key = Layout.Key(snapshot.Source, snapshot.Id, a.FileName);
            (string Target, List<string> Skipped, IReadOnlyDictionary<string, long> Found) restored;
            try
            {
                restored = a.Level > 0
                    ? await ChainAsync(restorable as IChainRestorable ?? throw new BackupException($"artifact {a.Name} is level {a.Level} of a chain, which the '{def.Kind}' kind cannot restore"),
                        snapshot, a, candidates, destination, force, cancellationToken).ConfigureAwait(false)
                    : restorable is IStagedRestorable staged
                    ? await StagedAsync(staged, snapshot, a, key, candidates, destination, force, cancellationToken).ConfigureAwait(false)
                    : await CheckedFirstAsync(restorable, snapshot, a, key, candidates, destination, force, cancellationToken).ConfigureAwait(false);
            }
            catch (NoGoodCopyException e) when (results.Count > 0)
            {
                // Some artifacts of this snapshot are already in place: falling back to an older snapshot here would mix
                // two snapshots at the destination. A plain failure, naming what was restored (never the fallback).
                throw new BackupException(
                    $"{e.Message}; {string.Join(", ", results.Select(r => r.Artifact))} of snapshot {snapshot.Id} {(results.Count == 1 ? "was" : "were")} already restored to {destination}, so no older snapshot is mixed in: restore an older one with --snapshot into a new destination");
            }

            var (target, skipped, found) = restored;
            results.Add(new RestoredArtifact(a.Name, target, skipped, a.Facts, found, ValidationStage.Mismatch(found, a.Facts)));
        }

        // A base backup becomes a cluster with its archive: the files up to the point, and what replays them there.
        if (pointInTime is not null)
        {
            try
            {
                _notes.AddRange(await pointInTime.FinishAsync(destination, snapshot, Point!, archive!, cancellationToken).ConfigureAwait(false));
            }
            catch when (!existedBefore)
            {
                // Half a cluster is worse than none: what this restore made goes.
                try
                {
                    Directory.Delete(destination, recursive: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    _notes.Add($"{destination} could not be removed after the failure: {e.Message}");
                }

                throw;
            }
        }

        return results;
    }

    /// <summary>
    /// One read of the copy: it is hashed while its content is staged beside the destination, and the staged restore
    /// is published only when the hash matches. A copy that fails (missing, unreadable, corrupt, another hash) is
    /// discarded and the next target tried. A failure that is not the copy's (the destination refuses or fills up, or
    /// the key does not open a copy that proves good) is thrown, with what was staged removed.
    /// </summary>
    private async Task<(string Target, List<string> Skipped, IReadOnlyDictionary<string, long> Found)> StagedAsync(IStagedRestorable restorable,
        SnapshotInfo snapshot, ArtifactInfo a, string key, List<ITarget> candidates, string destination, bool force,
        CancellationToken cancellationToken)
    {
        Sealed.RequireIdentities(a.FileName, Identities);
        var skipped = new List<string>();
        foreach (var t in candidates)
        {
            StagedRestore? stage = null;
            var (read, unopened) = await CopyRead.OpenAsync(t, key, cancellationToken).ConfigureAwait(false);
            if (read is null)
            {
                Skip(skipped, snapshot, a, t, unopened!.Problem, unopened.Missing ? CopyState.Missing : null);
                continue;
            }

            try
            {
                string sha;
                await using (read)
                {
                    stage = await ThroughPipelineAsync(read.Stored, a.FileName, a.RawBytes,
                        content => restorable.StageAsync(a.Name, content, destination, force, cancellationToken), cancellationToken,
                        discard: staged => staged.Discard()).ConfigureAwait(false);
                    sha = await read.FinishAsync(cancellationToken).ConfigureAwait(false);
                }

                if (string.Equals(sha, a.Sha256, StringComparison.Ordinal))
                {
                    Publish(stage, destination);
                    return (t.Name, skipped, stage.Found);
                }

                Skip(skipped, snapshot, a, t, $"copy on '{t.Name}' is corrupt: SHA-256 {sha}, recorded {a.Sha256}", CopyState.Corrupt);
            }
            catch (Exception e) when (e is not (OperationCanceledException or DestinationException))
            {
                stage?.Discard();
                stage = null;
                if (await CopysFaultAsync(t, key, a, e, read.ReadFault, cancellationToken).ConfigureAwait(false) is ({ } problem, var proven))
                {
                    Skip(skipped, snapshot, a, t, problem, proven);
                    continue;
                }

                if (CopyRead.IsDestinationFault(e))
                {
                    throw new BackupException(
                        $"cannot restore into {destination}: {e.Message}; what this restore wrote was removed: free space or fix the permissions there, then restore again", e);
                }

                throw;
            }
            finally
            {
                stage?.Discard(); // not published: a bad hash, an error or a cancel
            }
        }

        throw NoGoodCopy(snapshot, a, skipped, candidates.Count);
    }

    /// <summary>
    /// The levels an artifact restores from, oldest (the full) first: its own snapshot's artifact and the same-named
    /// artifact of each parent down to the level that restores alone. A level missing from the catalog is a broken chain.
    /// </summary>
    /// <param name="snapshot">Loaded from the catalog, with its <see cref="SnapshotInfo.Ancestors"/>.</param>
    public static List<(SnapshotInfo Snapshot, ArtifactInfo Artifact)> Levels(SnapshotInfo snapshot, ArtifactInfo a)
    {
        var levels = new List<(SnapshotInfo, ArtifactInfo)> { (snapshot, a) };
        var current = a;
        for (var i = 0; current.Level > 0; i++)
        {
            var parent = i < snapshot.Ancestors.Count ? snapshot.Ancestors[i] : null;
            var below = parent?.Artifacts.FirstOrDefault(x => x.Name == a.Name);
            if (parent is null || below is null || parent.State != SnapshotState.Committed)
            {
                var missing = parent?.Id ?? (i == 0 ? snapshot.Parent : snapshot.Ancestors[i - 1].Parent) ?? "its parent";
                throw new NoGoodCopyException(
                    $"{a.Name} of snapshot {snapshot.Id} is level {a.Level} of a chain whose level {current.Level - 1} ({missing}) is " +
                    $"{(parent is null ? "no longer in the catalog" : below is null ? $"without {a.Name}" : "not committed")}: it cannot be restored; restore an older full with --snapshot",
                    snapshot.Id, allProvenBad: true);
            }

            levels.Add((parent, below));
            current = below;
        }

        levels.Reverse();
        return levels;
    }

    /// <summary>
    /// A level of a chain: from one target, the full and every level above it are read in order, each hashed while it
    /// is applied to one staging, which is published after the last level matched. A level that is missing, corrupt or
    /// unreadable on a target discards the staging and the next target is tried: a chain is restored from one target.
    /// </summary>
    private async Task<(string Target, List<string> Skipped, IReadOnlyDictionary<string, long> Found)> ChainAsync(IChainRestorable restorable,
        SnapshotInfo snapshot, ArtifactInfo a, List<ITarget> candidates, string destination, bool force, CancellationToken cancellationToken)
    {
        var levels = Levels(snapshot, a);
        foreach (var (_, level) in levels)
        {
            Sealed.RequireIdentities(level.FileName, Identities);
        }

        var skipped = new List<string>();
        foreach (var t in candidates)
        {
            var stage = restorable.BeginChain(a.Name, destination, force);
            var published = false;
            try
            {
                var failed = false;
                foreach (var (levelSnapshot, level) in levels)
                {
                    var key = Layout.Key(levelSnapshot.Source, levelSnapshot.Id, level.FileName);
                    var (read, unopened) = await CopyRead.OpenAsync(t, key, cancellationToken).ConfigureAwait(false);
                    if (read is null)
                    {
                        Skip(skipped, levelSnapshot, level, t, unopened!.Problem, unopened.Missing ? CopyState.Missing : null);
                        failed = true;
                        break;
                    }

                    try
                    {
                        string sha;
                        await using (read)
                        {
                            await ThroughPipelineAsync(read.Stored, level.FileName, level.RawBytes,
                                async content =>
                                {
                                    await stage.ApplyAsync(content, level.Level, cancellationToken).ConfigureAwait(false);
                                    return true;
                                }, cancellationToken).ConfigureAwait(false);
                            sha = await read.FinishAsync(cancellationToken).ConfigureAwait(false);
                        }

                        if (!string.Equals(sha, level.Sha256, StringComparison.Ordinal))
                        {
                            Skip(skipped, levelSnapshot, level, t, $"copy of level {level.Level} ({levelSnapshot.Id}) on '{t.Name}' is corrupt: SHA-256 {sha}, recorded {level.Sha256}", CopyState.Corrupt);
                            failed = true;
                            break;
                        }
                    }
                    catch (Exception e) when (e is not (OperationCanceledException or DestinationException))
                    {
                        if (await CopysFaultAsync(t, key, level, e, read.ReadFault, cancellationToken).ConfigureAwait(false) is ({ } problem, var proven))
                        {
                            Skip(skipped, levelSnapshot, level, t, problem, proven);
                            failed = true;
                            break;
                        }

                        if (CopyRead.IsDestinationFault(e))
                        {
                            throw new BackupException(
                                $"cannot restore into {destination}: {e.Message}; what this restore wrote was removed: free space or fix the permissions there, then restore again", e);
                        }

                        throw;
                    }
                }

                if (failed)
                {
                    continue;
                }

                var staged = stage.Finish();
                published = true; // a failed publish removes what it did not move: nothing left to discard
                Publish(staged, destination);
                return (t.Name, skipped, staged.Found);
            }
            finally
            {
                if (!published)
                {
                    stage.Discard();
                }
            }
        }

        throw NoGoodCopy(snapshot, a, skipped, candidates.Count);
    }

    /// <summary>Moves a proven staging into place; a failure there is the destination's, said with what is left where.</summary>
    private static void Publish(StagedRestore staged, string destination)
    {
        try
        {
            staged.Publish();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DestinationException(
                $"cannot finish the restore into {destination}: {e.Message}; the names moved before this are in place and the rest of the " +
                "staging was removed: fix the cause, then restore again with --force");
        }
    }

    /// <summary>
    /// Whether a failed staged restore was the copy's fault, and how: a copy that is missing or could not be read is
    /// skipped at once; content that did not decode or was refused (zstd, age, a tar or format check) may be a bad copy
    /// or a bad backup, so the copy is read again; a write that failed with nothing wrong on the read side is the
    /// destination's (null).
    /// </summary>
    private static async Task<(string? Problem, CopyState? Proven)> CopysFaultAsync(ITarget t, string key, ArtifactInfo a, Exception e, Exception? readFault,
        CancellationToken cancellationToken)
    {
        if (e is ObjectNotFoundException)
        {
            return ($"{CopyRead.Where(t, key)} is missing", CopyState.Missing);
        }

        if (e is DecodesTooLongException)
        {
            return ($"{CopyRead.Where(t, key)}: {e.Message}", CopyState.Corrupt); // proven: the recorded size is the stored content's
        }

        if (readFault is not null)
        {
            return ($"{CopyRead.Where(t, key)} could not be read: {readFault.Message}", null); // the target's transport, whatever followed
        }

        if (CopyRead.IsDestinationFault(e))
        {
            return (null, null);
        }

        var check = await CopyVerifier.VerifyAsync(t, key, a.StoredBytes, a.Sha256, deep: true, validator: null, a.Facts, cancellationToken).ConfigureAwait(false);
        return check.State == CopyState.Verified ? (null, null) : (check.Error ?? $"copy on '{t.Name}' is {check.State.ToString().ToLowerInvariant()}", Proven(check.State));
    }

    /// <summary>A copy state that proves a copy bad (corrupt, missing); null for one that only could not be read.</summary>
    private static CopyState? Proven(CopyState state) => state is CopyState.Corrupt or CopyState.Missing ? state : null;

    /// <summary>
    /// Kinds that write into a server (a database) cannot be staged and renamed into place, so the copy proves its
    /// SHA-256 before anything is sent. It is read once: into a spool file in the staging folder while it is hashed,
    /// then restored from there. Without room for the spool, the copy is checked whole, then read a second time.
    /// </summary>
    private async Task<(string Target, List<string> Skipped, IReadOnlyDictionary<string, long> Found)> CheckedFirstAsync(IRestorable restorable,
        SnapshotInfo snapshot, ArtifactInfo a, string key, List<ITarget> candidates, string destination, bool force,
        CancellationToken cancellationToken)
    {
        Sealed.RequireIdentities(a.FileName, Identities);
        var skipped = new List<string>();
        foreach (var t in candidates)
        {
            var spooling = System.Diagnostics.Stopwatch.GetTimestamp();
            var (spool, problem, proven) = await SpoolAsync(t, key, a, cancellationToken).ConfigureAwait(false);
            Timings?.AddFetch(System.Diagnostics.Stopwatch.GetTimestamp() - spooling);
            if (problem is not null)
            {
                Skip(skipped, snapshot, a, t, problem, proven);
                continue;
            }

            if (spool is null)
            {
                var check = await CopyVerifier.VerifyAsync(t, key, a.StoredBytes, a.Sha256, deep: true, validator: null, a.Facts, cancellationToken)
                    .ConfigureAwait(false);
                if (check.State != CopyState.Verified)
                {
                    Skip(skipped, snapshot, a, t, check.Error ?? $"copy on '{t.Name}' is {check.State.ToString().ToLowerInvariant()}", Proven(check.State));
                    continue;
                }
            }

            // The snapshot's shared blobs come from the same target as the artifact: a copy there is the artifact and its blobs.
            var blobs = restorable is IBlobRestorable shares && snapshot.Blobs.Count > 0 ? new BlobReader(t, snapshot, Identities) : null;
            if (restorable is IBlobRestorable user)
            {
                user.Blobs = blobs;
            }

            try
            {
                var stored = spool is null ? await t.OpenReadAsync(key, cancellationToken).ConfigureAwait(false) : File.OpenRead(spool);
                await using var hashed = new Streams.HashingReadStream(stored);
                var found = await ThroughPipelineAsync(hashed, a.FileName, a.RawBytes,
                    content => restorable.RestoreAsync(a.Name, content, destination, force, cancellationToken), cancellationToken).ConfigureAwait(false);
                if (!string.Equals(await hashed.FinishAsync(cancellationToken).ConfigureAwait(false), a.Sha256, StringComparison.Ordinal))
                {
                    throw new BackupException($"the copy of {a.FileName} on '{t.Name}' changed while it was being restored; restore again");
                }

                return (t.Name, skipped, found);
            }
            catch (Exception e) when (e is not OperationCanceledException && blobs?.Fault is { } fault)
            {
                // A blob of this copy failed (missing, unreadable, corrupt): what was restored is content-addressed and
                // checked by the destination, so the next target's copy goes on from there.
                if (fault.Proven is { } state)
                {
                    catalog.UpdateBlobCopy(snapshot.Source, fault.Blob.FileName, new CopyInfo(t.Name, state, DateTimeOffset.UtcNow, fault.Problem));
                }

                skipped.Add($"blob {fault.Blob.FileName}: {fault.Problem}");
            }
            finally
            {
                if (spool is not null)
                {
                    File.Delete(spool);
                }
            }
        }

        throw NoGoodCopy(snapshot, a, skipped, candidates.Count);
    }

    /// <summary>Names of spool files in the staging folder: <c>.backstop-spool-PID-xxxxxxxx-FILE</c>.</summary>
    internal const string SpoolPrefix = ".backstop-spool-";

    /// <summary>
    /// Reads the copy once into a spool file (0600) in the staging folder, hashing it: the spool's path when it is the
    /// stored bytes; a problem when the copy is missing, unreadable or another; neither when the staging has no room
    /// or refuses (the caller checks the copy whole and reads it again instead).
    /// </summary>
    private async Task<(string? Spool, string? Problem, CopyState? Proven)> SpoolAsync(ITarget t, string key, ArtifactInfo a, CancellationToken cancellationToken)
    {
        string path;
        try
        {
            FileSystem.PrivateFolder.Ensure(config.StagingPath); // adopted only when it is a folder of this user's own, never a link
            foreach (var old in Directory.EnumerateFiles(config.StagingPath, SpoolPrefix + "*").Where(f => FileSystem.Stale.OwnerIsGone(Path.GetFileName(f), SpoolPrefix)))
            {
                File.Delete(old); // left by a restore that was killed
            }

            if (FileSystem.DiskSpace.FreeBytes(config.StagingPath) < a.StoredBytes + (64L << 20))
            {
                _notes.Add($"staging {config.StagingPath} has no room for a {a.StoredBytes}-byte spool of {a.FileName}: the copy is checked whole, then read again");
                return (null, null, null);
            }

            path = Path.Combine(config.StagingPath, FileSystem.Stale.Name(SpoolPrefix) + "-" + a.FileName);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _notes.Add($"staging {config.StagingPath} cannot hold a spool ({e.Message}): the copy is checked whole, then read again");
            return (null, null, null);
        }

        var (read, unopened) = await CopyRead.OpenAsync(t, key, cancellationToken).ConfigureAwait(false);
        if (read is null)
        {
            return (null, unopened!.Problem, unopened.Missing ? CopyState.Missing : null);
        }

        try
        {
            string sha;
            long size;
            var stored = read.Stored;
            await using (read)
            await using (var file = new FileStream(path, new FileStreamOptions
                         {
                             Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 0, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                         }))
            {
                // Never more than the stored size and one byte: a longer object (the wrong one) must not fill the staging.
                var buffer = new byte[1 << 20];
                size = 0;
                int n;
                while (size <= a.StoredBytes && (n = await stored.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, a.StoredBytes + 1 - size)), cancellationToken)
                           .ConfigureAwait(false)) > 0)
                {
                    await file.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                    size += n;
                }

                if (size > a.StoredBytes)
                {
                    File.Delete(path);
                    return (null, $"{CopyRead.Where(t, key)} has more than the {a.StoredBytes} bytes stored", CopyState.Corrupt);
                }

                sha = await read.FinishAsync(cancellationToken).ConfigureAwait(false);
            }

            if (size == a.StoredBytes && string.Equals(sha, a.Sha256, StringComparison.Ordinal))
            {
                return (path, null, null);
            }

            File.Delete(path);
            return (null, size != a.StoredBytes
                ? $"{CopyRead.Where(t, key)} has {size} bytes, {a.StoredBytes} were stored"
                : $"copy on '{t.Name}' is corrupt: SHA-256 {sha}, recorded {a.Sha256}", CopyState.Corrupt);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or BackupException)
        {
            File.Delete(path);
            if (read.ReadFault is { } readError)
            {
                return (null, $"{CopyRead.Where(t, key)} could not be read: {readError.Message}", null);
            }

            // Writing the spool failed with the copy's reads clean: the staging's side (full, read-only).
            _notes.Add($"the spool in {config.StagingPath} failed ({e.Message}): the copy is checked whole, then read again");
            return (null, null, null);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Three stages on their own threads: read (and hash) the copy; decrypt and decompress; the source kind's writes.
    /// Every stored byte goes through <paramref name="stored"/>, also those after the content's end.
    /// </summary>
    /// <remarks>
    /// When the restore returned but what follows fails (bytes after the content that do not decode, a read error in
    /// the tail, a cancel), <paramref name="discard"/> undoes the result: a staging must not outlive its copy.
    /// </remarks>
    private async Task<T> ThroughPipelineAsync<T>(Stream stored, string fileName, long rawBytes, Func<Stream, Task<T>> restore, CancellationToken cancellationToken,
        Action<T>? discard = null)
    {
        T result = default!;
        var returned = false;
        try
        {
            var timings = Timings;
            await using (var hashed = new Streams.ReadAheadStream(timings?.Fetching(stored) ?? stored, asyncReads: true))
            {
                await using (var decoded = Sealed.Open(timings?.DecodeInput(hashed) ?? hashed, fileName, Identities))
                await using (var bounded = new Streams.BoundedReadStream(decoded, rawBytes, () => new DecodesTooLongException(
                                 $"{fileName} decodes to more than the {rawBytes} bytes its snapshot recorded: not the copy that was stored, and nothing more of it was written")))
                await using (var content = new Streams.ReadAheadStream(timings?.DecodeOutput(bounded) ?? bounded))
                {
                    var loading = System.Diagnostics.Stopwatch.GetTimestamp();
                    try
                    {
                        result = await restore(timings?.LoadInput(content) ?? content).ConfigureAwait(false);
                    }
                    finally
                    {
                        timings?.AddLoad(System.Diagnostics.Stopwatch.GetTimestamp() - loading);
                    }

                    returned = true;
                    await content.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false); // to the frame's end
                }

                await hashed.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
            }
        }
        catch when (returned && discard is not null)
        {
            discard(result);
            throw;
        }

        return result;
    }

    private NoGoodCopyException NoGoodCopy(SnapshotInfo snapshot, ArtifactInfo a, List<string> skipped, int tried)
    {
        var gone = a.Copies.Select(c => c.Target).Distinct(StringComparer.Ordinal).Where(n => config.Targets.All(t => t.Name != n)).ToList();
        if (gone.Count > 0)
        {
            skipped.Add($"copies on {string.Join(", ", gone.Select(n => $"'{n}'"))}, no longer in {config.File}, were not tried: add the target back to restore from it");
        }

        // Unrestorable only when every copy it has on a configured target was read and proven bad, not only those tried
        // (drill --target tries one): a copy not read, or not readable, may still be good.
        var proven = _findings.Where(f => f.Snapshot == snapshot.Id && f.Artifact == a.Name).Select(f => f.Copy.Target).ToHashSet(StringComparer.Ordinal);
        var held = a.Copies.Where(c => c.State != CopyState.Pruned && config.Targets.Any(t => t.Name == c.Target)).Select(c => c.Target).ToHashSet(StringComparer.Ordinal);
        return new($"no copy of {a.FileName} of snapshot {snapshot.Id} matches its SHA-256: {string.Join("; ", skipped)}", snapshot.Id,
            allProvenBad: gone.Count == 0 && tried > 0 && held.Count > 0 && held.IsSubsetOf(proven));
    }
}

/// <summary>
/// No copy of an artifact could be restored. <see cref="AllProvenBad"/>: every copy was read from a reachable target
/// and found corrupt or absent — the snapshot is unrestorable, and <c>latest</c> falls back past it; otherwise a
/// target could not be read, and trying again later may work.
/// </summary>
public sealed class NoGoodCopyException(string message, string snapshot, bool allProvenBad) : BackupException(message)
{
    public string Snapshot => snapshot;

    public bool AllProvenBad => allProvenBad;
}

/// <summary>A copy whose content decodes to more bytes than its snapshot recorded (a zstd bomb on a tampered target).</summary>
internal sealed class DecodesTooLongException(string message) : BackupException(message);
