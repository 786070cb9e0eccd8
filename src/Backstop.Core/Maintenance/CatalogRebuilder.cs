using System.Text.Json;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Run;
using Backstop.Core.Storage;
using Backstop.Core.Streams;
using Backstop.Core.Text;
using Backstop.Core.Verify;

namespace Backstop.Core.Maintenance;

public sealed record RebuildResult(int Snapshots, int Sources, IReadOnlyList<string> Problems);

/// <summary>
/// <c>catalog rebuild</c>: a new catalog from the manifests on the targets, so the catalog is never a single point of
/// failure. Manifests are untrusted input: each is validated (<see cref="Manifest.ParseUntrusted"/>) before use. A copy
/// counts as verified only when read back whole with the SHA-256 its manifest records (a manifest alone proves nothing
/// about the bytes beside it); <c>verify --deep</c> also decodes the content. Failed runs left no manifest, so they
/// are not recreated (their history is lost with the old catalog; nothing of theirs was kept).
/// </summary>
public sealed class CatalogRebuilder(BackstopConfig config, PluginRegistry plugins, RunObserver observer)
{
    /// <summary>
    /// False: a copy of the size its manifest records counts as verified without being read (a rehearsal's view, whose
    /// restores read and hash every copy they use anyway); true (the default): each copy is read back whole first.
    /// </summary>
    public bool ReadCopies { get; init; } = true;

    /// <summary>The largest manifest read back from a target.</summary>
    internal const long ManifestLimit = 64L << 20;

