using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Run;
using Backstop.Core.Storage;

namespace Backstop.Core.Verify;

/// <summary>
/// Brings every committed snapshot of a source back to a verified copy on each of its targets: a copy that failed
/// at run time, went missing or was found corrupt by <c>verify</c> is copied again from a verified copy on another
/// target, read back and matched, then recorded. The manifest goes last, so a heal cut short leaves no manifest
/// and the catalog still says which copies are missing.
/// </summary>
internal sealed class Healer(CatalogStore catalog, IReadOnlyDictionary<string, ITarget> targets, RunObserver observer)
{
    private readonly Dictionary<string, string?> _reachable = new(StringComparer.Ordinal);

    /// <summary>What was said this run: each artifact with no copy to heal from, once, whatever the number of targets lacking it.</summary>
    private readonly HashSet<string> _said = new(StringComparer.Ordinal);

    public async Task HealAsync(SourceDefinition def, CancellationToken ct)
    {
        await HealArchiveAsync(def, ct).ConfigureAwait(false);
        foreach (var snapshot in catalog.Snapshots(def.Name).Where(s => s.State == SnapshotState.Committed))
        {
            if (snapshot.Unrestorable)
            {
                // Nothing to heal from, proven: said once per run, and prune removes it once a newer valid snapshot exists.
                observer.Notice($"snapshot {snapshot.Id} is unrestorable: no good copy is left ({string.Join("; ", snapshot.CopyProblems)}); " +
                                "'backstop prune' removes it once a newer valid snapshot exists");
                continue;
            }

            foreach (var name in def.Targets.Distinct(StringComparer.Ordinal))
            {
                ct.ThrowIfCancellationRequested();
                if (snapshot.Artifacts.Any(a => a.Copies.Any(c => c.Target == name && c.State == CopyState.Pruned)))
                {
                    continue; // retention let it go there on purpose
                }

                var lacking = snapshot.Artifacts
                    .Where(a => !a.Copies.Any(c => c.Target == name && (c.State == CopyState.Verified || CopyVerifier.IsKeyFailure(c)))).ToList();
                var lackingBlobs = snapshot.Blobs.Where(b => !b.Copies.Any(c => c.Target == name && c.State == CopyState.Verified)).ToList();
                if ((lacking.Count == 0 && lackingBlobs.Count == 0) || await UnreachableAsync(targets[name], ct).ConfigureAwait(false) is { } why)
                {
                    continue;
                }

                if (!await HealBlobsOntoAsync(def, snapshot, targets[name], lackingBlobs, ct).ConfigureAwait(false))
                {
                    continue;
                }

                await HealOntoAsync(def, snapshot, targets[name], lacking, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Why a target cannot take copies now (probed once per run), or null.</summary>
    private async Task<string?> UnreachableAsync(ITarget target, CancellationToken ct)
    {
        if (!_reachable.TryGetValue(target.Name, out var why))
        {
            try
            {
                await target.ProbeAsync(ct).ConfigureAwait(false);
                why = null;
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                why = e.Message;
                observer.Notice($"target '{target.Name}' still lacks copies and cannot take them now: {e.Message}");
            }

            _reachable[target.Name] = why;
        }

        return why;
    }

    /// <summary>
    /// The shared blobs a snapshot needs that a target lacks, copied from a verified copy elsewhere, then read back whole
    /// and hashed against their digest (a copy that does not prove good is removed again). False when one could not be.
    /// </summary>
    private async Task<bool> HealBlobsOntoAsync(SourceDefinition def, SnapshotInfo snapshot, ITarget to, List<BlobInfo> lacking, CancellationToken ct)
    {
        foreach (var blob in lacking)
        {
            // Healed earlier in this pass (for another snapshot that shares it)?
            if (_healedBlobs.Contains((blob.FileName, to.Name)))
            {
                continue;
            }

            var key = Layout.BlobKey(def.Name, blob.FileName);
            var from = blob.Copies.Where(c => c.State == CopyState.Verified && c.Target != to.Name && targets.ContainsKey(c.Target)).Select(c => targets[c.Target]).FirstOrDefault();
            if (from is null)
            {
                if (_said.Add($"{snapshot.Id}/{blob.FileName}"))
                {
                    observer.Notice($"blob {blob.FileName} of snapshot {snapshot.Id} has no verified copy to heal from now");
                }

                return false;
            }

            long stored = -1;
            CopyInfo result;
            try
            {
                // Read back and matched with what was read; an open blob is also hashed against its digest (a sealed one
                // is, by verify --deep where its key is).
                (result, stored) = await CopyStoredBytesAsync(from, to, key, ct).ConfigureAwait(false);
                if (result.State == CopyState.Verified && !Sealing.Sealed.IsEncrypted(blob.FileName))
                {
                    result = await Restore.BlobReader.VerifyAsync(to, def.Name, blob, deep: true, [], ct).ConfigureAwait(false);
                }

                if (result.State != CopyState.Verified)
                {
                    await to.DeleteAsync(key, ct).ConfigureAwait(false); // never left where it could pass for a good copy
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                result = new CopyInfo(to.Name, CopyState.Failed, DateTimeOffset.UtcNow, "heal: " + CopyVerifier.Describe(to, key, e, null));
            }

            catalog.SetBlobCopy(def.Name, blob.FileName, blob.RawBytes, stored, result, blob.SealedTo.GetValueOrDefault(from.Name, "")); // the same bytes, sealed alike
            if (result.State != CopyState.Verified)
            {
                observer.Notice($"could not heal blob {blob.FileName} of snapshot {snapshot.Id} onto '{to.Name}': {result.Error}");
                catalog.AddEvent("warn", def.Name, snapshot.Id, $"heal of blob {blob.FileName} onto '{to.Name}' failed: {result.Error}");
                return false;
            }

            _healedBlobs.Add((blob.FileName, to.Name));
        }

        return true;
    }

    private readonly HashSet<(string File, string Target)> _healedBlobs = [];

    /// <summary>
    /// The stored bytes of a key copied from one target to another as they are (sealed once, the same everywhere), then
    /// read back and matched with the XXH3-128 of what was read. For files whose content is checked otherwise (a blob's
    /// digest, an archive file's recorded SHA-256) rather than by a SHA-256 of the stored bytes.
    /// </summary>
    private static async Task<(CopyInfo Result, long Stored)> CopyStoredBytesAsync(ITarget from, ITarget to, string key, CancellationToken ct)
    {
        var (read, unavailable) = await CopyRead.OpenAsync(from, key, ct).ConfigureAwait(false);
        if (read is null)
        {
            throw new BackupException($"the copy to heal from is gone: {unavailable!.Problem}");
        }

        var fast = new System.IO.Hashing.XxHash128();
        long stored;
        await using (read)
        await using (var upload = await to.BeginPutAsync(key, ct).ConfigureAwait(false))
        {
            var buffer = new byte[1 << 20];
            int n;
            while ((n = await read.Stored.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                fast.Append(buffer.AsSpan(0, n));
                await upload.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }

            await upload.CommitAsync(ct).ConfigureAwait(false);
            stored = read.BytesRead;
        }

        return (await CopyVerifier.ReadBackAsync(to, key, stored, fast.GetCurrentHashAsUInt128(), ct).ConfigureAwait(false), stored);
    }

    /// <summary>
    /// A continuous archive's files a target of the source lacks (it was down when the server pushed them, or lost
    /// them): copied from a target that holds them verified, read back and matched, then recorded. The stored bytes are
    /// the same everywhere (sealed once), so the copy is checked against what was read.
    /// </summary>
    private async Task HealArchiveAsync(SourceDefinition def, CancellationToken ct)
    {
        foreach (var file in catalog.Archive(def.Name))
        {
            var from = file.Copies.Where(c => c.State == CopyState.Verified && targets.ContainsKey(c.Target)).Select(c => targets[c.Target]).FirstOrDefault();
            foreach (var name in def.Targets.Where(t => !file.Copies.Any(c => c.Target == t && c.State is CopyState.Verified or CopyState.Pruned)))
            {
                ct.ThrowIfCancellationRequested();
                if (from is null || !targets.TryGetValue(name, out var to) || await UnreachableAsync(to, ct).ConfigureAwait(false) is not null)
                {
                    continue;
                }

                var key = Layout.ArchiveKey(def.Name, file.Folder, file.StoredFile);
                long stored = -1;
                CopyInfo result;
                try
                {
                    (result, stored) = await CopyStoredBytesAsync(from, to, key, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    result = new CopyInfo(to.Name, CopyState.Failed, DateTimeOffset.UtcNow, "heal: " + CopyVerifier.Describe(to, key, e, null));
                }

                catalog.SetArchiveCopy(def.Name, file.Name, result, stored);
                observer.Notice(result.State == CopyState.Verified
                    ? $"healed {file.Name} of '{def.Name}' onto '{to.Name}' from '{from.Name}'"
                    : $"could not heal {file.Name} of '{def.Name}' onto '{to.Name}': {result.Error}");
            }
        }
    }

    private async Task HealOntoAsync(SourceDefinition def, SnapshotInfo snapshot, ITarget to, List<ArtifactInfo> lacking, CancellationToken ct)
    {
        var healed = 0;
        foreach (var artifact in lacking)
        {
            var key = Layout.Key(def.Name, snapshot.Id, artifact.FileName);
            var from = artifact.Copies
                .Where(c => c.State == CopyState.Verified && c.Target != to.Name && targets.ContainsKey(c.Target))
                .Select(c => targets[c.Target]).FirstOrDefault();
            if (from is null)
            {
                if (_said.Add($"{snapshot.Id}/{artifact.Name}"))
                {
                    observer.Notice($"{artifact.FileName} of snapshot {snapshot.Id} has no verified copy to heal from now");
                }

                return;
            }

            CopyInfo result;
            try
            {
                await CopyAsync(from, to, key, artifact, ct).ConfigureAwait(false);
                result = await CopyVerifier.VerifyAsync(to, key, artifact.StoredBytes, artifact.Sha256, deep: true, validator: null, artifact.Facts, ct)
                    .ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                result = new CopyInfo(to.Name, CopyState.Failed, DateTimeOffset.UtcNow, "heal: " + CopyVerifier.Describe(to, key, e, null));
            }

            catalog.SetCopy(snapshot.Id, artifact.Name, result);
            if (result.State != CopyState.Verified)
            {
                observer.Notice($"could not heal {artifact.FileName} of snapshot {snapshot.Id} onto '{to.Name}': {result.Error}");
                catalog.AddEvent("warn", def.Name, snapshot.Id, $"heal of {artifact.FileName} onto '{to.Name}' failed: {result.Error}");
                return;
            }

            healed++;
        }

        // Every artifact is there and matched: the manifest last, read back byte for byte.
        var manifestKey = Layout.Key(def.Name, snapshot.Id, Layout.ManifestName);
        var holder = snapshot.Artifacts.SelectMany(a => a.Copies)
            .Where(c => c.State == CopyState.Verified && c.Target != to.Name && targets.ContainsKey(c.Target))
            .Select(c => targets[c.Target]).FirstOrDefault();
        try
        {
            if (holder is not null && await ReadAllAsync(holder, manifestKey, ct).ConfigureAwait(false) is { } manifest)
            {
                await using (var upload = await to.BeginPutAsync(manifestKey, ct).ConfigureAwait(false))
                {
                    await upload.WriteAsync(manifest, ct).ConfigureAwait(false);
                    await upload.CommitAsync(ct).ConfigureAwait(false);
                }

                if (!(await ReadAllAsync(to, manifestKey, ct).ConfigureAwait(false) ?? []).AsSpan().SequenceEqual(manifest))
                {
                    throw new BackupException($"{Layout.ManifestName} on target '{to.Name}' did not read back as written");
                }
            }
        }
        catch (Exception e) when (e is BackupException or IOException or ObjectNotFoundException)
        {
            observer.Notice($"healed copies of snapshot {snapshot.Id} on '{to.Name}' lack their {Layout.ManifestName}: {e.Message}");
            catalog.AddEvent("warn", def.Name, snapshot.Id, $"heal onto '{to.Name}': {Layout.ManifestName} not written: {e.Message}");
            return;
        }

        observer.Notice($"healed snapshot {snapshot.Id} of '{def.Name}' onto '{to.Name}': {healed} artifact(s) copied from a verified copy, read back and matched");
        catalog.AddEvent("info", def.Name, snapshot.Id, $"healed onto '{to.Name}' ({healed} artifact(s))");
    }

    /// <summary>
    /// Copies a verified copy onto another target, hashing what it reads: a source copy that no longer holds the stored
    /// bytes is never committed elsewhere, and is said to be the source's fault, not the new target's.
    /// </summary>
    private static async Task CopyAsync(ITarget from, ITarget to, string key, ArtifactInfo artifact, CancellationToken ct)
    {
        var (read, unavailable) = await CopyRead.OpenAsync(from, key, ct).ConfigureAwait(false);
        if (read is null)
        {
            throw new BackupException($"the copy to heal from is gone: {unavailable!.Problem}");
        }

        await using (read)
        await using (var upload = await to.BeginPutAsync(key, ct).ConfigureAwait(false))
        {
            var buffer = new byte[1 << 20];
            int n;
            while ((n = await read.Stored.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await upload.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }

            var sha = await read.FinishAsync(ct).ConfigureAwait(false);
            if (!string.Equals(sha, artifact.Sha256, StringComparison.Ordinal))
            {
                throw new BackupException(
                    $"the copy to heal from ({CopyRead.Where(from, key)}) no longer matches: SHA-256 {sha[..16]}…, {artifact.Sha256[..16]}… was stored; nothing was written; run 'backstop verify --deep'");
            }

            await upload.CommitAsync(ct).ConfigureAwait(false);
        }
    }

    private static async Task<byte[]?> ReadAllAsync(ITarget target, string key, CancellationToken ct)
    {
        try
        {
            await using var s = await target.OpenReadAsync(key, ct).ConfigureAwait(false);
            var m = new MemoryStream();
            await s.CopyToAsync(m, ct).ConfigureAwait(false);
            return m.ToArray();
        }
        catch (ObjectNotFoundException)
        {
            return null;
        }
    }
}
