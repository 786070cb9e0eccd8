using Backstop.Core.Catalog;
using Backstop.Core.Checks;
using Backstop.Core.Config;
using Backstop.Core.Maintenance;
using Backstop.Core.Plugins;
using Backstop.Core.Restore;
using Backstop.Core.Sealing;
using Backstop.Core.Storage;
using Backstop.Core.FileSystem;
using Backstop.Core.Streams;
using Backstop.Core.Verify;

namespace Backstop.Core.Run;

/// <summary>
/// One <c>run</c>: plan → preflight → capture → seal → ship → verify → commit → record, per source. A snapshot
/// counts only when every step proved it; any failure cleans what the run wrote and records the reason.
/// </summary>
public sealed class BackupRunner
{
    private readonly BackstopConfig _config;
    private readonly PluginRegistry _plugins;
    private readonly CatalogStore _catalog;
    private readonly RunObserver _observer;
    private readonly Dictionary<string, ITarget> _targets;
    private readonly IReadOnlyList<Sealing.Age.AgeRecipient>? _recipients;

    /// <summary>This run accepts a fall to 0 or a shrink past <c>max_shrink</c> (<c>run --source NAME --accept-shrink</c>), recorded on the snapshot.</summary>
    public bool AcceptShrink { get; init; }

    /// <summary><c>run --full</c>: every incremental source starts a new chain.</summary>
    public bool Full { get; init; }

