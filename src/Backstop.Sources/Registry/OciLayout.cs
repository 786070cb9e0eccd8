using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Backstop.Core.Plugins;
using Backstop.Core.Streams;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Registry;

/// <summary>
/// An OCI image layout (image-spec <c>image-layout.md</c>) written as a tar stream: <c>oci-layout</c>, every blob under
/// <c>blobs/sha256/HEX</c> (manifests as the exact bytes the registry sent), and <c>index.json</c> last, with an
/// <c>org.opencontainers.image.ref.name</c> annotation per tag. <c>skopeo copy oci-archive:FILE:TAG</c> reads it, and
/// so does <c>tar -x</c> then <c>skopeo copy oci:DIR:TAG</c>. Blobs are streamed; each is checked against its digest
/// and size as it is written, and a mismatch fails the artifact.
/// </summary>
internal sealed class OciLayoutWriter : IAsyncDisposable
{
    public const string RefName = "org.opencontainers.image.ref.name";
    private static readonly DateTimeOffset Epoch = DateTimeOffset.UnixEpoch;
    private readonly TarWriter _tar;
    private readonly HashSet<string> _written = new(StringComparer.Ordinal);

    private OciLayoutWriter(Stream output) => _tar = new TarWriter(output, TarEntryFormat.Ustar, leaveOpen: true);

    public long Bytes { get; private set; }

    public static async Task<OciLayoutWriter> CreateAsync(Stream output, CancellationToken cancellationToken)
    {
        var writer = new OciLayoutWriter(output);
        await writer.FileAsync("oci-layout", """{"imageLayoutVersion":"1.0.0"}"""u8.ToArray(), cancellationToken).ConfigureAwait(false);
        foreach (var dir in new[] { "blobs/", "blobs/sha256/" })
        {
            await writer._tar.WriteEntryAsync(new UstarTarEntry(TarEntryType.Directory, dir) { Mode = DirMode, ModificationTime = Epoch }, cancellationToken).ConfigureAwait(false);
        }

        return writer;
    }

    public bool Has(string digest) => _written.Contains(digest);

    /// <summary>A blob whose bytes are in hand (a manifest): its digest is what they hash to.</summary>
    public async Task AddAsync(string digest, byte[] bytes, CancellationToken cancellationToken)
    {
        if (RegistryNames.Digest(bytes) != digest)
        {
            throw new BackupException($"blob {digest} does not hash to its digest");
        }

        if (_written.Add(digest))
        {
            await FileAsync(BlobPath(digest), bytes, cancellationToken).ConfigureAwait(false);
            Bytes += bytes.Length;
        }
    }

    /// <summary>A streamed blob: exactly <paramref name="size"/> bytes that must hash to <paramref name="digest"/>.</summary>
    public async Task AddAsync(string digest, long size, Stream content, string what, CancellationToken cancellationToken)
    {
        if (!_written.Add(digest))
        {
            return;
        }

        await using var checkedContent = new DigestCheckedStream(content, size, digest, what);
        await _tar.WriteEntryAsync(new UstarTarEntry(TarEntryType.RegularFile, BlobPath(digest)) { Mode = FileMode, ModificationTime = Epoch, DataStream = checkedContent },
            cancellationToken).ConfigureAwait(false);
        checkedContent.EnsureComplete();
        Bytes += size;
    }

    /// <summary>Writes <c>index.json</c>: the tags (each with its ref name) and the untagged manifests kept (referrers).</summary>
    public Task FinishAsync(IEnumerable<Descriptor> manifests, IReadOnlyDictionary<string, string> annotations, CancellationToken cancellationToken) =>
        FileAsync("index.json", IndexJson(manifests, annotations), cancellationToken);

