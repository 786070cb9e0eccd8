using Backstop.Core.Catalog;
using Backstop.Core.Plugins;
using Backstop.Core.Storage;

namespace Backstop.Core.Run;

/// <summary>
/// The capture's side of shared blobs (<see cref="IBlobStore"/>): each blob is recorded as needed by the running
/// snapshot first (so a prune never takes it away meanwhile), then sent only to the targets that do not hold it
/// verified, through the same pipeline as an artifact (sealed when encrypted, zstd only where it helps, committed
/// under its final name only whole, read back and matched); what each target took is recorded at once.
/// </summary>
internal sealed class BlobStore(
    string source,
    string snapshot,
    IReadOnlyList<ITarget> targets,
    Config.CompressionOptions compression,
    IReadOnlyList<Sealing.Age.AgeRecipient>? recipients,
    CatalogStore catalog,
    bool reuse = true) : IBlobStore
{
    /// <summary>What a sealed blob is sealed to: the recipients, in order (a change of keys seals each blob again when next needed).</summary>
    private readonly string _sealedTo = recipients is null ? "" : string.Join(",", recipients.Select(r => r.Describe).Order(StringComparer.Ordinal));

    private static readonly IReadOnlyDictionary<string, long> NoFacts = new Dictionary<string, long>();
    private readonly Dictionary<string, List<ManifestBlob>> _byArtifact = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Task> _stored = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _failures = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private Dictionary<string, HashSet<string>>? _verified;

    /// <summary>Blobs sent by this run (to at least one target), and their stored bytes on each.</summary>
    public int Sent { get; private set; }

    public long SentBytes { get; private set; }

    /// <summary>Blobs the snapshot needs that every target already held.</summary>
    public int Reused { get; private set; }

    /// <summary>Per target, why a blob is not there (the snapshot's copy there fails).</summary>
    public IReadOnlyDictionary<string, string> Failures
    {
        get
        {
            lock (_lock)
            {
                return new Dictionary<string, string>(_failures, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>The blobs an artifact needs, in the order it named them.</summary>
    public IReadOnlyList<ManifestBlob> Of(string artifact)
    {
        lock (_lock)
        {
            return _byArtifact.TryGetValue(artifact, out var list) ? list.ToList() : [];
        }
    }

    public async Task PutAsync(string artifact, string digest, long size, bool compress, Func<CancellationToken, Task<Stream>> open, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(open);
        if (digest is null || !digest.StartsWith("sha256:", StringComparison.Ordinal) || !Layout.IsBlobFile(digest["sha256:".Length..]) || size < 0)
        {
            throw new BackupException($"the '{source}' source handed a blob '{digest}' of {size} bytes: a blob is named by its sha256 digest");
        }

        var file = Layout.BlobFile(digest, compress, recipients is not null);
        Task task;
        lock (_lock)
        {
            if (!_byArtifact.TryGetValue(artifact, out var list))
            {
                _byArtifact[artifact] = list = [];
            }

            if (list.All(b => b.File != file))
            {
                list.Add(new ManifestBlob(file, size));
            }

            if (!_stored.TryGetValue(file, out task!))
            {
                catalog.AddSnapshotBlob(snapshot, file, size); // named before it is looked for: a prune sees it from now on
                _stored[file] = task = StoreAsync(file, size, open, cancellationToken);
            }
        }

        await task.ConfigureAwait(false);
    }

    private async Task StoreAsync(string file, long size, Func<CancellationToken, Task<Stream>> open, CancellationToken cancellationToken)
    {
        // Held: verified there, sealed to today's recipients; none with run --full (everything sent again).
        _verified ??= catalog.BlobCopies(source).Where(c => reuse && c.Copy.State == CopyState.Verified && c.SealedTo == _sealedTo)
            .GroupBy(c => c.File, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(c => c.Copy.Target).ToHashSet(StringComparer.Ordinal), StringComparer.Ordinal);
        var lacking = targets.Where(t => !(_verified.TryGetValue(file, out var held) && held.Contains(t.Name))).ToList();
        if (lacking.Count == 0)
        {
            Reused++;
            return;
        }

        var writer = await ArtifactWriter.StartBlobAsync(source, file, lacking, compression, recipients, new ArtifactProgress(source, file), cancellationToken)
            .ConfigureAwait(false);
        await using (writer.ConfigureAwait(false))
        {
            await using (var content = await open(cancellationToken).ConfigureAwait(false))
            {
                await content.CopyToAsync(writer, cancellationToken).ConfigureAwait(false);
            }

            await writer.CompleteAsync(NoFacts, cancellationToken).ConfigureAwait(false);
        }

        var result = writer.Result!;
        Sent++;
        SentBytes += result.StoredBytes;
        foreach (var copy in result.Copies)
        {
            catalog.SetBlobCopy(source, file, size, result.StoredBytes, copy, _sealedTo);
            if (copy.State != CopyState.Verified)
            {
                lock (_lock)
                {
                    _failures.TryAdd(copy.Target, $"blob {file} was not stored on '{copy.Target}': {copy.Error}");
                }
            }
        }
    }
}
