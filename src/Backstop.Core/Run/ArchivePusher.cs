using System.Security.Cryptography;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing;
using Backstop.Core.Storage;

namespace Backstop.Core.Run;

/// <summary>What a push did: the file, how many targets hold it verified now, how many the source needs, and what failed where.</summary>
public sealed record ArchivePushResult(ArchiveItem Item, int Verified, int Needed, bool AlreadyStored, IReadOnlyList<string> Problems)
{
    /// <summary>
    /// Set when fewer than min_copies targets took the file but the server holds back more WAL than <c>wal.queue_max</c>:
    /// the push lets go (the server recycles the file) and the archive has a gap there. How much was held back.
    /// </summary>
    public long? LetGoAt { get; init; }

    public bool Succeeded => Verified >= Needed || LetGoAt is not null;
}

/// <summary>
/// <c>wal-push PATH</c> (a server's <c>archive_command</c>): one file of a source's continuous archive, hashed, then sent
/// through the same pipeline as an artifact (zstd, sealed when encrypted, committed only whole, read back and matched) to
/// the source's targets that do not hold it verified yet, and recorded with the range it covers. Idempotent: a file
/// already stored with the same content is not sent again; one with other content under the same name is refused,
/// loudly. It succeeds once <c>min_copies</c> targets hold it; a target that is down fails only its own copy (healed
/// later), never the server's archiving while enough others take it. It never waits for the run lock.
/// </summary>
public sealed class ArchivePusher(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog)
{
    private static readonly IReadOnlyDictionary<string, long> NoFacts = new Dictionary<string, long>();

    /// <summary>
    /// The push; past <c>wal.queue_max</c> of WAL held back by the server, also a refusal (other content under its name,
    /// a key missing) lets the server go on, recorded loudly: pgBackRest's archive-push-queue-max, a broken recovery
    /// window, never a primary whose disk fills with WAL.
    /// </summary>
    public async Task<ArchivePushResult> PushAsync(SourceDefinition def, string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            return await PushOnceAsync(def, path, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException e) when (def.Archive is { } policy && HeldBack(new FileInfo(path)) is { } held && held >= policy.QueueMax)
        {
            var name = Path.GetFileName(path);
            catalog.AddEvent("error", def.Name, null, $"wal-push: {name} of '{def.Name}' could not be archived ({e.Message}), and the server holds back " +
                                                      $"{Config.Quantities.FormatSize(held)} of WAL (wal.queue_max {Config.Quantities.FormatSize(policy.QueueMax)}): " +
                                                      "let go so that the server keeps running; the archive has a gap here until a new base backup");
            return new ArchivePushResult(new ArchiveItem("", name, 0, 0), 0, def.MinCopies, false, [e.Message]) { LetGoAt = held };
        }
    }

    private async Task<ArchivePushResult> PushOnceAsync(SourceDefinition def, string path, CancellationToken cancellationToken)
    {
        var archive = plugins.Source(def.Kind)!.Create(def).Capability<IContinuousArchive>()
                      ?? throw new ConfigException($"source '{def.Name}' ({def.Kind}) keeps no continuous archive; wal-push takes a postgres source with mode: physical");
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            throw new BackupException($"wal-push: {path} does not exist (archive_command passes %p, the file's path relative to the data folder)");
        }

        var item = archive.Identify(file.Name, file.Length);
        string sha;
        await using (var read = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
        {
            sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(read, cancellationToken).ConfigureAwait(false));
        }

        var existing = catalog.Archive(def.Name, item.Name).SingleOrDefault();
        if (existing is not null && existing.Sha256 != sha)
        {
            var message = $"wal-push: {item.Name} of '{def.Name}' is already archived with other content (SHA-256 {existing.Sha256[..16]}…, this one {sha[..16]}…): " +
                          "two servers archive into one source, or a promoted copy reuses its name; refused, nothing overwritten";
            catalog.AddEvent("error", def.Name, null, message);
            throw new BackupException(message);
        }