    public static byte[] IndexJson(IEnumerable<Descriptor> manifests, IReadOnlyDictionary<string, string> annotations)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("schemaVersion", 2);
            json.WriteString("mediaType", RegistryNames.OciIndex);
            json.WriteStartArray("manifests");
            foreach (var d in manifests)
            {
                json.WriteStartObject();
                json.WriteString("mediaType", d.MediaType);
                json.WriteString("digest", d.Digest);
                json.WriteNumber("size", d.Size);
                if (d.ArtifactType is { } at)
                {
                    json.WriteString("artifactType", at);
                }

                if (d.Annotations.Count > 0)
                {
                    json.WriteStartObject("annotations");
                    foreach (var (k, v) in d.Annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
                    {
                        json.WriteString(k, v);
                    }

                    json.WriteEndObject();
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            if (annotations.Count > 0)
            {
                json.WriteStartObject("annotations");
                foreach (var (k, v) in annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
                {
                    json.WriteString(k, v);
                }

                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private async Task FileAsync(string name, byte[] bytes, CancellationToken cancellationToken)
    {
        using var data = new MemoryStream(bytes, writable: false);
        await _tar.WriteEntryAsync(new UstarTarEntry(TarEntryType.RegularFile, name) { Mode = FileMode, ModificationTime = Epoch, DataStream = data }, cancellationToken)
            .ConfigureAwait(false);
    }

    public static string BlobPath(string digest) => "blobs/sha256/" + digest["sha256:".Length..];

    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private const UnixFileMode DirMode = FileMode | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    public ValueTask DisposeAsync() => _tar.DisposeAsync();
}

/// <summary>
/// Exactly <c>size</c> bytes of a blob, hashed as they pass: a stream that ends early, runs long or hashes to another
/// digest throws, naming the blob. Seekable only so that the tar writer reads the length up front.
/// </summary>
internal sealed class DigestCheckedStream(Stream inner, long size, string digest, string what, IDisposable? owner = null) : KnownLengthStream(size)
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private bool _checked;

    public override int Read(Span<byte> buffer)
    {
        var want = (int)Math.Min(buffer.Length, Length - Consumed);
        if (want == 0)
        {
            Check();
            return 0;
        }

        var n = inner.Read(buffer[..want]);
        return Account(buffer[..n]);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var want = (int)Math.Min(buffer.Length, Length - Consumed);
        if (want == 0)
        {
            await CheckAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }

        var n = await inner.ReadAsync(buffer[..want], cancellationToken).ConfigureAwait(false);
        return Account(buffer.Span[..n]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Account(ReadOnlySpan<byte> read)
    {
        if (read.Length == 0)
        {
            throw new BackupException($"{what} ended after {Consumed.ToString(CultureInfo.InvariantCulture)} of its {Length.ToString(CultureInfo.InvariantCulture)} bytes");
        }

        _hash.AppendData(read);
        Consumed += read.Length;
        return read.Length;
    }

    /// <summary>After the last byte: nothing more may follow, and the hash must be the digest.</summary>
    public void EnsureComplete()
    {
        if (Consumed != Length)
        {
            throw new BackupException($"{what} ended after {Consumed.ToString(CultureInfo.InvariantCulture)} of its {Length.ToString(CultureInfo.InvariantCulture)} bytes");
        }

        Check();
    }

    private void Check()
    {
        if (_checked)
        {
            return;
        }

        Span<byte> one = stackalloc byte[1];
        if (inner.Read(one) > 0)
        {
            throw new BackupException($"{what} has more than the {Length.ToString(CultureInfo.InvariantCulture)} bytes its descriptor says");
        }

        Verify();
    }

    private async Task CheckAsync(CancellationToken cancellationToken)
    {
        if (_checked)
        {
            return;
        }

        var one = new byte[1];
        if (await inner.ReadAsync(one, cancellationToken).ConfigureAwait(false) > 0)
        {
            throw new BackupException($"{what} has more than the {Length.ToString(CultureInfo.InvariantCulture)} bytes its descriptor says");
        }

        Verify();
    }

    private void Verify()
    {
        _checked = true;
        var actual = "sha256:" + Convert.ToHexStringLower(_hash.GetHashAndReset());
        if (actual != digest)
        {
            throw new BackupException($"{what} hashes to {actual}, not to its digest {digest}: a corrupt or substituted blob");
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
            if (owner is not null)
            {
                inner.Dispose();
                owner.Dispose();
            }
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// Reads an OCI layout tar as stored (the validator, the restore): only <c>oci-layout</c>, <c>index.json</c> and
/// <c>blobs/sha256/HEX</c> regular files (and their folders) are allowed, never a link or a path elsewhere; every blob
/// is hashed against its name; small JSON blobs are kept to walk the graph from <c>index.json</c>, in which every
/// manifest must be present with its size; a config or layer the layout does not hold is external (Backstop stores
/// them apart, shared between snapshots, and lists them in the snapshot's manifest).
/// </summary>
internal static class OciLayoutReader
{
    private const long KeptLimit = 256L << 20;

    /// <summary>What a layout holds once read.</summary>
    public sealed record Layout(
        IReadOnlyList<Descriptor> Index,
        IReadOnlyDictionary<string, long> Blobs,
        IReadOnlyDictionary<string, byte[]> Kept,
        IReadOnlyList<(Descriptor Manifest, byte[] Bytes)> Manifests,
        IReadOnlyList<Descriptor> Others)
    {
        /// <summary>The configs and layers the manifests name that the layout does not hold: stored apart, shared (Backstop's blobs/).</summary>
        public IReadOnlyList<Descriptor> External => Others.Where(o => !Blobs.ContainsKey(o.Digest)).ToList();

        public IReadOnlyList<(string Tag, Descriptor Manifest)> Tags =>
            Index.Where(d => d.Annotations.ContainsKey(OciLayoutWriter.RefName)).Select(d => (d.Annotations[OciLayoutWriter.RefName], d)).ToList();

        public IReadOnlyDictionary<string, long> Facts => new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["repositories"] = 1,
            ["tags"] = Tags.Count,
            ["manifests"] = Manifests.Count,
            ["blobs"] = Others.Count,
            ["bytes"] = Blobs.Values.Sum() + External.Sum(e => e.Size),
        };
    }

    /// <param name="large">Called with each blob too large to keep (or not JSON), streamed: the restore pushes it there.</param>
    public static async Task<Layout> ReadAsync(Stream tar, Func<string, long, Stream, Task>? large, string what, CancellationToken cancellationToken)
    {
        // Read as a forward-only stream, whatever the caller's stream says it can do: the tar is read once, in order.
        var reader = new TarReader(new ForwardOnlyStream(tar), leaveOpen: true);
        var blobs = new Dictionary<string, long>(StringComparer.Ordinal);
        var kept = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        long keptBytes = 0;
        byte[]? index = null;
        var layoutSeen = false;
        while (await TarEntries.NextAsync(reader, what, cancellationToken).ConfigureAwait(false) is { } entry)
        {
            var name = entry.Name.StartsWith("./", StringComparison.Ordinal) ? entry.Name[2..] : entry.Name;
            if (entry.EntryType == TarEntryType.Directory && name.TrimEnd('/') is "" or "blobs" or "blobs/sha256")
            {
                continue;
            }

            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
            {
                throw new BackupException($"{what}: the layout holds '{RegistryNames.Printable(name)}', a {entry.EntryType}; an OCI layout has only files and folders");
            }

            var data = entry.DataStream ?? Stream.Null;
            if (name == "oci-layout")
            {
                var bytes = await ReadSmallAsync(data, 4096, what + " oci-layout", cancellationToken).ConfigureAwait(false);
                try
                {
                    using var json = JsonDocument.Parse(bytes);
                    layoutSeen = json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("imageLayoutVersion", out _);
                }
                catch (JsonException)
                {
                    layoutSeen = false;
                }

                continue;
            }

            if (name == "index.json")
            {
                index = await ReadSmallAsync(data, RegistryNames.MaxManifestBytes * 4, what + " index.json", cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (!name.StartsWith("blobs/sha256/", StringComparison.Ordinal) || !RegistryNames.IsDigest("sha256:" + name["blobs/sha256/".Length..]))
            {
                throw new BackupException($"{what}: the layout holds '{RegistryNames.Printable(name)}', which is not oci-layout, index.json or blobs/sha256/<hex>");
            }

            var digest = "sha256:" + name["blobs/sha256/".Length..];
            if (blobs.ContainsKey(digest))
            {
                throw new BackupException($"{what}: the layout holds blob {digest} twice");
            }

            var size = entry.Length;
            blobs[digest] = size;
            var blobWhat = $"{what}: blob {digest}";
            if (size <= RegistryNames.MaxManifestBytes && keptBytes + size > KeptLimit)
            {
                throw new BackupException($"{what}: its manifests pass {KeptLimit >> 20} MiB; no repository's are that large");
            }

            if (size <= RegistryNames.MaxManifestBytes)
            {
                var bytes = await ReadSmallAsync(data, (int)size, blobWhat, cancellationToken).ConfigureAwait(false);
                if (RegistryNames.Digest(bytes) != digest)
                {
                    throw new BackupException($"{blobWhat} hashes to {RegistryNames.Digest(bytes)}, not to its name: a corrupt or substituted blob");
                }

                if (RegistryNames.MediaTypeOf(bytes) is not null)
                {
                    kept[digest] = bytes; // a manifest: what the graph is walked from (its bytes are small)
                    keptBytes += size;
                }
                else if (large is not null)
                {
                    using var again = new MemoryStream(bytes, writable: false);
                    await large(digest, size, again).ConfigureAwait(false);
                }

                continue;
            }

            await using var checkedData = new DigestCheckedStream(data, size, digest, blobWhat);
            if (large is not null)
            {
                await large(digest, size, checkedData).ConfigureAwait(false);
            }

            await checkedData.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false); // what the callback left, and the check
            checkedData.EnsureComplete();
        }

        if (!layoutSeen)
        {
            throw new BackupException($"{what}: no oci-layout file with an imageLayoutVersion; this is not an OCI image layout");
        }

        if (index is null)
        {
            throw new BackupException($"{what}: no index.json; the layout was cut short");
        }

        var top = Descriptor.ListOf(index, "manifests", what + " index.json");
        foreach (var d in top)
        {
            // Tags become URL paths on restore: held to the tag grammar (no '/', '?', '..'), like names from a registry.
            if (d.Annotations.TryGetValue(OciLayoutWriter.RefName, out var tag) && !RegistryNames.IsTag(tag))
            {
                throw new BackupException($"{what}: index.json tags {d.Digest} as '{RegistryNames.Printable(tag)}', which is not a tag");
            }
        }

        var manifests = new List<(Descriptor, byte[])>();
        var others = new Dictionary<string, Descriptor>(StringComparer.Ordinal);
        var visited = new HashSet<string>(StringComparer.Ordinal);
        void Walk(Descriptor d, int depth)
        {
            if (depth > 8)
            {
                throw new BackupException($"{what}: manifests nested more than 8 deep at {d.Digest}");
            }

            if (!visited.Add(d.Digest))
            {
                return;
            }

            if (!kept.TryGetValue(d.Digest, out var bytes))
            {
                throw new BackupException(blobs.ContainsKey(d.Digest)
                    ? $"{what}: manifest {d.Digest} is not JSON"
                    : $"{what}: index.json or a manifest names {d.Digest}, which the layout does not hold");
            }

            if (bytes.Length != d.Size)
            {
                throw new BackupException($"{what}: manifest {d.Digest} is {bytes.Length} bytes, its descriptor says {d.Size}");
            }

            var mediaType = RegistryNames.MediaTypeOf(bytes)
                            ?? throw new BackupException($"{what}: {d.Digest} is not a manifest of a known type ({RegistryNames.Printable(d.MediaType)})");
            if (RegistryNames.IsManifest(d.MediaType) && RegistryNames.IsIndex(d.MediaType) != RegistryNames.IsIndex(mediaType))
            {
                throw new BackupException($"{what}: {d.Digest} is named as {RegistryNames.Printable(d.MediaType)} but is {mediaType}");
            }

            manifests.Add((d with { MediaType = mediaType }, bytes));
            if (RegistryNames.IsIndex(mediaType))
            {
                foreach (var child in Descriptor.ListOf(bytes, "manifests", $"{what}: index {d.Digest}"))
                {
                    Walk(child, depth + 1);
                }

                return;
            }

            var parts = RegistrySource.Parts(bytes, $"{what}: manifest {d.Digest}");
            foreach (var (part, foreign) in parts)
            {
                if (blobs.TryGetValue(part.Digest, out var size))
                {
                    if (size != part.Size)
                    {
                        throw new BackupException($"{what}: blob {part.Digest} is {size} bytes, manifest {d.Digest} says {part.Size}");
                    }

                    others.TryAdd(part.Digest, part);
                }
                else if (!foreign)
                {
                    // Stored apart, among the source's shared blobs (the snapshot lists them): restore reads them from there.
                    if (kept.ContainsKey(part.Digest) || part.Size < 0)
                    {
                        throw new BackupException($"{what}: manifest {d.Digest} names blob {part.Digest} as a config or layer of {part.Size} bytes");
                    }

                    if (others.TryGetValue(part.Digest, out var seen) && seen.Size != part.Size)
                    {
                        throw new BackupException($"{what}: blob {part.Digest} is named with {seen.Size} and with {part.Size} bytes");
                    }

                    others.TryAdd(part.Digest, part);
                }
            }
        }

        foreach (var d in top)
        {
            Walk(d, 0);
        }

        return new Layout(top, blobs, kept, manifests, others.Values.ToList());
    }

    private static Task<byte[]> ReadSmallAsync(Stream data, int limit, string what, CancellationToken cancellationToken) =>
        Core.Text.ServerText.ReadAtMostAsync(data, limit, () => new BackupException($"{what} is larger than {limit} bytes"), cancellationToken);

    /// <summary>The name Backstop gives a repository's layout artifact, and back.</summary>
    public static string ArtifactName(string repository) => Core.Text.SafeNames.Encode(repository) + ".oci.tar";

    public static string? RepositoryOf(string artifact)
    {
        if (!artifact.EndsWith(".oci.tar", StringComparison.Ordinal))
        {
            return null;
        }

        var repository = Uri.UnescapeDataString(artifact[..^".oci.tar".Length]);
        return RegistryNames.IsRepository(repository) ? repository : null;
    }

    internal static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
