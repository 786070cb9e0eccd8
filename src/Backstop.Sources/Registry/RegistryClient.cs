using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

using static Backstop.Sources.Registry.RegistryNames;

namespace Backstop.Sources.Registry;

/// <summary>
/// Reading a registry through the distribution API v2 (the OCI distribution specification): catalog and tag lists paged
/// by the <c>Link</c> header (never to another origin), manifests fetched as exact bytes with every manifest media type
/// accepted and their digests checked, blobs streamed, referrers. Pushing is <see cref="RegistryPusher"/>'s, over the
/// same <see cref="RegistrySession"/> (authentication).
/// </summary>
internal sealed class RegistryClient : IDisposable
{
    private readonly RegistrySession session;

    public RegistryClient(Uri url, string? user, SecretRef? password, TimeSpan timeout)
    {
        session = new RegistrySession(url, user, password, timeout);
        Push = new RegistryPusher(session);
    }

    /// <summary>Pushes to the same registry, with the same credentials and tokens.</summary>
    public RegistryPusher Push { get; }

    /// <summary>host:port, for messages.</summary>
    public string Where => session.Where;

    public Uri BaseUri => session.BaseUri;

    /// <summary><c>GET /v2/</c>: reachable, speaks the API, and takes the credentials.</summary>
    public async Task<string> PingAsync(CancellationToken cancellationToken)
    {
        using var response = await session.SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri(session.BaseUri, "v2/")), "", cancellationToken).ConfigureAwait(false);
        await session.EnsureAsync(response, "v2/", cancellationToken).ConfigureAwait(false);
        return response.Headers.TryGetValues("Docker-Distribution-API-Version", out var v) ? string.Join(",", v) : "registry/2.0";
    }

    /// <summary>Every repository, from <c>_catalog</c> paged by its <c>Link</c> header.</summary>
    public async Task<IReadOnlyList<string>> RepositoriesAsync(CancellationToken cancellationToken)
    {
        var names = await PagedAsync("v2/_catalog?n=100", "repositories", "registry:catalog:*", cancellationToken).ConfigureAwait(false);
        foreach (var n in names)
        {
            if (!IsRepository(n))
            {
                throw new BackupException($"the registry at {session.Where} listed a repository named '{Printable(n)}', which is not a repository name; nothing was taken from it");
            }
        }

        return names;
    }

    /// <summary>Every tag of a repository (<c>tags/list</c>, paged); an unknown repository is an error.</summary>
    public async Task<IReadOnlyList<string>> TagsAsync(string repository, CancellationToken cancellationToken)
    {
        var tags = await PagedAsync($"v2/{repository}/tags/list?n=500", "tags", RegistrySession.Scope(repository, "pull"), cancellationToken).ConfigureAwait(false);
        foreach (var t in tags)
        {
            if (!IsTag(t))
            {
                throw new BackupException($"the registry at {session.Where} listed a tag '{Printable(t)}' in {repository}, which is not a tag name; nothing was taken from it");
            }
        }

        return tags;
    }

    private async Task<List<string>> PagedAsync(string first, string property, string scope, CancellationToken cancellationToken)
    {
        var all = new List<string>();
        var next = new Uri(session.BaseUri, first);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (true)
        {
            if (!seen.Add(next.PathAndQuery))
            {
                throw new BackupException($"the registry at {session.Where} sent a Link header that loops back to {next.PathAndQuery}");
            }

            var page = next;
            using var response = await session.SendAsync(() => new HttpRequestMessage(HttpMethod.Get, page), scope, cancellationToken).ConfigureAwait(false);
            await session.EnsureAsync(response, page.PathAndQuery, cancellationToken).ConfigureAwait(false);
            var body = await session.ReadLimitedAsync(response, 16 << 20, page.PathAndQuery, cancellationToken).ConfigureAwait(false);
            try
            {
                using var json = JsonDocument.Parse(body);
                if (json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty(property, out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    all.AddRange(list.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : ""));
                }

                if (all.Count > 1_000_000 || seen.Count > 100_000)
                {
                    throw new BackupException($"the registry at {session.Where} keeps paging {first}: more than a million names or 100,000 pages; refused");
                }
            }
            catch (JsonException e)
            {
                throw new BackupException($"the registry at {session.Where} answered {page.PathAndQuery} with something that is not JSON ({e.Message})");
            }
            catch (InvalidOperationException e)
            {
                throw new BackupException($"the registry at {session.Where} answered {page.PathAndQuery} with a string that is not UTF-8 ({e.Message})");
            }

            if (NextLink(response) is not { } link)
            {
                return all;
            }

            next = new Uri(session.BaseUri, link);
            if (next.GetLeftPart(UriPartial.Authority) != session.BaseUri.GetLeftPart(UriPartial.Authority))
            {
                throw new BackupException($"the registry at {session.Where} sent a Link header to another server ({next.GetLeftPart(UriPartial.Authority)}); refused");
            }
        }
    }

    /// <summary>The target of <c>Link: &lt;…&gt;; rel="next"</c>, if any.</summary>
    internal static string? NextLink(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Link", out var values))
        {
            return null;
        }

        foreach (var part in values.SelectMany(v => v.Split(',')))
        {
            var m = Regex.Match(part, "^\\s*<([^>]*)>\\s*;.*rel=\"?next\"?", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
            if (m.Success)
            {
                return m.Groups[1].Value;
            }
        }

        return null;
    }

    /// <summary>
    /// A manifest as the exact bytes the registry sent, with its media type and digest (the SHA-256 of those bytes,
    /// which must equal the reference when it is a digest, and the <c>Docker-Content-Digest</c> header when sent).
    /// Null when the registry says it does not exist.
    /// </summary>
    public async Task<(byte[] Bytes, string MediaType, string Digest)?> ManifestAsync(string repository, string reference, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/manifests/{reference}";
        using var response = await session.SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, new Uri(session.BaseUri, path));
            foreach (var type in ManifestTypes)
            {
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
            }

            return request;
        }, RegistrySession.Scope(repository, "pull"), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await session.EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        var bytes = await session.ReadLimitedAsync(response, MaxManifestBytes, path, cancellationToken).ConfigureAwait(false);
        var digest = Digest(bytes);
        if (IsDigest(reference) && reference != digest)
        {
            throw new BackupException($"the registry at {session.Where} sent a manifest for {repository}@{reference} whose SHA-256 is {digest}: refused (a corrupt or substituted manifest)");
        }

        if (response.Headers.TryGetValues("Docker-Content-Digest", out var header) && header.FirstOrDefault() is { } said && said != digest)
        {
            throw new BackupException($"the registry at {session.Where} sent {repository}:{reference} saying its digest is {Printable(said)}, but its bytes hash to {digest}");
        }

        // The body says what it is (and must be shaped so): a header or a descriptor that says otherwise is not believed.
        var served = response.Content.Headers.ContentType?.MediaType ?? "";
        var mediaType = MediaTypeOf(bytes) ?? throw new BackupException(
            $"{repository}:{reference} on {session.Where} is not a manifest Backstop takes ({Printable(served)}): only OCI and Docker schema 2 images and indexes");
        if (IsManifest(served) && served != mediaType && !(IsIndex(served) == IsIndex(mediaType) && !HasDeclaredType(bytes)))
        {
            throw new BackupException($"{repository}:{reference} on {session.Where} is served as {Printable(served)} but its body is {mediaType}; refused");
        }

        return (bytes, mediaType, digest);
    }

    /// <summary>A blob's content, streamed (the caller checks its digest and size as it reads).</summary>
    public async Task<HttpResponseMessage> BlobAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/blobs/{digest}";
        var response = await session.SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri(session.BaseUri, path)), RegistrySession.Scope(repository, "pull"), cancellationToken,
            HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        try
        {
            await session.EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
            return response;
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The referrers of a manifest (OCI 1.1 referrers API), as descriptors; null when the registry does not serve
    /// the API (then referrers are found by the cosign-style tag schema, <c>sha256-HEX.sig</c> and the like).
    /// </summary>
    public async Task<IReadOnlyList<Descriptor>?> ReferrersAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/referrers/{digest}";
        using var response = await session.SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, new Uri(session.BaseUri, path));
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciIndex));
            return request;
        }, RegistrySession.Scope(repository, "pull"), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest or HttpStatusCode.MethodNotAllowed)
        {
            return null; // no referrers API here: the cosign tag schema is read instead
        }

        await session.EnsureAsync(response, path, cancellationToken).ConfigureAwait(false); // any other error fails: signatures are never dropped silently
        if (response.Content.Headers.ContentType?.MediaType != OciIndex)
        {
            return null;
        }

        var bytes = await session.ReadLimitedAsync(response, MaxManifestBytes, path, cancellationToken).ConfigureAwait(false);
        return Descriptor.ListOf(bytes, "manifests", $"the referrers of {repository}@{digest} on {session.Where}");
    }

    /// <summary>Whether the registry holds a blob of that digest in that repository (and its size).</summary>
    public async Task<long?> BlobSizeAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/blobs/{digest}";
        using var response = await session.SendAsync(() => new HttpRequestMessage(HttpMethod.Head, new Uri(session.BaseUri, path)), RegistrySession.Scope(repository, "pull,push"), cancellationToken)
            .ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await session.EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        return response.Content.Headers.ContentLength ?? -1;
    }

    public void Dispose() => session.Dispose();
}