        var recipients = Sealed.Recipients(config.Encryption);
        var stored = existing?.StoredFile ?? item.Name + ".zst" + (recipients is null ? "" : Sealed.AgeSuffix);
        if (Sealed.IsEncrypted(stored) && recipients is null)
        {
            // Never open bytes under a sealed file's name: the other copies are sealed, this one would not be.
            throw new BackupException($"wal-push: {item.Name} of '{def.Name}' was archived sealed, and no encryption recipients are configured now to seal the copies it still lacks; restore the encryption block");
        }
        var copies = (existing?.Copies ?? []).ToDictionary(c => c.Target, StringComparer.Ordinal);
        var lacking = def.Targets.Where(t => !(copies.TryGetValue(t, out var c) && c.State == CopyState.Verified))
            .Select(t => GuardedTarget.Create(plugins, config.Targets.First(x => x.Name == t))).ToList();
        var problems = new List<string>();
        if (lacking.Count > 0)
        {
            var writer = await ArtifactWriter.StartAtAsync(Layout.ArchiveKey(def.Name, item.Folder, stored), stored, lacking, config.Compression,
                Sealed.IsEncrypted(stored) ? recipients : null, new ArtifactProgress(def.Name, item.Name), cancellationToken).ConfigureAwait(false);
            await using (writer.ConfigureAwait(false))
            {
                // Hashed again as it is sent: what is stored is what was hashed, or nothing counts.
                await using (var hashing = new Streams.HashingReadStream(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan)))
                {
                    await hashing.CopyToAsync(writer, cancellationToken).ConfigureAwait(false);
                    if (await hashing.FinishAsync(cancellationToken).ConfigureAwait(false) != sha)
                    {
                        throw new BackupException($"wal-push: {path} changed while it was being archived; nothing counts (PostgreSQL retries)");
                    }
                }

                await writer.CompleteAsync(NoFacts, cancellationToken).ConfigureAwait(false);
            }

            foreach (var c in writer.Result!.Copies)
            {
                copies[c.Target] = c;
                if (c.State != CopyState.Verified)
                {
                    problems.Add(c.Error ?? $"target '{c.Target}': {c.State.ToString().ToLowerInvariant()}");
                }
            }

            // A small file that places nothing (a timeline history) keeps its content: the archive's lineage is read from it.
            var detail = item.End == 0 && file.Length <= ArchiveInfo.DetailLimit ? await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false) : null;
            catalog.RecordArchive(new ArchiveInfo(def.Name, item.Name, item.Folder, item.Start, item.End, file.Length, sha, stored, DateTimeOffset.UtcNow,
                copies.Values.ToList()) { Detail = detail });
            foreach (var c in writer.Result.Copies.Where(c => c.State == CopyState.Verified))
            {
                catalog.SetArchiveCopy(def.Name, item.Name, c, writer.Result.StoredBytes);
            }
        }

        var verified = copies.Values.Count(c => c.State == CopyState.Verified && def.Targets.Contains(c.Target));
        var result = new ArchivePushResult(item, verified, def.MinCopies, lacking.Count == 0, problems);
        if (verified < def.MinCopies && def.Archive is { } policy && HeldBack(file) is { } held && held >= policy.QueueMax)
        {
            var message = $"wal-push: {item.Name} of '{def.Name}' is on {verified} of the {def.MinCopies} target(s) min_copies needs, and the server holds back " +
                          $"{Config.Quantities.FormatSize(held)} of WAL (wal.queue_max {Config.Quantities.FormatSize(policy.QueueMax)}): let go so that the server keeps running; " +
                          (verified == 0 ? "the archive has a gap here and restores cannot pass it" : "it has fewer copies than the policy asks") +
                          $" until a new base backup (backstop run --source {def.Name}); {string.Join("; ", problems)}";
            catalog.AddEvent("error", def.Name, null, message);
            return result with { LetGoAt = held };
        }

        return result;
    }

    /// <summary>
    /// The WAL the server holds back for archiving: the files its <c>archive_status</c> marks ready, beside the one
    /// pushed (archive_command runs in the data folder with %p under pg_wal). Null when the file is not in such a folder.
    /// </summary>
    public static long? HeldBack(FileInfo file)
    {
        var status = new DirectoryInfo(Path.Combine(file.DirectoryName!, "archive_status"));
        if (!status.Exists)
        {
            return null;
        }

        long held = 0;
        foreach (var ready in status.EnumerateFiles("*.ready"))
        {
            var wal = new FileInfo(Path.Combine(file.DirectoryName!, Path.GetFileNameWithoutExtension(ready.Name)));
            held += wal.Exists ? wal.Length : 0;
        }

        return held;
    }
}