    public BackupRunner(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog, RunObserver observer)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(plugins);
        _config = config;
        _plugins = plugins;
        _catalog = catalog;
        _observer = new GuardedObserver(observer);
        _targets = config.Targets.ToDictionary(t => t.Name, t => GuardedTarget.Create(plugins, t), StringComparer.Ordinal);
        _recipients = Sealed.Recipients(config.Encryption);
    }

    /// <summary>Runs the named sources (all when empty). Returns one recorded snapshot per source.</summary>
    public async Task<IReadOnlyList<SnapshotInfo>> RunAsync(IReadOnlyCollection<string> only, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(only);
        var sources = _config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)).ToList();
        // A snapshot left running is failed unless this process runs it, or (on a shared catalog) another agent holds its source's lock.
        foreach (var interrupted in _catalog.FailInterrupted(DateTimeOffset.UtcNow,
                     s => InProcess.ContainsKey(s.Id) || (_catalog.IsShared && (_catalog.Locks is not { } locks || locks.HeldElsewhere(Locking.FleetLocks.SourceKey(s.Source))))))
        {
            _observer.Notice($"snapshot {interrupted.Id} of '{interrupted.Source}' was interrupted by a run that died; recorded as failed");
        }

        var sweeper = new Sweeper(_config, _catalog, _observer);
        sweeper.CleanStaging();
        await sweeper.RemoveOrphansAsync(_targets.Values, cancellationToken).ConfigureAwait(false);

        var results = new List<SnapshotInfo>();
        var healer = new Healer(_catalog, _targets, _observer);
        try
        {
            await RunSourcesAsync().ConfigureAwait(false);
        }
        finally
        {
            lock (_mine)
            {
                foreach (var id in _mine)
                {
                    InProcess.TryRemove(id, out _);
                }
            }
        }

        return results;

        async Task RunSourcesAsync()
        {
            foreach (var source in sources)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (ChainLacksTargets(source))
                {
                    // A level restores only where the levels below it are: a target that lost one (or missed it) gets it
                    // back from another first, so this level goes there too, and the chain goes on instead of a new full.
                    try
                    {
                        await healer.HealAsync(source, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is BackupException or IOException or ObjectNotFoundException)
                    {
                        _observer.Notice($"healing the chain of '{source.Name}' before its run stopped: {e.Message}");
                    }
                }

                var snapshot = await RunSourceAsync(source, cancellationToken).ConfigureAwait(false);
                _observer.SourceFinished(snapshot);
                results.Add(snapshot);

                // The new snapshot first (it is what the RPO needs), then copies missing from earlier ones.
                try
                {
                    await healer.HealAsync(source, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is BackupException or IOException or ObjectNotFoundException)
                {
                    _observer.Notice($"healing the copies of '{source.Name}' stopped: {e.Message}");
                }
            }
        }
    }

    /// <summary>Whether the snapshot the next level would build on is not verified on every target of the source.</summary>
    private bool ChainLacksTargets(SourceDefinition def) =>
        def.Incremental.Enabled && !Full
        && _catalog.RecentSnapshots(def.Name, 3).LastOrDefault(s => s.State == SnapshotState.Committed) is { Unrestorable: false } newest
        && def.Targets.Any(t => !newest.VerifiedTargets.Contains(t, StringComparer.Ordinal));

    private async Task<SnapshotInfo> RunSourceAsync(SourceDefinition def, CancellationToken ct)
    {
        var started = DateTimeOffset.UtcNow;
        var host = Environment.MachineName;
        var id = BeginSnapshot(def, started, host);
        _observer.SourceStarted(def.Name, id);
        var targets = def.Targets.Distinct(StringComparer.Ordinal).Select(n => _targets[n]).ToList();
        var staging = Path.Combine(_config.StagingPath, id);
        CaptureSink? sink = null;
        CaptureChain? chain = null;
        var unavailable = new Dictionary<string, string>(StringComparer.Ordinal);
        var manifestsWritten = new List<ITarget>();
        try
        {
            _catalog.Fence(def.Name, $"snapshot {id} of '{def.Name}'");
            var source = _plugins.Source(def.Kind)!.Create(def);
            var preflight = await PreflightAsync(def, source, targets, unavailable, ct).ConfigureAwait(false);
            var usable = targets.Where(t => !unavailable.ContainsKey(t.Name)).ToList();
            PrivateFolder.Ensure(_config.StagingPath); // adopted only when it is a folder of this user's own, never a link
            Directory.CreateDirectory(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            chain = PlanChain(def, id);
            sink = new CaptureSink(def.Name, id, staging, usable, _config.Compression, _recipients, source, _observer)
            {
                Chain = chain,
                SharedBlobs = new BlobStore(def.Name, id, usable, _config.Compression, _recipients, _catalog, reuse: !Full),
            };
            try
            {
                await source.CaptureAsync(sink, ct).ConfigureAwait(false);
            }
            finally
            {
                foreach (var w in sink.Writers)
                {
                    await w.DisposeAsync().ConfigureAwait(false);
                }
            }

            var incomplete = sink.Writers.Where(w => w.Result is null).Select(w => w.Name).ToList();
            if (incomplete.Count > 0)
            {
                throw new BackupException($"artifact {string.Join(", ", incomplete)} was not completed by the '{def.Kind}' source");
            }

            var artifacts = WithBlobs(WithUnavailable(sink.Results.ToList(), unavailable), sink.SharedBlobs!);
            if (sink.SharedBlobs is { } shared && shared.Sent + shared.Reused > 0)
            {
                _observer.Notice($"{def.Name}: {shared.Sent} shared blob(s) sent ({Quantities.FormatSize(shared.SentBytes)} stored), {shared.Reused} already verified on every target");
            }

            if (chain is not null)
            {
                artifacts = artifacts.Select(a => chain.IsIncremental(a.Name) ? a with { Level = chain.Level } : a).ToList();
                if (chain.Parent is { } parentId && artifacts.Any(a => a.Level > 0))
                {
                    // A level restores only where every level below it is verified: a copy elsewhere counts for nothing.
                    var below = _catalog.Snapshot(parentId)?.VerifiedTargets ?? [];
                    artifacts = artifacts.Select(a => a with
                    {
                        Copies = a.Copies.Select(c => c.State == CopyState.Verified && !below.Contains(c.Target, StringComparer.Ordinal)
                            ? c with { State = CopyState.Failed, Error = $"target '{c.Target}' holds no verified copy of the levels below this one ({parentId}): this level cannot restore there" }
                            : c).ToList(),
                    }).ToList();
                }
            }

            var raw = artifacts.Sum(a => a.RawBytes);
            var facts = SumFacts(artifacts.Select(a => a.Facts));
            var shapes = artifacts.Select(a => Shape(def, a.Name, a.RawBytes, a.Facts)).ToList();
            var shape = new SnapshotShape(id, shapes.Sum(a => a.Compared), facts, shapes);
            var (history, historyAccepted) = ValidHistory(def);
            var breaches = ExpectationChecker.Check(def.Expect, _plugins.Source(def.Kind)!.CountFacts, shape, history, AcceptShrink, historyAccepted, def.Name);
            var failures = breaches.Where(f => f.Severity == BreachSeverity.Fail).Select(f => f.Message).ToList();
            if (failures.Count > 0)
            {
                throw new BackupException("expectations not met: " + string.Join("; ", failures));
            }

            if (AcceptShrink && breaches.All(f => f.Severity != BreachSeverity.Accepted))
            {
                _observer.Notice($"{def.Name}: --accept-shrink given, but nothing shrank: nothing was accepted");
            }

            var warnings = sink.Warnings.Concat(breaches.Select(f => f.Severity == BreachSeverity.Accepted
                ? ExpectationChecker.AcceptedPrefix + f.Message + " (run --accept-shrink)"
                : "expectation: " + f.Message)).ToList();
            RequireCopies(def, targets, artifacts);

            var tools = new Dictionary<string, string>(preflight.Tools) { ["zstd"] = "libzstd " + ZstdNative.Version() };
            var chained = artifacts.Any(a => a.Level > 0);
            var manifest = new Manifest(
                Manifest.CurrentFormat, id, new ManifestSource(def.Name, def.Kind), host, started, DateTimeOffset.UtcNow, tools, raw,
                artifacts.Sum(a => a.StoredBytes), facts, warnings,
                artifacts.Select(a => new ManifestArtifact(a.Name, a.FileName, a.RawBytes, a.StoredBytes, a.Sha256, "zstd",
                    _recipients?.Select(r => r.Describe).ToList() ?? [], a.Facts, StockRecipe.Recipe(source, a.Name, a.FileName, _config.Encryption?.Passphrase is not null),
                    a.Reported) { Level = a.Level > 0 ? a.Level : null, Blobs = a.Blobs.Count > 0 ? a.Blobs : null }).ToList())
            {
                Parent = chained ? chain!.Parent : null,
                Level = chained ? chain!.Level : null,
            };
            _catalog.Fence(def.Name, $"snapshot {id} of '{def.Name}' (its manifests, which commit it on the targets)");
            var manifestFailures = await WriteManifestsAsync(def, id, manifest, GoodTargets(targets, artifacts), manifestsWritten, ct)
                .ConfigureAwait(false);
            artifacts = artifacts.Select(a => a with
            {
                Copies = a.Copies.Select(c => manifestFailures.TryGetValue(c.Target, out var why)
                    ? c with { State = CopyState.Failed, Error = why }
                    : c).ToList(),
            }).ToList();
            var good = RequireCopies(def, targets, artifacts);

            // A target that did not get the whole snapshot keeps none of it.
            foreach (var t in targets.Where(t => !good.Contains(t.Name)))
            {
                await Orphans.DeleteFolderAsync(t, Layout.Folder(def.Name, id), _observer).ConfigureAwait(false);
            }

            var committed = Record(def, id, started, host, SnapshotState.Committed, artifacts, warnings, null, manifest.FinishedAt,
                chained ? chain!.Parent : null, chained ? chain!.Level : 0);
            Housekeep(def, () => chain?.Keep()); // this snapshot's listings are the next level's parent; older ones go
            return committed;
        }
        catch (Exception e)
        {
            var reason = e switch
            {
                OperationCanceledException => "cancelled (SIGINT/SIGTERM) before the snapshot was proven; nothing of it was kept",
                BackupException or ConfigException => e.Message,
                System.Data.Common.DbException when e.Message.Contains("disk is full", StringComparison.OrdinalIgnoreCase) =>
                    $"the catalog's disk is full ({e.Message}); free space where the catalog is and run again",
                IOException when DiskSpace.IsDiskFull(e) && e.Message.Contains(Path.TrimEndingDirectorySeparator(_config.StagingPath) + "/", StringComparison.Ordinal) =>
                    $"staging {_config.StagingPath} is full: no space left on device while the source was captured there; free space or set 'staging' to a larger file system",
                IOException when e.Message.Contains(Path.TrimEndingDirectorySeparator(_config.StagingPath) + "/", StringComparison.Ordinal) =>
                    $"staging {_config.StagingPath} failed: {e.Message}; check that disk",
                IOException when DiskSpace.IsDiskFull(e) && e.Message.Contains(Path.GetDirectoryName(Path.GetFullPath(_config.CatalogPath)) + "/", StringComparison.Ordinal) =>
                    $"the disk of the catalog's folder is full ({e.Message}); free space there and run again",
                _ => $"{e.GetType().Name}: {e.Message}",
            };
            await CleanupAsync(def, id, targets, manifestsWritten).ConfigureAwait(false);
            Housekeep(def, () => chain?.Discard());
            var partial = WithUnavailable(sink?.Results.ToList() ?? [], unavailable);
            SnapshotInfo snapshot;
            try
            {
                snapshot = Record(def, id, started, host, SnapshotState.Failed, partial, sink?.Warnings ?? [], reason);
                _catalog.AddEvent("error", def.Name, id, reason);
            }
            catch (Exception recording) when (recording is BackupException or System.Data.Common.DbException)
            {
                // The catalog itself went (a restarted server): the failure is said with its own reason, not only the catalog's.
                throw new BackupException($"snapshot {id} of '{def.Name}' failed: {reason}; and the failure could not be recorded: {recording.Message}", recording);
            }

            if (e is OperationCanceledException)
            {
                _observer.SourceFinished(snapshot);
                throw;
            }

            return snapshot;
        }
        finally
        {
            Sweeper.TryDeleteDirectory(staging, _observer);
        }
    }

    /// <summary>
    /// The snapshots this process is running now (serve runs several sources at once, each with a runner of its own):
    /// another runner's start-up never takes them for the leftovers of a run that died.
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> InProcess = new(StringComparer.Ordinal);

    private readonly List<string> _mine = [];

    /// <summary>A new snapshot id, recorded as running; a clash with an existing id (same second) draws again.</summary>
    private string BeginSnapshot(SourceDefinition def, DateTimeOffset started, string host)
    {
        for (var attempt = 0; ; attempt++)
        {
            var id = SnapshotId.New(started);
            InProcess.TryAdd(id, 0); // before the catalog has it: another runner's sweep may look at any moment
            if (_catalog.TryBeginSnapshot(id, def.Name, def.Kind, started, host, def.Machine) || attempt == 20)
            {
                lock (_mine)
                {
                    _mine.Add(id);
                }

                return id;
            }

            InProcess.TryRemove(id, out _);
        }
    }

    /// <summary>
    /// The source must be ready; each target must answer and have room. A target that is not ready fails only its
    /// copy, as long as enough targets remain for <c>min_copies</c>.
    /// </summary>
    private async Task<SourcePreflight> PreflightAsync(SourceDefinition def, ISource source, List<ITarget> targets,
        Dictionary<string, string> unavailable, CancellationToken ct)
    {
        ZstdNative.Version(); // libzstd present, or a clear message
        var preflight = await source.PreflightAsync(ct).ConfigureAwait(false);
        var stagingFree = DiskSpace.FreeBytes(_config.StagingPath);
        if (preflight.StagingBytesNeeded > 0 && stagingFree < preflight.StagingBytesNeeded)
        {
            throw new BackupException(
                $"staging {_config.StagingPath} has {Quantities.FormatSize(stagingFree)} free, and the '{def.Kind}' source needs {Quantities.FormatSize(preflight.StagingBytesNeeded)} there; free space or set 'staging' to a larger file system");
        }

        var last = _catalog.Snapshots(def.Name).LastOrDefault(s => s.State == SnapshotState.Committed);
        var estimate = (last?.StoredBytes ?? 0) * 3 / 2;
        foreach (var t in targets)
        {
            try
            {
                await t.ProbeAsync(ct).ConfigureAwait(false);
                if (estimate > 0 && t.Capabilities.FreeSpaceQuery && await t.FreeBytesAsync(ct).ConfigureAwait(false) is { } free && free < estimate)
                {
                    unavailable[t.Name] =
                        $"target '{t.Name}' has {Quantities.FormatSize(free)} free at {t.Where}; the last snapshot of '{def.Name}' stored {Quantities.FormatSize(last!.StoredBytes)}, so about {Quantities.FormatSize(estimate)} (×1.5) is needed; free space or move the target";
                }
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                unavailable[t.Name] = e is BackupException ? e.Message : $"target '{t.Name}': {e.Message}";
            }
        }

        if (targets.Count - unavailable.Count < def.MinCopies)
        {
            throw new BackupException(string.Join("; ", unavailable.Values) +
                                      (targets.Count > 1 ? $" ({targets.Count - unavailable.Count} of {targets.Count} targets ready, {def.MinCopies} needed)" : ""));
        }

        return preflight;
    }

    private static List<ArtifactResult> WithUnavailable(List<ArtifactResult> artifacts, Dictionary<string, string> unavailable) =>
        unavailable.Count == 0
            ? artifacts
            : artifacts.Select(a => a with
            {
                Copies = a.Copies.Concat(unavailable.Select(u => new CopyInfo(u.Key, CopyState.Failed, DateTimeOffset.UtcNow, u.Value))).ToList(),
            }).ToList();

    /// <summary>
    /// Each artifact with the shared blobs it needs; a target that did not take one of them holds no usable copy of the
    /// snapshot, so every artifact's copy there fails with that reason.
    /// </summary>
    private static List<ArtifactResult> WithBlobs(List<ArtifactResult> artifacts, BlobStore blobs)
    {
        var failures = blobs.Failures;
        if (blobs.Sent + blobs.Reused > 0)
        {
            artifacts = artifacts.Select(a => a with { Blobs = blobs.Of(a.Name) }).ToList();
        }

        return failures.Count == 0
            ? artifacts
            : artifacts.Select(a => a with
            {
                Copies = a.Copies.Select(c => c.State == CopyState.Verified && failures.TryGetValue(c.Target, out var why) ? c with { State = CopyState.Failed, Error = why } : c).ToList(),
            }).ToList();
    }

    private static HashSet<string> GoodTargets(List<ITarget> targets, IReadOnlyList<ArtifactResult> artifacts) =>
        targets.Where(t => artifacts.Count > 0 && artifacts.All(a => a.Copies.Any(c => c.Target == t.Name && c.State == CopyState.Verified)))
            .Select(t => t.Name).ToHashSet(StringComparer.Ordinal);

    private static HashSet<string> RequireCopies(SourceDefinition def, List<ITarget> targets, IReadOnlyList<ArtifactResult> artifacts)
    {
        var good = GoodTargets(targets, artifacts);
        if (good.Count >= def.MinCopies)
        {
            return good;
        }

        var reasons = artifacts.SelectMany(a => a.Copies).Where(c => c.State != CopyState.Verified)
            .Select(c => c.Error ?? $"copy on '{c.Target}' is {c.State.ToString().ToLowerInvariant()}").Distinct().ToList();
        throw new BackupException(
            $"{good.Count} of {targets.Count} target(s) hold a verified copy, {def.MinCopies} needed: {string.Join("; ", reasons)}");
    }

    /// <summary>Writes the manifest last on each good target, and reads it back whole.</summary>
    private async Task<Dictionary<string, string>> WriteManifestsAsync(SourceDefinition def, string id, Manifest manifest,
        HashSet<string> good, List<ITarget> written, CancellationToken ct)
    {
        var failures = new Dictionary<string, string>(StringComparer.Ordinal);
        var bytes = manifest.ToBytes();
        var key = Layout.Key(def.Name, id, Layout.ManifestName);
        foreach (var name in good.Order(StringComparer.Ordinal))
        {
            var t = _targets[name];
            try
            {
                written.Add(t);
                await using (var upload = await t.BeginPutAsync(key, ct).ConfigureAwait(false))
                {
                    await upload.WriteAsync(bytes, ct).ConfigureAwait(false);
                    await upload.CommitAsync(ct).ConfigureAwait(false);
                }

                await using var back = await t.OpenReadAsync(key, ct).ConfigureAwait(false);
                var read = new MemoryStream();
                await back.CopyToAsync(read, ct).ConfigureAwait(false);
                if (!read.ToArray().AsSpan().SequenceEqual(bytes))
                {
                    failures[name] = $"{Layout.ManifestName} on target '{name}' did not read back as written";
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failures[name] = CopyVerifier.Describe(t, key, e, null);
            }
        }

        return failures;
    }

    /// <summary>Records the outcome; a committed snapshot finishes when its manifest says (so a rebuilt catalog says the same).</summary>
    private SnapshotInfo Record(SourceDefinition def, string id, DateTimeOffset started, string host, SnapshotState state,
        IReadOnlyList<ArtifactResult> artifacts, IReadOnlyList<string> warnings, string? error, DateTimeOffset? finished = null, string? parent = null, int level = 0)
    {
        var snapshot = new SnapshotInfo(
            id, def.Name, def.Kind, state, started, finished ?? DateTimeOffset.UtcNow, host,
            artifacts.Sum(a => a.RawBytes), artifacts.Sum(a => a.StoredBytes), SumFacts(artifacts.Select(a => a.Facts)), warnings.ToList(), error,
            artifacts.Select(a => new ArtifactInfo(a.Name, a.FileName, a.RawBytes, a.StoredBytes, a.Sha256, "zstd", a.Facts,
                state == SnapshotState.Failed
                    ? a.Copies.Select(c => c.State == CopyState.Verified ? c with { State = CopyState.Failed, Error = "removed: the snapshot failed" } : c).ToList()
                    : a.Copies) { Reported = a.Reported, Level = a.Level }).ToList()) { Parent = parent, Level = level };
        if (parent is not null && _catalog.Snapshot(parent) is { } below)
        {
            snapshot = snapshot with { Ancestors = [below, .. below.Ancestors] }; // a level is valid only with the levels under it
        }

        _catalog.FinishSnapshot(snapshot, snapshot.IsValid(def.MinCopies) ? "valid" : "failed");
        return snapshot with { Blobs = _catalog.Snapshot(id)?.Blobs ?? [] };
    }

    /// <summary>
    /// The listing cache's upkeep after a snapshot is decided: a failure there is said, and never changes the snapshot's
    /// outcome (a committed snapshot stays committed; a failed one keeps its own reason).
    /// </summary>
    private void Housekeep(SourceDefinition def, Action upkeep)
    {
        try
        {
            upkeep();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _observer.Notice($"{def.Name}: the listing cache under {def.StateDirectory} was not tidied ({e.Message}); the next run tries again");
        }
    }

    /// <summary>
    /// Where this snapshot stands in its source's chain: level 0 (a full) for a kind that stores changes on its first
    /// snapshot, after <c>run --full</c>, when the chain's full is older than <c>full_every</c> or the chain has
    /// <c>max_chain</c> levels, or when the newest snapshot is not restorable from <c>min_copies</c> of the source's
    /// targets; else one level above the newest committed snapshot. Null: every snapshot full.
    /// </summary>
    private CaptureChain? PlanChain(SourceDefinition def, string id)
    {
        if (!def.Incremental.Enabled)
        {
            return null;
        }

        var cache = Path.Combine(def.StateDirectory, "listings");
        var parent = _catalog.Snapshots(def.Name).LastOrDefault(s => s.State == SnapshotState.Committed && s.Id != id);
        string? why = null;
        if (Full)
        {
            why = "run --full";
        }
        else if (parent is null)
        {
            why = "the source's first snapshot";
        }
        else if (parent.Unrestorable || parent.VerifiedTargets.Count(def.Targets.Contains) < def.MinCopies)
        {
            why = $"the newest snapshot {parent.Id} restores from {parent.VerifiedTargets.Count(def.Targets.Contains)} of its targets, and min_copies is {def.MinCopies}";
        }
        else if (parent.Level + 1 > def.Incremental.MaxChain)
        {
            why = $"the chain has {parent.Level} levels above its full (incremental.max_chain: {def.Incremental.MaxChain})";
        }
        else if (DateTimeOffset.UtcNow - (parent.Ancestors.LastOrDefault() ?? parent).StartedAt >= def.Incremental.FullEvery)
        {
            why = $"the chain's full is older than incremental.full_every ({Quantities.FormatDuration(def.Incremental.FullEvery)})";
        }

        if (why is not null)
        {
            if (parent is not null)
            {
                _observer.Notice($"{def.Name}: a full snapshot (level 0): {why}");
            }

            return new CaptureChain(cache, id, null, 0);
        }

        return new CaptureChain(cache, id, parent!.Id, parent.Level + 1, (name, path, ct) => FetchListingAsync(def, parent, name, path, ct));
    }

    /// <summary>
    /// The parent's listing artifact read from the first target that holds a verified copy, decrypted and decompressed
    /// into <paramref name="path"/>, kept only when the stored bytes hash to the manifest's SHA-256. A listing that
    /// cannot be had (no identity on this machine for an encrypted one, every copy unreadable) is said, and the caller
    /// stores its artifact whole.
    /// </summary>
    private async Task<bool> FetchListingAsync(SourceDefinition def, SnapshotInfo parent, string name, string path, CancellationToken ct)
    {
        if (parent.Artifacts.FirstOrDefault(a => a.Name == name) is not { } a)
        {
            return false;
        }

        var identities = Sealed.Identities(_config.Encryption);
        if (Sealed.IsEncrypted(a.FileName) && identities.Count == 0)
        {
            _observer.Notice($"{def.Name}: the listing of {parent.Id} is not on this machine, and it is encrypted with no identity here to read it from a target: {name} is stored whole");
            return false;
        }

        var problems = new List<string>();
        foreach (var copy in a.Copies.Where(c => c.State == CopyState.Verified && _targets.ContainsKey(c.Target)))
        {
            var temp = path + ".part";
            try
            {
                File.Delete(temp); // left by a killed run; CreateNew below never follows a name planted in its place
                await using (var stored = await _targets[copy.Target].OpenReadAsync(Layout.Key(def.Name, parent.Id, a.FileName), ct).ConfigureAwait(false))
                await using (var hashed = new HashingReadStream(stored))
                {
                    // Bounded by the size the snapshot recorded: a tampered copy is never decoded past it into this disk.
                    await using (var content = new BoundedReadStream(Sealed.Open(hashed, a.FileName, identities), a.RawBytes,
                                     () => new BackupException($"{a.FileName} on '{copy.Target}' decodes to more than the {a.RawBytes} bytes recorded")))
                    await using (var file = new FileStream(temp, new FileStreamOptions
                                 {
                                     Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                                 }))
                    {
                        await content.CopyToAsync(file, ct).ConfigureAwait(false);
                    }

                    if (await hashed.FinishAsync(ct).ConfigureAwait(false) != a.Sha256)
                    {
                        problems.Add($"the copy on '{copy.Target}' does not match its SHA-256");
                        continue;
                    }
                }

                File.Move(temp, path, overwrite: true);
                _observer.Notice($"{def.Name}: the listing of {parent.Id} was read from '{copy.Target}' (it was not on this machine)");
                return true;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                problems.Add($"'{copy.Target}': {e.Message}");
            }
            finally
            {
                File.Delete(temp);
            }
        }

        _observer.Notice($"{def.Name}: the listing of {parent.Id} is not on this machine and no copy could be read ({string.Join("; ", problems)}): {name} is stored whole");
        return false;
    }

    /// <summary>
    /// What the expectations compare for an artifact: for a kind that stores changes, the bytes of the whole tree (its
    /// <c>bytes</c> fact), never the bytes of a level, which a quiet night makes small.
    /// </summary>
    private static ArtifactShape Shape(SourceDefinition def, string name, long raw, IReadOnlyDictionary<string, long> facts) =>
        new(name, raw, facts) { Compared = def.Incremental.Enabled && facts.TryGetValue("bytes", out var tree) ? tree : raw };

    /// <summary>Valid snapshots, oldest first, from the newest one whose shrink was accepted (history restarts there).</summary>
    private (List<SnapshotShape> History, bool Accepted) ValidHistory(SourceDefinition def)
    {
        var valid = _catalog.Snapshots(def.Name).Where(s => s.IsValid(def.MinCopies)).ToList();
        var restart = valid.FindLastIndex(s => s.Warnings.Any(w => w.StartsWith(ExpectationChecker.AcceptedPrefix, StringComparison.Ordinal)));
        return (valid.Skip(Math.Max(restart, 0)).Select(s =>
        {
            var shapes = s.Artifacts.Select(a => Shape(def, a.Name, a.RawBytes, a.Facts)).ToList();
            return new SnapshotShape(s.Id, shapes.Sum(a => a.Compared), s.Facts, shapes);
        }).ToList(), restart >= 0);
    }

    private static Dictionary<string, long> SumFacts(IEnumerable<IReadOnlyDictionary<string, long>> all)
    {
        var sum = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var facts in all)
        {
            foreach (var (k, v) in facts)
            {
                sum[k] = sum.GetValueOrDefault(k) + v;
            }
        }

        return sum;
    }

    /// <summary>Removes everything this run wrote for a failed snapshot, manifests first so nothing half-done looks committed.</summary>
    private async Task CleanupAsync(SourceDefinition def, string id, List<ITarget> targets, List<ITarget> manifestsWritten)
    {
        foreach (var t in manifestsWritten)
        {
            try
            {
                await t.DeleteAsync(Layout.Key(def.Name, id, Layout.ManifestName), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or BackupException)
            {
                _observer.Notice($"could not remove {Layout.ManifestName} of failed snapshot {id} from '{t.Name}': {e.Message}");
            }
        }

        foreach (var t in targets)
        {
            await Orphans.DeleteFolderAsync(t, Layout.Folder(def.Name, id), _observer).ConfigureAwait(false);
        }
    }
}