/// <summary>An OCI content descriptor: media type, digest, size (checked as a registry or a layout sends them), and annotations.</summary>
internal sealed record Descriptor(string MediaType, string Digest, long Size, IReadOnlyDictionary<string, string> Annotations, string? ArtifactType = null)
{
    /// <summary>The descriptors in a JSON array property of a manifest or index; every digest and size checked.</summary>
    public static IReadOnlyList<Descriptor> ListOf(byte[] json, string property, string what)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(property, out var list) && list.ValueKind == JsonValueKind.Array
                ? list.EnumerateArray().Select(e => From(e, what)).ToList()
                : [];
        }
        catch (JsonException e)
        {
            throw new BackupException($"{what} is not valid JSON ({e.Message})");
        }
        catch (InvalidOperationException e)
        {
            // JsonDocument checks a string's UTF-8 only when it is read: damaged bytes inside a string.
            throw new BackupException($"{what} holds a string that is not UTF-8 ({e.Message})");
        }
    }

    public static Descriptor From(JsonElement e, string what)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw new BackupException($"{what} holds a descriptor that is not an object");
        }

        var digest = e.TryGetProperty("digest", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "";
        if (!RegistryNames.IsDigest(digest))
        {
            throw new BackupException(digest.StartsWith("sha256:", StringComparison.Ordinal) || digest.Length == 0
                ? $"{what} holds a descriptor with an invalid digest '{RegistryNames.Printable(digest)}'"
                : $"{what} holds a digest '{RegistryNames.Printable(digest)}' of an algorithm Backstop does not check (sha256 only)");
        }

        var size = e.TryGetProperty("size", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out var n) && n >= 0
            ? n
            : throw new BackupException($"{what} holds a descriptor of {digest} without a valid size");
        var mediaType = e.TryGetProperty("mediaType", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "";
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal);
        if (e.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in a.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.String))
            {
                annotations[p.Name] = p.Value.GetString()!;
            }
        }

        var artifactType = e.TryGetProperty("artifactType", out var at) && at.ValueKind == JsonValueKind.String ? at.GetString() : null;
        return new Descriptor(mediaType, digest, size, annotations, artifactType);
    }
}
