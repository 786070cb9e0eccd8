using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Storage;

namespace Backstop.Core.Verify;

/// <summary>One finding of <c>verify</c>: a copy, its state now, and why.</summary>
public sealed record CopyCheck(string Source, string Snapshot, string Artifact, string Target, CopyState State, string? Error);

/// <summary>A committed snapshot that has no verified copy on one of its source's configured targets, and why.</summary>
public sealed record LackingCopy(string Source, string Snapshot, string Target, string State, string Error);

/// <summary>What <c>verify</c> found: every copy checked, and every configured target a snapshot lacks a copy on.</summary>
public sealed record VerifyReport(IReadOnlyList<CopyCheck> Copies, IReadOnlyList<LackingCopy> Lacking);

/// <summary>
/// <c>verify</c>: every copy of every committed snapshot still exists with the right size (deep: and its bytes
/// hash to the recorded SHA-256 and pass the format check), and its snapshot's manifest is there. The states
/// found are recorded, so <c>status</c> reflects them.
/// </summary>
public sealed class VerifyRunner(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog)
{
    /// <summary>One archive file's copy on a target: quick, its stored size; deep, its content (decrypted, decompressed) against its recorded SHA-256.</summary>
    private static async Task<CopyInfo> VerifyArchiveCopyAsync(ITarget target, string source, ArchiveInfo file, bool deep,
        IReadOnlyList<Sealing.Age.AgeIdentity> identities, CancellationToken ct)
    {
        var key = Layout.ArchiveKey(source, file.Folder, file.StoredFile);
        var now = DateTimeOffset.UtcNow;
        ObjectInfo? info;
        try
        {
            info = await target.StatAsync(key, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or BackupException)
        {
            return new CopyInfo(target.Name, CopyState.Failed, now, $"{CopyRead.Where(target, key)} could not be checked: {e.Message}");
        }

        if (info is null)
        {
            return new CopyInfo(target.Name, CopyState.Missing, now, $"{CopyRead.Where(target, key)} is missing");
        }

        if (file.StoredBytes.TryGetValue(target.Name, out var size) && size > 0 && info.Size != size)
        {
            return new CopyInfo(target.Name, CopyState.Corrupt, now, $"{CopyRead.Where(target, key)} is {info.Size} bytes, {size} were stored");
        }

        if (!deep || (Sealing.Sealed.IsEncrypted(file.StoredFile) && identities.Count == 0))
        {
            return new CopyInfo(target.Name, CopyState.Verified, now, null);
        }

        var (read, why) = await CopyRead.OpenAsync(target, key, ct).ConfigureAwait(false);
        if (read is null)
        {
            return new CopyInfo(target.Name, why!.Missing ? CopyState.Missing : CopyState.Failed, now, why.Problem);
        }

        try
        {
            await using (read)
            await using (var content = Sealing.Sealed.Open(read.Stored, file.StoredFile, identities))
            {
                var sha = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(content, ct).ConfigureAwait(false));
                return sha == file.Sha256
                    ? new CopyInfo(target.Name, CopyState.Verified, now, null)
                    : new CopyInfo(target.Name, CopyState.Corrupt, now, $"{CopyRead.Where(target, key)} does not hold what was archived (SHA-256 {sha[..16]}…)");
            }
        }
        catch (Sealing.SealKeyException)
        {
            return new CopyInfo(target.Name, CopyState.Verified, now, null); // the key's problem, not the copy's: its size was right
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new CopyInfo(target.Name, read.ReadFault is null ? CopyState.Corrupt : CopyState.Failed, now, $"{CopyRead.Where(target, key)}: {e.Message}");
        }
    }

    private const string DeepHint = " (found by a deep verify; run 'backstop verify --deep' to check it again)";

    /// <summary>Runs between the checks and their recording (interleaving tests).</summary>
    internal Func<Task>? BeforeRecording { get; init; }

