using Backstop.Core.Plugins;

namespace Backstop.Sources.Registry;

/// <summary>
/// Restore of a repository's layout into a registry (<c>--to http(s)://HOST:PORT[/PREFIX]</c>, with the credentials
/// of <c>?credentials_file=</c>, or the source's for the source's own registry): blobs as the layout streams past (HEAD first; mounted from a repository this restore already filled,
/// where the registry allows; else uploaded with their digest for the registry to check), then the manifests by
/// digest, children before the indexes that name them, then the tags. A tag that already names another digest is
/// refused unless --force. Afterwards every manifest is read back and hashed, every tag resolved, every blob's size
/// asked: the facts returned are what the registry then holds.
/// </summary>
internal sealed class RegistryRestore(RegistryAccess access) : IBlobRestorable
{
    /// <summary>The snapshot's shared blobs (layers and configs stored apart), from the copy being restored.</summary>
    public IBlobSource? Blobs { get; set; }

    /// <summary>Blobs this restore put into the destination registry, by digest → repository (for cross-repository mounts).</summary>
    private readonly Dictionary<string, string> _pushed = new(StringComparer.Ordinal);

    public async Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        var (url, prefix) = RegistrySource.Destination(destination, out var credentials);
        var source = OciLayoutReader.RepositoryOf(artifactName)
                     ?? throw new BackupException($"artifact {artifactName} does not name a repository; restore it with the stock recipe (restore --explain)");
        var repository = prefix.Length > 0 ? $"{prefix}/{source}" : source;
        if (!RegistryNames.IsRepository(repository) || repository.Length > 255)
        {
            throw new BackupException($"--to {destination}: {repository} is not a repository name");
        }

        using var client = access.ClientFor(url, credentials);
        await client.PingAsync(cancellationToken).ConfigureAwait(false);
        var present = new Dictionary<string, long>(StringComparer.Ordinal);
        var mounted = 0;

        // owned: the stream is this push's to close (a shared blob's read); a layout entry's belongs to the layout reader.
        async Task PushAsync(string digest, long size, Func<Task<Stream>> open, bool owned = false)
        {
            if (await client.BlobSizeAsync(repository, digest, cancellationToken).ConfigureAwait(false) is { } have && (have == size || have < 0))
            {
                present[digest] = size;
                return;
            }

            var from = _pushed.TryGetValue(digest, out var other) && other != repository ? other : null;
            var data = await open().ConfigureAwait(false);
            try
            {
                if (await client.Push.PushBlobAsync(repository, digest, size, () => data, from, cancellationToken).ConfigureAwait(false))
                {
                    mounted++;
                }
            }
            finally
            {
                if (owned)
                {
                    await data.DisposeAsync().ConfigureAwait(false);
                }
            }

            present[digest] = size;
            _pushed[digest] = repository;
        }

        // Blobs too large to keep (layers) go as they stream past; the JSON ones wait for index.json to tell manifests from configs.
        var layout = await OciLayoutReader.ReadAsync(content, (digest, size, data) => PushAsync(digest, size, () => Task.FromResult(data)),
                artifactName, cancellationToken)
            .ConfigureAwait(false);
        var manifests = layout.Manifests.Select(m => m.Manifest.Digest).ToHashSet(StringComparer.Ordinal);
        foreach (var (digest, bytes) in layout.Kept.Where(k => !manifests.Contains(k.Key) && !present.ContainsKey(k.Key)))
        {
            await PushAsync(digest, bytes.Length, () => Task.FromResult<Stream>(new MemoryStream(bytes, writable: false))).ConfigureAwait(false);
        }

        // Configs and layers stored apart (shared between snapshots): read from the same copy's blobs, each checked against its digest.
        foreach (var blob in layout.External)
        {
            if (Blobs?.Has(blob.Digest) != true)
            {
                throw new BackupException($"{artifactName}: a manifest names blob {blob.Digest}, which neither the layout nor the snapshot's shared blobs hold");
            }

            await PushAsync(blob.Digest, blob.Size, () => Blobs.OpenAsync(blob.Digest, cancellationToken), owned: true).ConfigureAwait(false);
        }

