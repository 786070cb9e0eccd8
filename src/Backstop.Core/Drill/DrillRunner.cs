using System.Diagnostics;
using System.Globalization;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Restore;
using Backstop.Core.Sealing;

namespace Backstop.Core.Drill;

/// <summary>
/// <c>drill</c>: for each source, restores a snapshot into a scratch place the source kind sets up (a folder, a
/// throwaway server, a scratch database), through the same path as <c>restore</c>; compares the facts found with
/// the snapshot's; runs the kind's checks (integrity, keys in a live server, smoke queries, a spot check); times it
/// (the measured RTO); always removes the scratch place; records the drill in the catalog and leaves an evidence file.
/// </summary>
public sealed class DrillRunner(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog)
{
    /// <summary>Scratch folders in the staging folder: <c>.backstop-drill-PID-xxxxxxxx</c>.</summary>
    public const string ScratchPrefix = ".backstop-drill-";

    /// <summary>Identity files given on the command line (<c>--identity</c>), besides the configuration's.</summary>
    public IReadOnlyList<string> ExtraIdentityFiles { get; init; } = [];

    /// <summary>Progress lines ("restoring…", "checking…"); null for none.</summary>
    public Action<string>? Progress { get; init; }

    /// <summary>For tests: called once the scratch place is set up and the restore is about to start.</summary>
    public Func<string, Task>? AfterSetup { get; init; }

    /// <summary>Folder of the evidence files: <c>drills/</c> beside the catalog.</summary>
    public string EvidenceFolder => Path.Combine(Path.GetDirectoryName(config.CatalogPath)!, "drills");

    /// <summary>Drills each source (all, or those named) once; a source that cannot be drilled is a failed drill, said why.</summary>
    /// <summary><c>drill --target NAME</c>: restore from that target's copy only; by default drills rotate over a source's targets.</summary>
    public string? Target { get; init; }

    /// <summary>False: the caller has swept what killed drills left (a rehearsal, before its restores run at once).</summary>
    public bool Sweep { get; init; } = true;