    public async Task<RebuildResult> RebuildAsync(CatalogStore catalog, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var problems = new List<string>();
        var found = new Dictionary<string, (Manifest Manifest, Dictionary<string, List<CopyInfo>> Copies)>(StringComparer.Ordinal);
        var blobsSeen = new Dictionary<(string Source, string File, string Target), (string Snapshot, long Raw, long Stored, CopyInfo Copy, string SealedTo)>();
        var identities = Sealing.Sealed.Identities(config.Encryption);
        var archiveSeen = new Dictionary<(string Source, string Name), ArchiveInfo>();
        foreach (var def in config.Targets)
        {
            var target = GuardedTarget.Create(plugins, def);
            List<ObjectInfo> objects;
            try
            {
                objects = [];
                await foreach (var o in target.ListAsync("", ct).ConfigureAwait(false))
                {
                    objects.Add(o);
                }
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                problems.Add($"target '{target.Name}' could not be listed: {e.Message}; its snapshots are not in the new catalog, run it again when it answers");
                continue;
            }

            var sizes = objects.ToDictionary(o => o.Key, o => o.Size, StringComparer.Ordinal);
            await ArchiveFromListingAsync(target, objects, archiveSeen, identities, problems, ct).ConfigureAwait(false);
            foreach (var key in objects.Select(o => o.Key).Where(k => k.EndsWith("/" + Layout.ManifestName, StringComparison.Ordinal) && k.Count(c => c == '/') == 2))
            {
                Manifest manifest;
                try
                {
                    // A manifest is a few KiB per artifact: one larger than 64 MiB is not one (a tampered target fills no memory).
                    await using var s = await target.OpenReadAsync(key, ct).ConfigureAwait(false);
                    var bytes = await ServerText.ReadAtMostAsync(s, ManifestLimit,
                        () => new BackupException($"it is larger than {ManifestLimit >> 20} MiB, which no manifest is"), ct).ConfigureAwait(false);
                    manifest = Manifest.ParseUntrusted(bytes, $"{key} on '{target.Name}'");
                }
                catch (InvalidManifestException e)
                {
                    problems.Add(e.Message);
                    continue;
                }
                catch (Exception e) when (e is JsonException or BackupException or IOException or UnauthorizedAccessException or ObjectNotFoundException or NotSupportedException)
                {
                    problems.Add($"{key} on '{target.Name}' cannot be read as a manifest: {e.Message}");
                    continue;
                }

                if ($"{manifest.Source.Name}/{manifest.Snapshot}/{Layout.ManifestName}" != key)
                {
                    problems.Add($"{key} on '{target.Name}' is refused: it describes {manifest.Source.Name}/{manifest.Snapshot}, not the folder it is in");
                    continue;
                }

                if (!found.TryGetValue(manifest.Snapshot, out var entry))
                {
                    entry = (manifest, new Dictionary<string, List<CopyInfo>>(StringComparer.Ordinal));
                    found[manifest.Snapshot] = entry;
                }
                else if (!entry.Manifest.Artifacts.Select(a => a.Sha256).SequenceEqual(manifest.Artifacts.Select(a => a.Sha256)))
                {
                    problems.Add($"snapshot {manifest.Snapshot} has different manifests on different targets; '{target.Name}' is ignored for it");
                    continue;
                }

                foreach (var a in manifest.Artifacts)
                {
                    // A copy is verified only once read back: its bytes must hash to what the manifest says was stored.
                    var objectKey = Layout.Key(manifest.Source.Name, manifest.Snapshot, a.File);
                    var copy = sizes.TryGetValue(objectKey, out var size)
                        ? size == a.StoredBytes
                            ? ReadCopies
                                ? await CopyVerifier.VerifyAsync(target, objectKey, a.StoredBytes, a.Sha256, deep: true, validator: null, a.Facts, ct).ConfigureAwait(false)
                                : new CopyInfo(target.Name, CopyState.Verified, DateTimeOffset.UtcNow, null)
                            : new CopyInfo(target.Name, CopyState.Corrupt, DateTimeOffset.UtcNow, $"{objectKey} has {size} bytes, {a.StoredBytes} were stored")
                        : new CopyInfo(target.Name, CopyState.Missing, DateTimeOffset.UtcNow, $"{objectKey} is missing on '{target.Name}'");
                    if (!entry.Copies.TryGetValue(a.Name, out var list))
                    {
                        entry.Copies[a.Name] = list = [];
                    }

                    list.Add(copy);
                }

                // Shared blobs: each checked once per target (read whole, hashed against its digest), however many snapshots
                // name it; sealed to the recipients of the newest snapshot that names it (a run seals a blob again when keys change).
                foreach (var a in manifest.Artifacts)
                {
                    foreach (var b in a.Blobs ?? [])
                    {
                        var sealedTo = Sealing.Sealed.IsEncrypted(b.File) ? string.Join(",", a.EncryptionRecipients.Order(StringComparer.Ordinal)) : "";
                        if (blobsSeen.TryGetValue((manifest.Source.Name, b.File, target.Name), out var seen))
                        {
                            if (string.CompareOrdinal(manifest.Snapshot, seen.Snapshot) > 0)
                            {
                                blobsSeen[(manifest.Source.Name, b.File, target.Name)] = seen with { Snapshot = manifest.Snapshot, SealedTo = sealedTo };
                            }

                            continue;
                        }

                        var blobKey = Layout.BlobKey(manifest.Source.Name, b.File);
                        var stored = sizes.TryGetValue(blobKey, out var blobSize) ? blobSize : -1;
                        var blobCopy = stored < 0
                            ? new CopyInfo(target.Name, CopyState.Missing, DateTimeOffset.UtcNow, $"{blobKey} is missing on '{target.Name}'")
                            : ReadCopies
                                ? await Restore.BlobReader.VerifyAsync(target, manifest.Source.Name, new BlobInfo(b.File, b.Bytes, []), deep: true, identities, ct).ConfigureAwait(false)
                                : new CopyInfo(target.Name, CopyState.Verified, DateTimeOffset.UtcNow, null);
                        blobsSeen[(manifest.Source.Name, b.File, target.Name)] = (manifest.Snapshot, b.Bytes, Math.Max(stored, 0), blobCopy, sealedTo);
                    }
                }
            }
        }

        foreach (var ((source, file, _), (_, raw, stored, copy, sealedTo)) in blobsSeen)
        {
            catalog.SetBlobCopy(source, file, raw, stored, copy, sealedTo);
        }

        foreach (var (id, (m, copies)) in found.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            if (!catalog.TryBeginSnapshot(id, m.Source.Name, m.Source.Kind, m.StartedAt, m.Host))
            {
                problems.Add($"snapshot {id} is already in the catalog");
                continue;
            }

            catalog.FinishSnapshot(new SnapshotInfo(id, m.Source.Name, m.Source.Kind, SnapshotState.Committed, m.StartedAt, m.FinishedAt, m.Host,
                m.RawBytes, m.StoredBytes, m.Facts, m.Warnings, null,
                m.Artifacts.Select(a => new ArtifactInfo(a.Name, a.File, a.RawBytes, a.StoredBytes, a.Sha256, a.Compression, a.Facts,
                    copies.GetValueOrDefault(a.Name) ?? []) { Reported = a.Reported ?? [], Level = a.Level ?? 0 }).ToList())
            {
                Parent = m.Parent, // a chain comes back from the manifests: each level names its parent
                Level = m.Level ?? 0,
                Blobs = m.Artifacts.SelectMany(a => a.Blobs ?? []).DistinctBy(b => b.File, StringComparer.Ordinal).Select(b => new BlobInfo(b.File, b.Bytes, [])).ToList(),
            });
        }

        foreach (var file in archiveSeen.Values.OrderBy(a => a.Folder, StringComparer.Ordinal).ThenBy(a => a.Name, StringComparer.Ordinal))
        {
            catalog.RecordArchive(file);
            foreach (var c in file.Copies.Where(c => c.State == CopyState.Verified))
            {
                catalog.SetArchiveCopy(file.Source, file.Name, c, file.StoredBytes.GetValueOrDefault(c.Target));
            }
        }

        foreach (var p in problems)
        {
            observer.Notice(p);
        }

        catalog.AddEvent("warn", null, null, $"catalog rebuilt from manifests: {found.Count} snapshot(s)");
        return new RebuildResult(found.Count, found.Values.Select(f => f.Manifest.Source.Name).Distinct(StringComparer.Ordinal).Count(), problems);
    }

