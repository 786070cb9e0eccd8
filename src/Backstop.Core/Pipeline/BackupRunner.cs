using Backstop.Core.Catalog;
using Backstop.Core.Checks;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing;
using Backstop.Core.Util;

namespace Backstop.Core.Pipeline;

/// <summary>
/// One <c>run</c>: plan → preflight → capture → seal → ship → verify → commit → record, per source. A snapshot
/// counts only when every step proved it; any failure cleans what the run wrote and records the reason.
/// </summary>
public sealed class BackupRunner(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog, RunObserver observer)
{
    private readonly Dictionary<string, ITarget> _targets = config.Targets.ToDictionary(
        t => t.Name, t => plugins.Target(t.Kind)!.Create(t), StringComparer.Ordinal);

    /// <summary>Runs the named sources (all when empty). Returns one recorded snapshot per source.</summary>
    public async Task<IReadOnlyList<SnapshotInfo>> RunAsync(IReadOnlyCollection<string> only, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(only);
        var sources = config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)).ToList();
        foreach (var interrupted in catalog.FailInterrupted(DateTimeOffset.UtcNow))
        {
            observer.Notice($"snapshot {interrupted.Id} of '{interrupted.Source}' was interrupted by a run that died; recorded as failed");
        }

        CleanStaging();
        await RemoveOrphansAsync(cancellationToken).ConfigureAwait(false);

        var results = new List<SnapshotInfo>();
        foreach (var source in sources)
        {
            cancellationToken.ThrowIfCancellationRequested();
            results.Add(await RunSourceAsync(source, cancellationToken).ConfigureAwait(false));
        }

        return results;
    }

    private async Task<SnapshotInfo> RunSourceAsync(SourceDefinition def, CancellationToken ct)
    {
        var started = DateTimeOffset.UtcNow;
        var id = SnapshotId.New(started);
        var host = Environment.MachineName;
        catalog.BeginSnapshot(id, def.Name, def.Kind, started, host);
        observer.SourceStarted(def.Name, id);
        var targets = def.Targets.Select(n => _targets[n]).ToList();
        var staging = Path.Combine(config.StagingPath, id);
        var source = plugins.Source(def.Kind)!.Create(def);
        CaptureSink? sink = null;
        var manifestsWritten = new List<ITarget>();
        try
        {
            var preflight = await PreflightAsync(def, source, targets, ct).ConfigureAwait(false);
            Directory.CreateDirectory(staging);
            sink = new CaptureSink(def.Name, id, staging, targets, config.Compression, source, observer);
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

            var artifacts = sink.Results.ToList();
            var incomplete = sink.Writers.Where(w => w.Result is null).Select(w => w.Name).ToList();
            if (incomplete.Count > 0)
            {
                throw new BackupException($"artifact {string.Join(", ", incomplete)} was not completed by the '{def.Kind}' source");
            }

            var raw = artifacts.Sum(a => a.RawBytes);
            var facts = SumFacts(artifacts.Select(a => a.Facts));
            var history = ValidHistory(def);
            var findings = ExpectationChecker.Check(def.Expect, artifacts.Select(a => (a.Name, a.RawBytes)).ToList(), raw, facts, history);
            var failures = findings.Where(f => f.Severity == FindingSeverity.Fail).Select(f => f.Message).ToList();
            if (failures.Count > 0)
            {
                throw new BackupException("expectations not met: " + string.Join("; ", failures));
            }

            var warnings = sink.Warnings.Concat(findings.Select(f => "expectation: " + f.Message)).ToList();
            var good = GoodTargets(targets, artifacts);
            RequireCopies(def, targets, artifacts, good);

            var finished = DateTimeOffset.UtcNow;
            var tools = new Dictionary<string, string>(preflight.Tools) { ["zstd"] = "libzstd " + ZstdNative.Version() };
            var manifest = new Manifest(
                Manifest.CurrentFormat, id, new ManifestSource(def.Name, def.Kind), host, started, finished, tools, raw,
                artifacts.Sum(a => a.StoredBytes), facts, warnings,
                artifacts.Select(a => new ManifestArtifact(a.Name, a.FileName, a.RawBytes, a.StoredBytes, a.Sha256, "zstd", [],
                    a.Facts, source.RestoreRecipe(a.Name, a.FileName))).ToList());
            var manifestFailures = await WriteManifestsAsync(def, id, manifest, good, manifestsWritten, ct).ConfigureAwait(false);
            var copies = artifacts.Select(a => a with
            {
                Copies = a.Copies.Select(c => manifestFailures.TryGetValue(c.Target, out var why)
                    ? c with { State = CopyState.Failed, Error = why }
                    : c).ToList(),
            }).ToList();
            good = GoodTargets(targets, copies);
            RequireCopies(def, targets, copies, good);

            var snapshot = Record(def, id, started, host, SnapshotState.Committed, copies, warnings, null);
            observer.SourceFinished(snapshot);
            return snapshot;
        }
        catch (Exception e)
        {
            var reason = e switch
            {
                OperationCanceledException => "cancelled (SIGINT/SIGTERM) before the snapshot was proven; nothing of it was kept",
                BackupException or ConfigException => e.Message,
                _ => $"{e.GetType().Name}: {e.Message}",
            };
            await CleanupAsync(def, id, targets, manifestsWritten).ConfigureAwait(false);
            var partial = sink?.Results.ToList() ?? [];
            var snapshot = Record(def, id, started, host, SnapshotState.Failed, partial, sink?.Warnings ?? [], reason);
            catalog.AddEvent("error", def.Name, id, reason);
            observer.SourceFinished(snapshot);
            if (e is OperationCanceledException)
            {
                throw;
            }

            return snapshot;
        }
        finally
        {
            TryDeleteDirectory(staging);
        }
    }

    private async Task<SourcePreflight> PreflightAsync(SourceDefinition def, ISource source, List<ITarget> targets, CancellationToken ct)
    {
        var preflight = await source.PreflightAsync(ct).ConfigureAwait(false);
        foreach (var t in targets)
        {
            await t.ProbeAsync(ct).ConfigureAwait(false);
        }

        var last = catalog.Snapshots(def.Name).LastOrDefault(s => s.State == SnapshotState.Committed);
        var stagingFree = DiskSpace.FreeBytes(config.StagingPath);
        if (preflight.StagingBytesNeeded > 0 && stagingFree < preflight.StagingBytesNeeded)
        {
            throw new BackupException(
                $"staging {config.StagingPath} has {Quantities.FormatSize(stagingFree)} free, and the '{def.Kind}' source needs {Quantities.FormatSize(preflight.StagingBytesNeeded)} there; free space or set 'staging' to a larger file system");
        }

        if (last is not null)
        {
            var estimate = last.StoredBytes * 3 / 2;
            foreach (var t in targets.Where(t => t.Capabilities.FreeSpaceQuery))
            {
                if (await t.FreeBytesAsync(ct).ConfigureAwait(false) is { } free && free < estimate)
                {
                    throw new BackupException(
                        $"target '{t.Name}' has {Quantities.FormatSize(free)} free at {t.Where}; the last snapshot of '{def.Name}' stored {Quantities.FormatSize(last.StoredBytes)}, so about {Quantities.FormatSize(estimate)} (×1.5) is needed; free space or move the target");
                }
            }
        }

        return preflight;
    }

    private static List<string> GoodTargets(List<ITarget> targets, IReadOnlyList<ArtifactResult> artifacts) =>
        targets.Where(t => artifacts.Count > 0 && artifacts.All(a => a.Copies.Any(c => c.Target == t.Name && c.State == CopyState.Verified)))
            .Select(t => t.Name).ToList();

    private static void RequireCopies(SourceDefinition def, List<ITarget> targets, IReadOnlyList<ArtifactResult> artifacts, List<string> good)
    {
        if (good.Count >= def.MinCopies)
        {
            return;
        }

        var reasons = artifacts.SelectMany(a => a.Copies).Where(c => c.State != CopyState.Verified)
            .Select(c => c.Error ?? $"copy on '{c.Target}' is {c.State.ToString().ToLowerInvariant()}").Distinct().ToList();
        throw new BackupException(
            $"{good.Count} of {targets.Count} target(s) hold a verified copy, {def.MinCopies} needed: {string.Join("; ", reasons)}");
    }

    private async Task<Dictionary<string, string>> WriteManifestsAsync(SourceDefinition def, string id, Manifest manifest,
        List<string> good, List<ITarget> written, CancellationToken ct)
    {
        var failures = new Dictionary<string, string>(StringComparer.Ordinal);
        var bytes = manifest.ToBytes();
        var key = Layout.Key(def.Name, id, Layout.ManifestName);
        foreach (var name in good)
        {
            var t = _targets[name];
            try
            {
                await using (var upload = await t.BeginPutAsync(key, ct).ConfigureAwait(false))
                {
                    await upload.WriteAsync(bytes, ct).ConfigureAwait(false);
                    await upload.CommitAsync(ct).ConfigureAwait(false);
                }

                written.Add(t);
                var info = await t.StatAsync(key, ct).ConfigureAwait(false);
                if (info?.Size != bytes.Length)
                {
                    failures[name] = $"{Layout.ManifestName} on target '{name}' did not read back whole";
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failures[name] = CopyVerifier.Describe(t, key, e, null);
            }
        }

        return failures;
    }

    private SnapshotInfo Record(SourceDefinition def, string id, DateTimeOffset started, string host, SnapshotState state,
        IReadOnlyList<ArtifactResult> artifacts, IReadOnlyList<string> warnings, string? error)
    {
        var snapshot = new SnapshotInfo(
            id, def.Name, def.Kind, state, started, DateTimeOffset.UtcNow, host,
            artifacts.Sum(a => a.RawBytes), artifacts.Sum(a => a.StoredBytes), SumFacts(artifacts.Select(a => a.Facts)), warnings.ToList(), error,
            artifacts.Select(a => new ArtifactInfo(a.Name, a.FileName, a.RawBytes, a.StoredBytes, a.Sha256, "zstd", a.Facts,
                state == SnapshotState.Failed
                    ? a.Copies.Select(c => c.State == CopyState.Verified ? c with { State = CopyState.Failed, Error = "removed: the snapshot failed" } : c).ToList()
                    : a.Copies)).ToList());
        catalog.FinishSnapshot(snapshot);
        return snapshot;
    }

    private List<HistoryPoint> ValidHistory(SourceDefinition def) =>
        catalog.Snapshots(def.Name).Where(s => s.IsValid(def.MinCopies)).Select(s => new HistoryPoint(s.RawBytes, s.Facts)).ToList();

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
                observer.Notice($"could not remove {Layout.ManifestName} of failed snapshot {id} from '{t.Name}': {e.Message}");
            }
        }

        foreach (var t in targets)
        {
            await Orphans.DeleteFolderAsync(t, Layout.Folder(def.Name, id), observer).ConfigureAwait(false);
        }
    }

    private async Task RemoveOrphansAsync(CancellationToken ct)
    {
        foreach (var t in _targets.Values)
        {
            try
            {
                await t.ProbeAsync(ct).ConfigureAwait(false);
            }
            catch (BackupException)
            {
                continue; // the source using it fails its preflight with the reason
            }

            foreach (var folder in await Orphans.FindAsync(t, ct).ConfigureAwait(false))
            {
                await Orphans.DeleteFolderAsync(t, folder, observer).ConfigureAwait(false);
                observer.Notice($"removed {folder} from target '{t.Name}': a snapshot folder without {Layout.ManifestName} (left by an interrupted run)");
                catalog.AddEvent("warn", null, null, $"orphan {folder} removed from target '{t.Name}'");
            }
        }
    }

    private void CleanStaging()
    {
        if (!Directory.Exists(config.StagingPath))
        {
            return;
        }

        foreach (var d in Directory.EnumerateDirectories(config.StagingPath))
        {
            if (SnapshotId.IsValid(Path.GetFileName(d)))
            {
                TryDeleteDirectory(d);
                observer.Notice($"removed staging leftovers {d}");
            }
        }
    }

    private void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            observer.Notice($"could not remove staging {path}: {e.Message}");
        }
    }
}