    public async Task<VerifyReport> RunAsync(IReadOnlyCollection<string> only, bool deep, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(only);
        var targets = config.Targets.ToDictionary(t => t.Name, t => GuardedTarget.Create(plugins, t), StringComparer.Ordinal);
        var identities = deep ? Sealing.Sealed.Identities(config.Encryption) : [];
        var checks = new List<CopyCheck>();
        var updates = new List<(string, string, CopyInfo, CopyInfo?)>();
        foreach (var def in config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)))
        {
            var source = plugins.Source(def.Kind)!.Create(def);
            foreach (var snap in catalog.Snapshots(def.Name).Where(s => s.State == SnapshotState.Committed))
            {
                foreach (var targetName in snap.Artifacts.SelectMany(a => a.Copies).Where(c => c.State != CopyState.Pruned)
                             .Select(c => c.Target).Distinct(StringComparer.Ordinal))
                {
                    if (!targets.TryGetValue(targetName, out var target))
                    {
                        continue; // a target removed from the configuration: nothing to check it with
                    }

                    var manifest = await target.StatAsync(Layout.Key(def.Name, snap.Id, Layout.ManifestName), cancellationToken).ConfigureAwait(false);
                    foreach (var a in snap.Artifacts)
                    {
                        var key = Layout.Key(def.Name, snap.Id, a.FileName);
                        CopyInfo result;
                        if (manifest is null)
                        {
                            result = new CopyInfo(target.Name, CopyState.Missing, DateTimeOffset.UtcNow,
                                $"{Layout.ManifestName} of {snap.Id} is missing on target '{target.Name}', so its copies are not a backup there");
                        }
                        else
                        {
                            result = await CopyVerifier.VerifyAsync(target, key, a.StoredBytes, a.Sha256, deep,
                                deep ? source.ValidatorFor(a.Name) ?? CopyVerifier.DecodeOnly : null, a.Facts, cancellationToken, identities).ConfigureAwait(false);
                        }

                        var before = a.Copies.FirstOrDefault(c => c.Target == target.Name);
                        var keyFailure = CopyVerifier.IsKeyFailure(before);
                        if (result.State != CopyState.Verified && before?.State is CopyState.Failed && !keyFailure)
                        {
                            continue; // never stored there: not news
                        }

                        if (!deep && result.State == CopyState.Verified && (before?.State == CopyState.Corrupt || keyFailure))
                        {
                            // The right size proves nothing about content found corrupt, or about a key: only a deep read clears it.
                            result = before! with { Error = before.Error!.EndsWith(DeepHint, StringComparison.Ordinal) ? before.Error : before.Error + DeepHint };
                        }

                        updates.Add((snap.Id, a.Name, result, before));
                        checks.Add(new CopyCheck(def.Name, snap.Id, a.Name, target.Name, result.State, result.Error));
                    }
                }
            }
        }

        // Shared blobs: each copy checked once in this pass, however many snapshots name it.
        foreach (var def in config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)))
        {
            var seen = new HashSet<(string File, string Target)>();
            foreach (var snap in catalog.Snapshots(def.Name).Where(s => s.State == SnapshotState.Committed).Reverse())
            {
                var onTargets = snap.Artifacts.SelectMany(a => a.Copies).Where(c => c.State != CopyState.Pruned).Select(c => c.Target).ToHashSet(StringComparer.Ordinal);
                foreach (var blob in snap.Blobs)
                {
                    foreach (var before in blob.Copies.Where(c => onTargets.Contains(c.Target) && seen.Add((blob.FileName, c.Target))))
                    {
                        if (!targets.TryGetValue(before.Target, out var target))
                        {
                            continue;
                        }

                        var result = await Restore.BlobReader.VerifyAsync(target, def.Name, blob, deep, identities, cancellationToken).ConfigureAwait(false);
                        if (result.State != CopyState.Verified && before.State is CopyState.Failed)
                        {
                            continue; // never stored there: not news
                        }

                        if (!deep && result.State == CopyState.Verified && before.State == CopyState.Corrupt)
                        {
                            result = before with { Error = before.Error!.EndsWith(DeepHint, StringComparison.Ordinal) ? before.Error : before.Error + DeepHint };
                        }

                        catalog.UpdateBlobCopy(def.Name, blob.FileName, result);
                        checks.Add(new CopyCheck(def.Name, snap.Id, "blob " + blob.FileName, target.Name, result.State, result.Error));
                    }
                }
            }
        }

        // A continuous archive (WAL): each file's copies, quick by size, deep by content against the SHA-256 recorded at push.
        foreach (var def in config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)))
        {
            foreach (var file in catalog.Archive(def.Name))
            {
                foreach (var before in file.Copies.Where(c => c.State is not (CopyState.Pruned or CopyState.Failed)))
                {
                    if (!targets.TryGetValue(before.Target, out var target))
                    {
                        continue;
                    }

                    var result = await VerifyArchiveCopyAsync(target, def.Name, file, deep, identities, cancellationToken).ConfigureAwait(false);
                    if (!deep && result.State == CopyState.Verified && before.State == CopyState.Corrupt)
                    {
                        result = before; // only a deep read clears content found corrupt
                    }

                    catalog.SetArchiveCopy(def.Name, file.Name, result, -1);
                    checks.Add(new CopyCheck(def.Name, "archive", "wal " + file.Name, target.Name, result.State, result.Error));
                }
            }
        }

        if (BeforeRecording is { } hook)
        {
            await hook().ConfigureAwait(false);
        }

        // Compare-and-set: what changed since it was read (a prune, a heal, a newer check) wins over this pass.
        var superseded = catalog.SetCopiesIfUnchanged(updates).ToHashSet();
        if (superseded.Count > 0)
        {
            // Not recorded, yet still said and counted: only a copy pruned meanwhile is no longer this pass's business.
            var now = catalog.Snapshots().SelectMany(x => x.Artifacts.SelectMany(a => a.Copies.Select(c => ((x.Id, a.Name, c.Target), c.State))))
                .ToDictionary(k => k.Item1, k => k.State);
            checks.RemoveAll(c => superseded.Contains((c.Snapshot, c.Artifact, c.Target))
                                  && now.GetValueOrDefault((c.Snapshot, c.Artifact, c.Target)) == CopyState.Pruned);
            checks = checks.Select(c => superseded.Contains((c.Snapshot, c.Artifact, c.Target)) && c.State != CopyState.Verified
                ? c with { Error = c.Error + " (not recorded: the copy was checked again meanwhile)" }
                : c).ToList();
        }
        foreach (var c in checks.Where(c => c.State != CopyState.Verified))
        {
            catalog.AddEvent("error", c.Source, c.Snapshot, $"verify: {c.Error}");
        }

        // With what was just recorded: a snapshot short of a configured target is not "all verified" (status calls it degraded).
        var lacking = new List<LackingCopy>();
        foreach (var def in config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)))
        {
            foreach (var snap in catalog.Snapshots(def.Name).Where(s => s.State == SnapshotState.Committed && s.VerifiedTargets.Count > 0))
            {
                foreach (var (target, copy) in StatusReport.CopyStates(def, snap).Where(c => c.Value.State is not ("verified" or "pruned")))
                {
                    if (!checks.Any(c => c.Snapshot == snap.Id && c.Target == target && c.State != CopyState.Verified))
                    {
                        lacking.Add(new LackingCopy(def.Name, snap.Id, target, copy.State, copy.Error ?? "(no reason recorded)"));
                    }
                }
            }
        }

        return new VerifyReport(checks, lacking);
    }
}
