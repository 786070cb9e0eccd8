using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing;

namespace Backstop.Core.Pipeline;

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
/// still hashes to the recorded SHA-256 (falling back to the next when one is missing or corrupt) — the hash is
/// checked before anything is written — then decompresses it into the source kind's restore.
/// </summary>
public sealed class Restorer(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog)
{
    private IReadOnlyList<Sealing.Age.AgeIdentity>? _identities;

    /// <summary>Identity files given on the command line (<c>--identity</c>), besides the configuration's.</summary>
    public IReadOnlyList<string> ExtraIdentityFiles { get; init; } = [];

    private IReadOnlyList<Sealing.Age.AgeIdentity> Identities => _identities ??= Sealed.Identities(config.Encryption, ExtraIdentityFiles);

    public SnapshotInfo FindSnapshot(SourceDefinition def, string? snapshot)
    {
        ArgumentNullException.ThrowIfNull(def);
        var snapshots = catalog.Snapshots(def.Name);
        if (snapshot is null or "latest")
        {
            return snapshots.LastOrDefault(s => s.IsValid(def.MinCopies))
                   ?? throw new BackupException($"source '{def.Name}' has no valid snapshot to restore; see 'backstop list --source {def.Name}'");
        }

        var found = snapshots.FirstOrDefault(s => s.Id == snapshot)
                    ?? throw new ConfigException($"--snapshot {snapshot}: source '{def.Name}' has no such snapshot; see 'backstop list --source {def.Name}'");
        return found.State == SnapshotState.Committed
            ? found
            : throw new BackupException($"snapshot {snapshot} is {found.State.ToString().ToLowerInvariant()}, not a backup: {found.Error}");
    }

    public async Task<IReadOnlyList<RestoredArtifact>> RestoreAsync(SourceDefinition def, SnapshotInfo snapshot, string? artifact,
        string destination, bool force, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshot);
        var source = plugins.Source(def.Kind)!.Create(def);
        var restorable = source as IRestorable
                         ?? throw new BackupException(
                             $"'{def.Kind}' sources cannot be restored by backstop yet; restore with stock tools: 'backstop restore --source {def.Name} --explain' prints how");
        var chosenNames = artifact is null ? snapshot.Artifacts.Select(a => a.Name).ToList() : snapshot.Artifacts.Where(a => a.Name == artifact).Select(a => a.Name).ToList();
        if (chosenNames.Count == 0)
        {
            throw new ConfigException($"--artifact {artifact}: snapshot {snapshot.Id} has {string.Join(", ", snapshot.Artifacts.Select(a => a.Name))}");
        }

        var artifacts = restorable.Plan(chosenNames, destination).Select(n => snapshot.Artifacts.First(a => a.Name == n)).ToList();

        var targets = config.Targets.Select(t => GuardedTarget.Create(plugins, t)).ToDictionary(t => t.Name, StringComparer.Ordinal);
        var results = new List<RestoredArtifact>();
        foreach (var a in artifacts)
        {
            var skipped = new List<string>();
            ITarget? chosen = null;
            // Verified copies first, in the source's target order; the hash is checked before anything is written.
            foreach (var name in a.Copies.OrderBy(c => c.State == CopyState.Verified ? 0 : 1).Select(c => c.Target))
            {
                if (!targets.TryGetValue(name, out var t))
                {
                    continue;
                }

                var key = Layout.Key(snapshot.Source, snapshot.Id, a.FileName);
                var check = await CopyVerifier.VerifyAsync(t, key, a.StoredBytes, a.Sha256, deep: true, validator: null, a.Facts, cancellationToken)
                    .ConfigureAwait(false);
                if (check.State == CopyState.Verified)
                {
                    chosen = t;
                    break;
                }

                skipped.Add(check.Error ?? $"copy on '{name}' is {check.State.ToString().ToLowerInvariant()}");
            }

            if (chosen is null)
            {
                throw new BackupException($"no copy of {a.FileName} of snapshot {snapshot.Id} matches its SHA-256: {string.Join("; ", skipped)}");
            }

            await using var stored = new Util.HashingReadStream(
                await chosen.OpenReadAsync(Layout.Key(snapshot.Source, snapshot.Id, a.FileName), cancellationToken).ConfigureAwait(false));
            IReadOnlyDictionary<string, long> found;
            // Three stages on their own threads: read and hash the copy; decrypt and decompress; the source kind's writes.
            await using (var hashed = new Util.ReadAheadStream(stored))
            {
                await using (var decoded = Sealed.Open(hashed, a.FileName, Identities))
                await using (var content = new Util.ReadAheadStream(decoded))
                {
                    found = await restorable.RestoreAsync(a.Name, content, destination, force, cancellationToken).ConfigureAwait(false);
                    await content.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false); // to the frame's end
                }

                await hashed.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false); // every stored byte goes through the hash
            }

            if (!string.Equals(await stored.FinishAsync(cancellationToken).ConfigureAwait(false), a.Sha256, StringComparison.Ordinal))
            {
                throw new BackupException($"the copy of {a.FileName} on '{chosen.Name}' changed while it was being restored; restore again");
            }

            results.Add(new RestoredArtifact(a.Name, chosen.Name, skipped, a.Facts, found, ValidationStage.Mismatch(found, a.Facts)));
        }

        return results;
    }
}
