using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Registry;

/// <summary>
/// A client of the distribution API v2 (the OCI distribution specification): catalog and tag lists paged by the
/// <c>Link</c> header, manifests fetched as exact bytes with every manifest media type accepted, blobs streamed,
/// referrers, and pushes (blob uploads, cross-repository mounts, manifests). Authentication: HTTP basic, or the bearer
/// token flow of the registry token specification (a 401 with <c>WWW-Authenticate: Bearer realm=…,service=…,scope=…</c>
/// sends the credentials to the realm and retries with the token). Everything a registry sends is checked: names,
/// digests, sizes and <c>Link</c> targets (never another origin).
/// </summary>
internal sealed partial class RegistryClient : IDisposable
{
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string DockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";

    /// <summary>Manifests larger than this are refused (the distribution registry's own limit is 4 MiB).</summary>
    public const int MaxManifestBytes = 4 << 20;

    public static readonly string[] ManifestTypes = [OciIndex, OciManifest, DockerList, DockerManifest];

    private readonly HttpClient _http;
    private readonly Uri _base;
    private readonly string? _user;
    private readonly SecretRef? _password;
    private readonly Dictionary<string, string> _tokens = new(StringComparer.Ordinal);
    private bool _basicChallenged;

    public RegistryClient(Uri url, string? user, SecretRef? password, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(url);
        _base = new Uri(url.GetLeftPart(UriPartial.Authority) + "/");
        _user = user;
        _password = password;
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(15), AllowAutoRedirect = true, MaxAutomaticRedirections = 5 })
        {
            Timeout = timeout,
        };
    }

    /// <summary>host:port, for messages.</summary>
    public string Where => $"{_base.Host}:{_base.Port.ToString(CultureInfo.InvariantCulture)}";

    public Uri BaseUri => _base;

    [GeneratedRegex("^[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*$")]
    private static partial Regex RepositoryPattern();

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex TagPattern();

    [GeneratedRegex("^sha256:[a-f0-9]{64}$")]
    private static partial Regex DigestPattern();

    public static bool IsRepository(string name) => name.Length <= 255 && RepositoryPattern().IsMatch(name);

    public static bool IsTag(string tag) => TagPattern().IsMatch(tag);

    public static bool IsDigest(string digest) => DigestPattern().IsMatch(digest);

    public static bool IsIndex(string mediaType) => mediaType is OciIndex or DockerList;

    public static bool IsManifest(string mediaType) => mediaType is OciIndex or OciManifest or DockerList or DockerManifest;

    public static string Digest(ReadOnlySpan<byte> bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary><c>GET /v2/</c>: reachable, speaks the API, and takes the credentials.</summary>
    public async Task<string> PingAsync(CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri(_base, "v2/")), "", cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, "v2/", cancellationToken).ConfigureAwait(false);
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
                throw new BackupException($"the registry at {Where} listed a repository named '{Printable(n)}', which is not a repository name; nothing was taken from it");
            }
        }

        return names;
    }

    /// <summary>Every tag of a repository (<c>tags/list</c>, paged); an unknown repository is an error.</summary>
    public async Task<IReadOnlyList<string>> TagsAsync(string repository, CancellationToken cancellationToken)
    {
        var tags = await PagedAsync($"v2/{repository}/tags/list?n=500", "tags", Scope(repository, "pull"), cancellationToken).ConfigureAwait(false);
        foreach (var t in tags)
        {
            if (!IsTag(t))
            {
                throw new BackupException($"the registry at {Where} listed a tag '{Printable(t)}' in {repository}, which is not a tag name; nothing was taken from it");
            }
        }

        return tags;
    }

    private async Task<List<string>> PagedAsync(string first, string property, string scope, CancellationToken cancellationToken)
    {
        var all = new List<string>();
        var next = new Uri(_base, first);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (true)
        {
            if (!seen.Add(next.PathAndQuery))
            {
                throw new BackupException($"the registry at {Where} sent a Link header that loops back to {next.PathAndQuery}");
            }

            var page = next;
            using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, page), scope, cancellationToken).ConfigureAwait(false);
            await EnsureAsync(response, page.PathAndQuery, cancellationToken).ConfigureAwait(false);
            var body = await ReadLimitedAsync(response, 16 << 20, page.PathAndQuery, cancellationToken).ConfigureAwait(false);
            try
            {
                using var json = JsonDocument.Parse(body);
                if (json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty(property, out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    all.AddRange(list.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : ""));
                }

                if (all.Count > 1_000_000 || seen.Count > 100_000)
                {
                    throw new BackupException($"the registry at {Where} keeps paging {first}: more than a million names or 100,000 pages; refused");
                }
            }
            catch (JsonException e)
            {
                throw new BackupException($"the registry at {Where} answered {page.PathAndQuery} with something that is not JSON ({e.Message})");
            }
            catch (InvalidOperationException e)
            {
                throw new BackupException($"the registry at {Where} answered {page.PathAndQuery} with a string that is not UTF-8 ({e.Message})");
            }

            if (NextLink(response) is not { } link)
            {
                return all;
            }

            next = new Uri(_base, link);
            if (next.GetLeftPart(UriPartial.Authority) != _base.GetLeftPart(UriPartial.Authority))
            {
                throw new BackupException($"the registry at {Where} sent a Link header to another server ({next.GetLeftPart(UriPartial.Authority)}); refused");
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
        using var response = await SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_base, path));
            foreach (var type in ManifestTypes)
            {
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
            }

            return request;
        }, Scope(repository, "pull"), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        var bytes = await ReadLimitedAsync(response, MaxManifestBytes, path, cancellationToken).ConfigureAwait(false);
        var digest = Digest(bytes);
        if (IsDigest(reference) && reference != digest)
        {
            throw new BackupException($"the registry at {Where} sent a manifest for {repository}@{reference} whose SHA-256 is {digest}: refused (a corrupt or substituted manifest)");
        }

        if (response.Headers.TryGetValues("Docker-Content-Digest", out var header) && header.FirstOrDefault() is { } said && said != digest)
        {
            throw new BackupException($"the registry at {Where} sent {repository}:{reference} saying its digest is {Printable(said)}, but its bytes hash to {digest}");
        }

        // The body says what it is (and must be shaped so): a header or a descriptor that says otherwise is not believed.
        var served = response.Content.Headers.ContentType?.MediaType ?? "";
        var mediaType = MediaTypeOf(bytes) ?? throw new BackupException(
            $"{repository}:{reference} on {Where} is not a manifest Backstop takes ({Printable(served)}): only OCI and Docker schema 2 images and indexes");
        if (IsManifest(served) && served != mediaType && !(IsIndex(served) == IsIndex(mediaType) && !HasDeclaredType(bytes)))
        {
            throw new BackupException($"{repository}:{reference} on {Where} is served as {Printable(served)} but its body is {mediaType}; refused");
        }

        return (bytes, mediaType, digest);
    }

    /// <summary>
    /// What a manifest's JSON is: the <c>mediaType</c> it declares when it is one this client knows and the body has
    /// that shape (an index its <c>manifests</c>, an image its <c>config</c> and <c>layers</c>), or, for an OCI body that
    /// leaves the field out, what its shape says. Null for anything else (a config blob, a layer, another type).
    /// </summary>
    public static string? MediaTypeOf(byte[] bytes)
    {
        if (bytes.Length == 0 || bytes.Length > MaxManifestBytes)
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(bytes);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            var index = root.TryGetProperty("manifests", out var m) && m.ValueKind == JsonValueKind.Array;
            var image = root.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object && root.TryGetProperty("layers", out var l) && l.ValueKind == JsonValueKind.Array;
            if (root.TryGetProperty("mediaType", out var mt))
            {
                var declared = mt.ValueKind == JsonValueKind.String ? mt.GetString()! : "";
                return IsManifest(declared) && (IsIndex(declared) ? index && !image : image && !index) ? declared : null;
            }

            return index && !image ? OciIndex : image && !index ? OciManifest : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return null; // not JSON, or a string in it that is not UTF-8 (JsonDocument checks that only when it is read)
        }
    }

    private static bool HasDeclaredType(byte[] bytes)
    {
        try
        {
            using var json = JsonDocument.Parse(bytes);
            return json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("mediaType", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>A blob's content, streamed (the caller checks its digest and size as it reads).</summary>
    public async Task<HttpResponseMessage> BlobAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/blobs/{digest}";
        var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, new Uri(_base, path)), Scope(repository, "pull"), cancellationToken,
            HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        try
        {
            await EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
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
        using var response = await SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_base, path));
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(OciIndex));
            return request;
        }, Scope(repository, "pull"), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest or HttpStatusCode.MethodNotAllowed)
        {
            return null; // no referrers API here: the cosign tag schema is read instead
        }

        await EnsureAsync(response, path, cancellationToken).ConfigureAwait(false); // any other error fails: signatures are never dropped silently
        if (response.Content.Headers.ContentType?.MediaType != OciIndex)
        {
            return null;
        }

        var bytes = await ReadLimitedAsync(response, MaxManifestBytes, path, cancellationToken).ConfigureAwait(false);
        return Descriptor.ListOf(bytes, "manifests", $"the referrers of {repository}@{digest} on {Where}");
    }

    /// <summary>Whether the registry holds a blob of that digest in that repository (and its size).</summary>
    public async Task<long?> BlobSizeAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/blobs/{digest}";
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Head, new Uri(_base, path)), Scope(repository, "pull,push"), cancellationToken)
            .ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        return response.Content.Headers.ContentLength ?? -1;
    }

    /// <summary>
    /// Puts a blob into a repository: mounted from another repository of the same registry when given and allowed
    /// (no bytes sent), else uploaded whole (one PUT of the streamed content, its digest named for the registry to check).
    /// Returns whether it was mounted.
    /// </summary>
    public async Task<bool> PushBlobAsync(string repository, string digest, long size, Func<Stream> content, string? mountFrom, CancellationToken cancellationToken)
    {
        var start = mountFrom is not null
            ? $"v2/{repository}/blobs/uploads/?mount={Uri.EscapeDataString(digest)}&from={Uri.EscapeDataString(mountFrom)}"
            : $"v2/{repository}/blobs/uploads/";
        var scope = mountFrom is not null ? $"{Scope(repository, "pull,push")} {Scope(mountFrom, "pull")}" : Scope(repository, "pull,push");
        Uri location;
        using (var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Post, new Uri(_base, start)) { Content = new ByteArrayContent([]) }, scope, cancellationToken)
                   .ConfigureAwait(false))
        {
            if (response.StatusCode == HttpStatusCode.Created && mountFrom is not null)
            {
                return true;
            }

            await EnsureAsync(response, start, cancellationToken).ConfigureAwait(false);
            location = response.Headers.Location is { } l ? new Uri(_base, l) : throw new BackupException($"the registry at {Where} started an upload to {repository} without a Location");
            if (location.GetLeftPart(UriPartial.Authority) != _base.GetLeftPart(UriPartial.Authority))
            {
                throw new BackupException($"the registry at {Where} sent the upload to another server ({location.GetLeftPart(UriPartial.Authority)}); refused");
            }
        }

        var put = new UriBuilder(location) { Query = (location.Query.TrimStart('?') is { Length: > 0 } q ? q + "&" : "") + "digest=" + Uri.EscapeDataString(digest) }.Uri;
        using (var response = await SendAsync(() =>
               {
                   var body = new StreamContent(content());
                   body.Headers.ContentLength = size;
                   body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                   return new HttpRequestMessage(HttpMethod.Put, put) { Content = body };
               }, scope, cancellationToken).ConfigureAwait(false)) // the scope the upload began with: its token is held, so the body is sent once
        {
            await EnsureAsync(response, $"v2/{repository}/blobs/uploads/…", cancellationToken).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>Puts a manifest's exact bytes under a reference (its digest, or a tag).</summary>
    public async Task PutManifestAsync(string repository, string reference, byte[] bytes, string mediaType, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/manifests/{reference}";
        using var response = await SendAsync(() =>
        {
            var body = new ByteArrayContent(bytes);
            body.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            return new HttpRequestMessage(HttpMethod.Put, new Uri(_base, path)) { Content = body };
        }, Scope(repository, "pull,push"), cancellationToken).ConfigureAwait(false);
        await EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var said) && said.FirstOrDefault() is { } d && d != Digest(bytes))
        {
            throw new BackupException($"the registry at {Where} stored {repository}:{reference} as {Printable(d)}, not as the {Digest(bytes)} sent");
        }
    }

    /// <summary>Deletes a manifest by digest; false when the registry does not allow deletes.</summary>
    public async Task<bool> DeleteManifestAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        var path = $"v2/{repository}/manifests/{digest}";
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, new Uri(_base, path)), Scope(repository, "delete"), cancellationToken)
            .ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            return response.StatusCode == HttpStatusCode.NotFound;
        }

        await EnsureAsync(response, path, cancellationToken).ConfigureAwait(false);
        return true;
    }

    private static string Scope(string repository, string actions) => $"repository:{repository}:{actions}";

    /// <summary>
    /// Sends a request with the credentials the registry asked for: the bearer token for the scope when one was
    /// issued, basic credentials when it asked for them; on a 401 the challenge is answered once and the request sent again.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> make, string scope, CancellationToken cancellationToken,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var request = make();
            // Credentials and tokens go to the registry's own origin only: an upload location or a link it sends may
            // name another host, which gets the request without them.
            var own = request.RequestUri is not { IsAbsoluteUri: true } uri
                      || Uri.Compare(uri, _base, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
            if (own && _tokens.TryGetValue(scope, out var token))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            else if (own && _basicChallenged && _user is not null)
            {
                request.Headers.Authorization = Basic();
            }

            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new BackupException($"the registry at {Where} cannot be reached ({e.Message}); is it running and listening there?", e);
            }
            catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new BackupException($"the registry at {Where} did not answer within {_http.Timeout.TotalSeconds:0} s", e);
            }

            if (response.StatusCode != HttpStatusCode.Unauthorized || attempt > 0)
            {
                return response;
            }

            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
            response.Dispose();
            if (challenge is null)
            {
                throw new BackupException($"the registry at {Where} refused the request (401) without saying how to authenticate");
            }

            if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
            {
                if (_user is null)
                {
                    throw new BackupException($"the registry at {Where} requires credentials: set user and password on the source");
                }

                _basicChallenged = true;
                continue;
            }

            if (!challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            {
                throw new BackupException($"the registry at {Where} asks for {Printable(challenge.Scheme)} authentication, which Backstop does not speak (basic and bearer tokens only)");
            }

            _tokens[scope] = await TokenAsync(challenge.Parameter ?? "", scope, cancellationToken).ConfigureAwait(false);
        }
    }

    private AuthenticationHeaderValue Basic() =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_user}:{_password?.Resolve() ?? ""}")));

    /// <summary>The registry token specification: GET realm?service=…&amp;scope=… (with basic credentials), JSON {token | access_token}.</summary>
    private async Task<string> TokenAsync(string parameters, string scope, CancellationToken cancellationToken)
    {
        var fields = ParseChallenge(parameters);
        if (!fields.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri) || realmUri.Scheme is not ("http" or "https"))
        {
            throw new BackupException($"the registry at {Where} asks for a token without a usable realm ({Printable(parameters)})");
        }

        var query = new List<string>();
        if (fields.TryGetValue("service", out var service))
        {
            query.Add("service=" + Uri.EscapeDataString(service));
        }

        foreach (var s in (fields.TryGetValue("scope", out var asked) ? asked : scope).Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            query.Add("scope=" + Uri.EscapeDataString(s));
        }

        var url = new UriBuilder(realmUri) { Query = string.Join('&', query) }.Uri;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        // Credentials go only over TLS, or in clear to the host of a registry itself reached in clear: a registry cannot
        // send them elsewhere, nor down from TLS to plain HTTP.
        if (_user is not null && (realmUri.Scheme == "https" || (_base.Scheme == "http" && realmUri.Host == _base.Host)))
        {
            request.Headers.Authorization = Basic();
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new BackupException($"the token service {realmUri.GetLeftPart(UriPartial.Authority)} of the registry at {Where} cannot be reached ({e.Message})", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackupException($"the token service {realmUri.GetLeftPart(UriPartial.Authority)} of the registry at {Where} did not answer in time", e);
        }

        using (response)
        {
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                throw new BackupException($"the token service of the registry at {Where} refused {(_user is null ? "an anonymous request: set user and password on the source" : $"the credentials of '{_user}'")} (HTTP {(int)response.StatusCode})");
            }

            await EnsureAsync(response, realmUri.AbsolutePath, cancellationToken).ConfigureAwait(false);
            var body = await ReadLimitedAsync(response, 1 << 20, "token", cancellationToken).ConfigureAwait(false);
            try
            {
                using var json = JsonDocument.Parse(body);
                foreach (var name in json.RootElement.ValueKind == JsonValueKind.Object ? new[] { "token", "access_token" } : [])
                {
                    if (json.RootElement.TryGetProperty(name, out var t) && t.ValueKind == JsonValueKind.String && t.GetString() is { Length: > 0 } value)
                    {
                        return value;
                    }
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                // not JSON, or a string in it that is not UTF-8: no token
            }

            throw new BackupException($"the token service of the registry at {Where} answered without a token");
        }
    }

    /// <summary><c>realm="…",service="…",scope="…"</c> into its fields.</summary>
    internal static Dictionary<string, string> ParseChallenge(string parameters)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (Match m in Regex.Matches(parameters, "(\\w+)=(?:\"([^\"]*)\"|([^,\\s]*))", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
        {
            fields[m.Groups[1].Value] = m.Groups[2].Success ? m.Groups[2].Value : m.Groups[3].Value;
        }

        return fields;
    }

    private async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var detail = "";
        try
        {
            var body = await ReadLimitedAsync(response, 64 << 10, what, cancellationToken).ConfigureAwait(false);
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
            {
                detail = ": " + string.Join("; ", errors.EnumerateArray().Select(e =>
                    $"{(e.TryGetProperty("code", out var c) ? c.GetString() : "")} {(e.TryGetProperty("message", out var m) ? m.GetString() : "")}".Trim()).Select(Printable));
            }
        }
        catch (Exception e) when (e is JsonException or BackupException or HttpRequestException or IOException or InvalidOperationException)
        {
        }

        var hint = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized => " (the credentials were refused: check user and password)",
            HttpStatusCode.Forbidden => " (the credentials lack the right for this)",
            HttpStatusCode.NotFound => " (no such repository or object)",
            _ => "",
        };
        throw new BackupException($"the registry at {Where} answered {Printable(what)} with HTTP {(int)response.StatusCode}{detail}{hint}");
    }

    private async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, int limit, string what, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > limit)
        {
            throw new BackupException($"the registry at {Where} sent {Printable(what)} of {response.Content.Headers.ContentLength} bytes, more than the {limit} taken");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        return await Core.Util.ServerText.ReadAtMostAsync(stream, limit,
            () => new BackupException($"the registry at {Where} sent more than {limit} bytes for {Printable(what)}; refused"), cancellationToken).ConfigureAwait(false);
    }

    internal static string Printable(string text) => Core.Util.ServerText.Printable(text);

    public void Dispose() => _http.Dispose();
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
        if (!RegistryClient.IsDigest(digest))
        {
            throw new BackupException(digest.StartsWith("sha256:", StringComparison.Ordinal) || digest.Length == 0
                ? $"{what} holds a descriptor with an invalid digest '{RegistryClient.Printable(digest)}'"
                : $"{what} holds a digest '{RegistryClient.Printable(digest)}' of an algorithm Backstop does not check (sha256 only)");
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