    /// <summary>
    /// A continuous archive comes back from the listing (<c>SOURCE/wal/FOLDER/FILE.zst[.age]</c>) of each source that
    /// keeps one: each file is named by the kind (refused when it is not one of its names, or not in its folder), read
    /// whole (decrypted, decompressed) for its SHA-256 and size, which place it; the time it was archived is the
    /// object's. The same file with other content on another target is a problem, and only the first is kept.
    /// </summary>
    private async Task ArchiveFromListingAsync(ITarget target, IReadOnlyList<ObjectInfo> objects, Dictionary<(string Source, string Name), ArchiveInfo> seen,
        IReadOnlyList<Sealing.Age.AgeIdentity> identities, List<string> problems, CancellationToken ct)
    {
        foreach (var def in config.Sources.Where(s => s.Archive is not null && s.Targets.Contains(target.Name)))
        {
            var archive = plugins.Source(def.Kind)!.Create(def).Capability<IContinuousArchive>();
            var prefix = $"{def.Name}/wal/";
            foreach (var o in objects.Where(o => o.Key.StartsWith(prefix, StringComparison.Ordinal) && !Orphans.IsPartial(o.Key)))
            {
                var parts = o.Key[prefix.Length..].Split('/');
                var stored = parts.Length == 2 ? parts[1] : "";
                var name = stored.EndsWith(".zst.age", StringComparison.Ordinal) ? stored[..^8] : stored.EndsWith(".zst", StringComparison.Ordinal) ? stored[..^4] : "";
                if (archive is null || name.Length == 0)
                {
                    problems.Add($"{o.Key} on '{target.Name}' is not an archive file Backstop stores (FOLDER/FILE.zst[.age]); left alone");
                    continue;
                }

                string sha;
                long raw;
                try
                {
                    await using var read = await target.OpenReadAsync(o.Key, ct).ConfigureAwait(false);
                    await using var content = Sealing.Sealed.Open(read, stored, identities);
                    await using var hashing = new HashingReadStream(content);
                    raw = await CountAsync(hashing, ct).ConfigureAwait(false);
                    sha = await hashing.FinishAsync(ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException or ObjectNotFoundException or InvalidDataException or Sealing.SealKeyException)
                {
                    problems.Add($"{o.Key} on '{target.Name}' cannot be read back ({e.Message}); not in the new catalog from there");
                    continue;
                }

                ArchiveItem item;
                try
                {
                    item = archive.Identify(name, raw);
                }
                catch (Exception e) when (e is BackupException or ConfigException)
                {
                    problems.Add($"{o.Key} on '{target.Name}' is refused: {e.Message}");
                    continue;
                }

                if (item.Folder != parts[0])
                {
                    problems.Add($"{o.Key} on '{target.Name}' is refused: {name} belongs in {prefix}{item.Folder}/, not the folder it is in");
                    continue;
                }

                var copy = new CopyInfo(target.Name, CopyState.Verified, DateTimeOffset.UtcNow, null);
                if (seen.TryGetValue((def.Name, name), out var first))
                {
                    if (first.Sha256 != sha)
                    {
                        problems.Add($"{o.Key} on '{target.Name}' holds other content than on '{first.Copies[0].Target}'; only the first is kept");
                        continue;
                    }

                    seen[(def.Name, name)] = first with
                    {
                        Copies = [.. first.Copies, copy],
                        At = o.Modified < first.At ? o.Modified : first.At,
                        StoredBytes = new Dictionary<string, long>(first.StoredBytes) { [target.Name] = o.Size },
                    };
                    continue;
                }

                string? detail = null;
                if (item.End == 0 && raw <= ArchiveInfo.DetailLimit)
                {
                    // A timeline history's content is the archive's lineage: read again (small), and only if it is what was hashed.
                    try
                    {
                        await using var again = await target.OpenReadAsync(o.Key, ct).ConfigureAwait(false);
                        await using var text = Sealing.Sealed.Open(again, stored, identities);
                        var bytes = await ServerText.ReadAtMostAsync(text, ArchiveInfo.DetailLimit, () => new BackupException("it grew while it was read"), ct).ConfigureAwait(false);
                        detail = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)) == sha
                            ? System.Text.Encoding.UTF8.GetString(bytes)
                            : throw new BackupException("it changed while it was read");
                    }
                    catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException or ObjectNotFoundException or InvalidDataException or Sealing.SealKeyException)
                    {
                        problems.Add($"{o.Key} on '{target.Name}' cannot be read back ({e.Message}); not in the new catalog from there");
                        continue;
                    }
                }

                seen[(def.Name, name)] = new ArchiveInfo(def.Name, name, item.Folder, item.Start, item.End, raw, sha, stored, o.Modified, [copy])
                {
                    StoredBytes = new Dictionary<string, long> { [target.Name] = o.Size },
                    Detail = detail,
                };
            }
        }
    }

    private static async Task<long> CountAsync(Stream stream, CancellationToken ct)
    {
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            total += n;
        }

        return total;
    }
}