    public async Task<IReadOnlyList<DrillResult>> RunAsync(IReadOnlyCollection<string> only, string? snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(only);
        var notes = Sweep ? await DrillSweeper.SweepAsync(config, plugins, cancellationToken).ConfigureAwait(false) : [];
        foreach (var note in notes)
        {
            Progress?.Invoke(note);
        }

        var results = new List<DrillResult>();
        foreach (var def in config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)))
        {
            var findings = new List<(string, string, CopyInfo)>();
            var result = await DrillAsync(def, snapshot, findings, cancellationToken).ConfigureAwait(false);
            if (result.Unrestorable is { } dead && snapshot is null or "latest")
            {
                // latest falls back past a snapshot whose every copy was proven bad, as restore does; the drill still
                // fails, for the newest backup is broken. The findings are recorded first, so that latest passes over it.
                catalog.RecordFindings(findings, () => catalog.AddEvent("error", def.Name, dead, $"drill: snapshot {dead} is unrestorable: {result.Error}"));
                findings.Clear();
                var fallback = await DrillAsync(def, "latest", findings, cancellationToken).ConfigureAwait(false);
                result = fallback with
                {
                    Passed = false,
                    Error = $"the newest snapshot {dead} is unrestorable ({result.Error}); " + (fallback.Passed
                        ? $"the newest restorable one, {fallback.Snapshot}, restored and passed its checks in {Seconds(fallback.Seconds)}"
                        : $"the newest restorable one, {fallback.Snapshot ?? "(none)"}, failed too: {fallback.Error}"),
                    Notes = [$"drilled {fallback.Snapshot ?? "nothing"} in place of the newest snapshot {dead}, whose every copy is bad", .. fallback.Notes],
                };
            }
            else if (result.PassedOver is [.., var newest] && snapshot is null or "latest")
            {
                // latest already passed over newer snapshots with no good copy: what was drilled is not the newest backup.
                result = result with
                {
                    Passed = false,
                    Error = $"the newest snapshot {newest} {(catalog.Snapshot(newest) is { Unrestorable: true } ? "is unrestorable" : "has no good copy to restore")} " +
                            "(see 'backstop list'); " + (result.Passed
                        ? $"the newest restorable one, {result.Snapshot}, restored and passed its checks in {Seconds(result.Seconds)}"
                        : $"the newest restorable one, {result.Snapshot}, failed too: {result.Error}"),
                };
            }

            results.Add(Record(def, result, findings));
        }

        return results;
    }

    private async Task<DrillResult> DrillAsync(SourceDefinition def, string? snapshotChoice, List<(string, string, CopyInfo)> findings,
        CancellationToken cancellationToken)
    {
        var at = DateTimeOffset.UtcNow;
        var rto = def.Drill.Rto is { } r ? (long)r.TotalSeconds : (long?)null;
        var phases = new Dictionary<string, double>(StringComparer.Ordinal);
        var checks = new List<DrillCheck>();
        var notes = new List<string>();
        var copies = new List<DrillCopy>();
        SnapshotInfo? snapshot = null;
        string? scratchDescription = null;
        IReadOnlyDictionary<string, string> tools = new Dictionary<string, string>();
        double seconds = 0;

        NoGoodCopyException? dead = null;
        Restorer? restoring = null;
        DrillResult Result(string? error)
        {
            findings.AddRange(restoring?.Findings ?? []);
            var passed = error is null && checks.All(c => c.Passed);
            bool? met = rto is { } o && (error is null || seconds > o) ? seconds <= o : null;
            if (met == false && passed)
            {
                passed = false;
            }

            return new DrillResult(def.Name, def.Kind, snapshot?.Id, at, passed, Math.Round(seconds, 3), rto, met, phases, checks,
                error ?? (met == false ? $"the restore took {Seconds(seconds)}, more than the rto of {Quantities.FormatDuration(TimeSpan.FromSeconds(rto!.Value))}" : null)
                ?? (checks.FirstOrDefault(c => !c.Passed) is { } bad ? $"check '{bad.Name}' failed: expected {bad.Expected}, found {bad.Found}" : null))
            {
                Scratch = scratchDescription,
                Copies = copies,
                Notes = notes,
                Tools = tools,
                Unrestorable = dead?.Snapshot,
                PassedOver = restoring?.PassedOver ?? [],
            };
        }

        // A source restored to points of its archive is drilled to one: a recovery marker of the window chosen at random
        // (the end of the archive when there is none), from the newest base snapshot before it.
        var source = plugins.Source(def.Kind)!.Create(def);
        var toPoint = source.Capability<IPointInTimeRestorable>() is { RestoresToPoints: true } && def.Archive is not null;
        var (point, marker) = toPoint ? PickPoint(def, snapshotChoice, notes) : (null, null);
        var restorer = new Restorer(config, plugins, catalog) { ExtraIdentityFiles = ExtraIdentityFiles, Timings = new RestoreTimings(), Point = point };
        restoring = restorer;
        try
        {
            snapshot = toPoint && snapshotChoice is null or "latest" or "random" ? restorer.FindSnapshotAt(def, point!) : Choose(def, restorer, snapshotChoice);
            notes.AddRange(restorer.Notes);
            if (Target is { } named)
            {
                if (!def.Targets.Contains(named))
                {
                    return Result($"--target {named}: source '{def.Name}' stores no copy there (its targets: {string.Join(", ", def.Targets)})");
                }

                (restorer.PreferredTarget, restorer.OnlyPreferredTarget) = (named, true);
            }
            else
            {
                restorer.PreferredTarget = NextTarget(def, snapshot);
            }
        }
        catch (Exception e) when (e is BackupException or ConfigException)
        {
            return Result(e.Message);
        }

        if (source.Capability<IDrillable>() is not { } drillable)
        {
            return Result($"'{def.Kind}' sources cannot be drilled");
        }

        if (snapshot.Artifacts.Any(a => Sealed.IsEncrypted(a.FileName)) && config.Encryption?.Identities.Count is null or 0
                                                                        && config.Encryption?.Passphrase is null && ExtraIdentityFiles.Count == 0)
        {
            return Result($"the key is not on this host: snapshot {snapshot.Id} is encrypted and no identity is configured (encryption.identities) " +
                          "or given (--identity); a restore here would fail the same way. Put the identity file where the drill runs, or drill with --identity FILE");
        }

        var folder = CreateScratchFolder(def);
        var token = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6));
        var artifacts = snapshot.Artifacts.Select(a => new DrillArtifact(a.Name, a.Facts, a.Reported)).ToList();
        var scope = new DrillScope(folder, token, snapshot.Id, snapshot.StartedAt, artifacts, notes.Add,
            (artifact, bytes, ct) => PeekAsync(snapshot, artifact, bytes, ct)) { Point = point, Marker = marker };
        IDrillScratch? scratch = null;
        string? error = null;
        var clock = Stopwatch.StartNew();
        try
        {
            Progress?.Invoke($"{def.Name}: setting up the scratch place for snapshot {snapshot.Id}");
            scratch = await drillable.OpenScratchAsync(scope, cancellationToken).ConfigureAwait(false);
            phases["setup"] = Round(clock.Elapsed);
            scratchDescription = scratch.Description;
            tools = new Dictionary<string, string>(scratch.Tools) { ["backstop"] = BackstopVersion };
            if (AfterSetup is not null)
            {
                await AfterSetup(folder).ConfigureAwait(false);
            }

            var started = Stopwatch.GetTimestamp();
            foreach (var name in scratch.Order(snapshot.Artifacts.Select(a => a.Name).Where(n => source.Capability<IRestorable>()?.Restores(n) != false).ToList()))
            {
                Progress?.Invoke($"{def.Name}: restoring {name} into {scratch.Description}");
                var said = restorer.Notes.Count;
                var restored = (await restorer.RestoreAsync(def, snapshot, name, scratch.Destination(name), force: false, cancellationToken).ConfigureAwait(false)).Single();
                notes.AddRange(restorer.Notes.Skip(said));
                copies.Add(new DrillCopy(restored.Artifact, restored.Target, restored.SkippedCopies));
                var artifact = snapshot.Artifacts.Single(a => a.Name == name);
                checks.AddRange(CompareFacts(artifact, restored, notes));
            }

            var timings = restorer.Timings!;
            var loading = Stopwatch.GetTimestamp();
            await scratch.LoadAsync(cancellationToken).ConfigureAwait(false);
            var loaded = Stopwatch.GetElapsedTime(loading);
            Progress?.Invoke($"{def.Name}: checking what was restored");
            var checking = Stopwatch.GetTimestamp();
            checks.AddRange(await scratch.CheckAsync(cancellationToken).ConfigureAwait(false));
            phases["checks"] = Round(Stopwatch.GetElapsedTime(checking));
            phases["fetch_and_hash"] = Round(timings.FetchAndHash);
            phases["decrypt_and_decompress"] = Round(timings.DecryptAndDecompress);
            phases["load"] = Round(timings.Load + loaded);
            seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            error = e is BackupException or ConfigException or IOException or UnauthorizedAccessException or OperationCanceledException
                ? e.Message
                : $"{e.Message} ({e.GetType().Name})";
            dead = e as NoGoodCopyException is { AllProvenBad: true } proven ? proven : null;
            notes.AddRange(restorer.Notes.Where(n => !notes.Contains(n)));
        }
        finally
        {
            // Always, also on Ctrl-C: the scratch servers stop, scratch databases are dropped, the folder goes.
            var removing = Stopwatch.GetTimestamp();
            var leftover = await RemoveAsync(scratch, folder).ConfigureAwait(false);
            phases["teardown"] = Round(Stopwatch.GetElapsedTime(removing));
            if (leftover is not null)
            {
                error = error is null ? leftover : $"{error}; {leftover}";
            }
        }

        return Result(error);
    }

    /// <summary>The first bytes of an artifact's content from the first copy that can be read (see <see cref="DrillScope.PeekAsync"/>).</summary>
    private async Task<byte[]> PeekAsync(SnapshotInfo snapshot, string artifact, int bytes, CancellationToken cancellationToken)
    {
        var a = snapshot.Artifacts.Single(x => x.Name == artifact);
        var identities = Sealed.Identities(config.Encryption, ExtraIdentityFiles);
        var problems = new List<string>();
        foreach (var copy in a.Copies.Where(c => c.State == CopyState.Verified))
        {
            if (config.Targets.FirstOrDefault(t => t.Name == copy.Target) is not { } definition)
            {
                continue;
            }

            try
            {
                var target = Storage.GuardedTarget.Create(plugins, definition);
                await using var stored = await target.OpenReadAsync(Storage.Layout.Key(snapshot.Source, snapshot.Id, a.FileName), cancellationToken).ConfigureAwait(false);
                await using var content = Sealed.Open(stored, a.FileName, identities);
                var buffer = new byte[bytes];
                var n = await content.ReadAtLeastAsync(buffer, bytes, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                return buffer[..n];
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                problems.Add($"'{copy.Target}': {e.Message}");
            }
        }

        throw new BackupException($"no copy of {a.FileName} could be read to prepare the drill{(problems.Count > 0 ? ": " + string.Join("; ", problems) : "")}");
    }

    /// <summary>
    /// The rotation: of the source's targets that hold a verified copy of the snapshot, the one whose copies were drilled
    /// least recently (never first; ties in the configuration's order), so that every copy is proven in turn, the
    /// off-site one too.
    /// </summary>
    private string? NextTarget(SourceDefinition def, SnapshotInfo snapshot)
    {
        var holding = def.Targets.Distinct(StringComparer.Ordinal).Where(snapshot.VerifiedTargets.Contains).ToList();
        if (holding.Count < 2)
        {
            return holding.FirstOrDefault();
        }

        var last = catalog.Drills(def.Name).Where(d => d.Target is not null).GroupBy(d => d.Target!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Max(d => d.At), StringComparer.Ordinal);
        return holding.OrderBy(t => last.TryGetValue(t, out var at) ? at : DateTimeOffset.MinValue).ThenBy(holding.IndexOf).First();
    }

    /// <summary>
    /// The point a drill of an archiving source recovers to: a recovery marker at random among those the window reaches
    /// without a gap (after the oldest whole base snapshot became consistent, before the end of the newest archived file),
    /// else the end of the archive. With a snapshot named, the end of the archive from it.
    /// </summary>
    private (RestorePoint Point, RecoveryMarker? Marker) PickPoint(SourceDefinition def, string? choice, List<string> notes)
    {
        if (choice is not (null or "latest" or "random"))
        {
            return (RestorePoint.End, null);
        }

        var archive = catalog.Archive(def.Name);
        var window = ArchiveWindow.Compute(def, catalog.Snapshots(def.Name), archive, DateTimeOffset.UtcNow);
        if (window.To is null || catalog.Snapshot(window.FromSnapshot!) is not { } from || def.Archive!.BaseRange(from.Facts) is not { } range)
        {
            return (RestorePoint.End, null); // the restore says why nothing can be recovered
        }

        var end = archive.First(a => a.Name == window.NewestFile).End;
        var candidates = catalog.Markers(def.Name).Where(m => m.Position >= range.End && m.Position < end).ToList();
        if (candidates.Count == 0)
        {
            return (RestorePoint.End, null);
        }

        var marker = candidates[System.Security.Cryptography.RandomNumberGenerator.GetInt32(candidates.Count)];
        notes.Add($"recovering to marker {marker.Seq} (written {Text.Json.Time(marker.At)}, at {marker.Label}), chosen at random among the {candidates.Count} the window holds");
        return (new RestorePoint(null, marker.Label), marker);
    }

    private SnapshotInfo Choose(SourceDefinition def, Restorer restorer, string? choice)
    {
        if (choice != "random")
        {
            return restorer.FindSnapshot(def, choice);
        }

        var configured = config.Targets.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var candidates = catalog.Snapshots(def.Name).Where(s => s.State == SnapshotState.Committed && s.VerifiedTargets.Any(configured.Contains)).ToList();
        return candidates.Count == 0
            ? restorer.FindSnapshot(def, null) // says why there is none
            : candidates[System.Security.Cryptography.RandomNumberGenerator.GetInt32(candidates.Count)];
    }

    /// <summary>
    /// Each fact the snapshot recorded against the same fact found in what was restored. A recorded fact not found
    /// (the restore cannot count it) and an estimated one are said, not compared.
    /// </summary>
    private static IEnumerable<DrillCheck> CompareFacts(ArtifactInfo artifact, RestoredArtifact restored, List<string> notes)
    {
        foreach (var (fact, recorded) in artifact.Facts.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            if (fact.EndsWith("_estimated", StringComparison.Ordinal))
            {
                var exact = fact[..^"_estimated".Length];
                notes.Add(restored.Found.TryGetValue(exact, out var counted)
                    ? $"{artifact.Name}: {exact} was estimated at backup ({recorded}), so it is not compared; the restore counted {counted} exactly"
                    : $"{artifact.Name}: {exact} was estimated at backup ({recorded}), so it is not compared");
                continue;
            }

            if (!restored.Found.TryGetValue(fact, out var found))
            {
                notes.Add($"{artifact.Name}: {fact} ({recorded} at backup) cannot be counted in what was restored, so it is not compared");
                continue;
            }

            yield return new DrillCheck($"{artifact.Name}: {fact}", recorded.ToString(CultureInfo.InvariantCulture), found.ToString(CultureInfo.InvariantCulture),
                recorded == found);
        }
    }

    /// <summary>The drill's private scratch folder in the staging folder (0700), named after this process for the sweep.</summary>
    private string CreateScratchFolder(SourceDefinition def)
    {
        FileSystem.PrivateFolder.Ensure(config.StagingPath); // adopted only when it is a folder of this user's own, never a link
        var folder = Path.Combine(config.StagingPath, FileSystem.Stale.Name(ScratchPrefix));
        Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        FileSystem.PrivateFolder.WriteFile(folder, DrillSweeper.SourceFile, System.Text.Encoding.UTF8.GetBytes(def.Name));
        return folder;
    }

    /// <summary>Disposes the scratch (servers, databases), then removes the folder and what it recorded; a message when something stayed.</summary>
    private static async Task<string?> RemoveAsync(IDrillScratch? scratch, string folder)
    {
        var problems = new List<string>();
        var keep = new List<string>();
        if (scratch is not null)
        {
            try
            {
                await scratch.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                problems.Add($"the scratch place was not fully removed: {e.Message}; the next drill or run retries");
                // What only the kind removes (scratch databases, namespaces) stays recorded, for the next sweep.
                keep.AddRange(File.Exists(Path.Combine(folder, DrillScope.LeftoversFile))
                    ? File.ReadAllLines(Path.Combine(folder, DrillScope.LeftoversFile)).Where(DrillSweeper.IsKindLine)
                    : []);
            }
        }

        problems.AddRange(DrillSweeper.RemoveFolder(folder, keep));
        return problems.Count == 0 ? null : string.Join("; ", problems);
    }

    /// <summary>Records the drill in the catalog, with the copies it proved bad (one transaction), and writes its evidence files.</summary>
    private DrillResult Record(SourceDefinition def, DrillResult result, IReadOnlyList<(string, string, CopyInfo)> findings)
    {
        string? evidence = null;
        try
        {
            evidence = DrillEvidence.Write(EvidenceFolder, result);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            result = result with { Notes = [.. result.Notes, $"the evidence file could not be written in {EvidenceFolder}: {e.Message}"] };
        }

        result = result with { Evidence = evidence };
        catalog.RecordFindings(findings, () =>
        {
            if (result.Snapshot is not null)
            {
                catalog.AddDrill(new DrillInfo(0, def.Name, result.Snapshot, result.At, result.Passed, result.Seconds, result.Phases.GetValueOrDefault("setup"),
                    result.RtoSeconds, result.RtoMet, result.Error, evidence, System.Text.Json.JsonSerializer.Serialize(result, Text.Json.Options))
                {
                    Target = result.Copies.FirstOrDefault()?.Target,
                });
            }

            catalog.AddEvent(result.Passed ? "info" : "error", def.Name, result.Snapshot,
                result.Passed ? $"drill passed in {Seconds(result.Seconds)}" : $"drill failed: {result.Error}");
        });
        return result;
    }

    /// <summary>This program's version, for the evidence.</summary>
    private static string BackstopVersion => Text.BuildInfo.Version;

    private static double Round(TimeSpan t) => Math.Round(t.TotalSeconds, 3);

    public static string Seconds(double s) => s < 10 ? s.ToString("0.0", CultureInfo.InvariantCulture) + "s" : Quantities.FormatDuration(TimeSpan.FromSeconds(Math.Round(s)));
}