        // A tag that names something else already is someone's image: never replaced without --force.
        foreach (var (tag, d) in layout.Tags)
        {
            if (await client.ManifestAsync(repository, tag, cancellationToken).ConfigureAwait(false) is { } existing && existing.Digest != d.Digest && !force)
            {
                throw new BackupException($"{repository}:{tag} on {client.Where} already names {existing.Digest}, not the {d.Digest} restored; restore under another prefix, or add --force");
            }
        }

        // Manifests children first (an index after every manifest it names): the registry checks that what a manifest names is there.
        var byDigest = layout.Manifests.ToDictionary(m => m.Manifest.Digest, StringComparer.Ordinal);
        foreach (var (m, bytes) in ChildrenFirst(layout.Index, byDigest))
        {
            await client.Push.PutManifestAsync(repository, m.Digest, bytes, m.MediaType, cancellationToken).ConfigureAwait(false);
        }

        foreach (var (tag, d) in layout.Tags)
        {
            var (m, bytes) = byDigest[d.Digest];
            await client.Push.PutManifestAsync(repository, tag, bytes, m.MediaType, cancellationToken).ConfigureAwait(false);
        }

        // Read back: every manifest hashed again, every tag resolved to the digest restored, every blob there with its size.
        foreach (var (m, _) in layout.Manifests)
        {
            _ = await client.ManifestAsync(repository, m.Digest, cancellationToken).ConfigureAwait(false)
                ?? throw new BackupException($"{repository}@{m.Digest} is missing from {client.Where} right after it was pushed");
        }

        var tags = 0;
        foreach (var (tag, d) in layout.Tags)
        {
            var back = await client.ManifestAsync(repository, tag, cancellationToken).ConfigureAwait(false);
            if (back?.Digest != d.Digest)
            {
                throw new BackupException($"{repository}:{tag} on {client.Where} names {back?.Digest ?? "nothing"} after the restore, not {d.Digest}");
            }

            tags++;
        }

        long bytesThere = layout.Manifests.Sum(m => (long)m.Bytes.Length);
        foreach (var blob in layout.Others)
        {
            var size = await client.BlobSizeAsync(repository, blob.Digest, cancellationToken).ConfigureAwait(false);
            if (size is null || (size >= 0 && size != blob.Size))
            {
                throw new BackupException($"blob {blob.Digest} of {repository} is {(size is null ? "missing" : $"{size} bytes")} on {client.Where} after the restore; expected {blob.Size} bytes");
            }

            bytesThere += blob.Size;
        }

        // Blobs the layout holds that no manifest names (none, from Backstop) still count as restored bytes.
        bytesThere += layout.Blobs.Where(b => !manifests.Contains(b.Key) && layout.Others.All(o => o.Digest != b.Key)).Sum(b => b.Value);
        return new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["repositories"] = 1,
            ["tags"] = tags,
            ["manifests"] = layout.Manifests.Count,
            ["blobs"] = layout.Others.Count,
            ["bytes"] = bytesThere,
        };
    }

    internal static List<(Descriptor Manifest, byte[] Bytes)> ChildrenFirst(IEnumerable<Descriptor> top, IReadOnlyDictionary<string, (Descriptor Manifest, byte[] Bytes)> byDigest)
    {
        var order = new List<(Descriptor, byte[])>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Visit(string digest)
        {
            if (!seen.Add(digest) || !byDigest.TryGetValue(digest, out var m))
            {
                return;
            }

            if (RegistryNames.IsIndex(m.Manifest.MediaType))
            {
                foreach (var child in Descriptor.ListOf(m.Bytes, "manifests", m.Manifest.Digest))
                {
                    Visit(child.Digest);
                }
            }

            order.Add(m);
        }

        foreach (var d in top)
        {
            Visit(d.Digest);
        }

        return order;
    }
}
