using Backstop.Core.Util;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Sources.CouchDb;

public sealed record CouchDbOptions(Uri Url, string? User, SecretRef? Password, IReadOnlyList<string>? Databases, TimeSpan Timeout);

/// <summary>
/// CouchDB (and compatible servers): every database's documents with their revision history and attachments, as
/// JSON Lines (<c>&lt;db&gt;.jsonl</c>, one document a line), enough to restore with <c>_bulk_docs</c> and
/// <c>new_edits: false</c>. The documents written are counted against the server's <c>doc_count</c>.
/// </summary>
public sealed class CouchDbSourceKind : SourceKind<CouchDbOptions>
{
    public override string Kind => "couchdb";

    public override IReadOnlyList<string> Facts { get; } = ["databases", "documents"];

    public override IReadOnlyList<string> CountFacts { get; } = ["databases", "documents"];

    public override CouchDbOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var url = map.String("url") ?? "http://127.0.0.1:5984";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https") || uri.UserInfo.Length > 0)
        {
            throw map.Error("url", $"'{url}' is not an http(s) URL without credentials, like http://127.0.0.1:5984 (credentials go in user/password)");
        }

        var databases = map.AllOrList("databases");
        foreach (var d in databases ?? [])
        {
            if (d.Length == 0)
            {
                throw map.Error("databases", "a database name cannot be empty");
            }
        }

        var timeout = map.Timeout("timeout", TimeSpan.FromHours(6));

        return new CouchDbOptions(uri, map.String("user"), map.Secret("password"), databases, timeout);
    }

    public override ISource Create(SourceDefinition definition, CouchDbOptions options) => new CouchDbSource(definition.Name, options);
}

internal sealed class CouchDbSource(string name, CouchDbOptions options) : ISource, IRestorable
{
    private const int Page = 500;

    public IReadOnlyList<string> Plan(IReadOnlyList<string> artifacts, string destination) => Common.RestoreDestination.OneDatabase(artifacts);

    /// <summary>
    /// Into <c>http(s)://host:port/db</c> (credentials from the source): the database is created when missing and refused
    /// when it holds documents (unless --force); documents go back through <c>_bulk_docs</c> with <c>new_edits: false</c>,
    /// so their revisions and attachments are the same; the documents counted afterwards are compared.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(destination, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https")
            || uri.AbsolutePath.Trim('/').Length == 0 || uri.UserInfo.Length > 0)
        {
            throw new ConfigException($"--to {destination}: a CouchDB destination is a URL without credentials, like http://host:5984/dbname");
        }

        var target = new CouchDbSource(name, options with { Url = new Uri(uri.GetLeftPart(UriPartial.Authority)) });
        using var http = target.Client();
        var path = "/" + uri.AbsolutePath.Trim('/');
        if (await target.GetRawAsync(http, path, cancellationToken).ConfigureAwait(false) is { } existing)
        {
            using var info = JsonDocument.Parse(existing);
            var count = info.RootElement.GetProperty("doc_count").GetInt64();
            if (count > 0 && !force)
            {
                throw new BackupException($"database {path.TrimStart('/')} at {uri.Host}:{uri.Port} already holds {count} documents; restore into a new database, or add --force");
            }
        }
        else
        {
            using var created = await http.PutAsync(new Uri(path, UriKind.Relative), null, cancellationToken).ConfigureAwait(false);
            if (!created.IsSuccessStatusCode)
            {
                throw new BackupException($"cannot create database {path.TrimStart('/')} at {uri.Host}:{uri.Port}: HTTP {(int)created.StatusCode}");
            }
        }

        using var reader = new StreamReader(content, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 1 << 16, leaveOpen: true);
        var batch = new List<JsonElement>();
        long sent = 0;
        while (true)
        {
            var line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
            if (line is { Length: > 0 })
            {
                using var doc = JsonDocument.Parse(line);
                batch.Add(doc.RootElement.Clone());
            }

            if (batch.Count > 0 && (batch.Count == Page || line is null))
            {
                using var response = await http.PostAsJsonAsync(new Uri(path + "/_bulk_docs", UriKind.Relative), new { new_edits = false, docs = batch }, cancellationToken)
                    .ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    throw new BackupException($"_bulk_docs into {path.TrimStart('/')} answered HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}");
                }

                sent += batch.Count;
                batch.Clear();
            }

            if (line is null)
            {
                break;
            }
        }

        var after = (await target.GetAsync(http, path, cancellationToken).ConfigureAwait(false)).GetProperty("doc_count").GetInt64();
        return new Dictionary<string, long> { ["databases"] = 1, ["documents"] = after };
    }

    private string Where => $"{options.Url.Host}:{options.Url.Port}";

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        using var http = Client();
        var root = await GetAsync(http, "/", cancellationToken).ConfigureAwait(false);
        var version = root.TryGetProperty("version", out var v) ? v.GetString() ?? "?" : "?";
        return new SourcePreflight(new Dictionary<string, string> { ["couchdb"] = version }, 0);
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        using var http = Client();
        var databases = options.Databases ?? (await GetAsync(http, "/_all_dbs", cancellationToken).ConfigureAwait(false))
            .EnumerateArray().Select(d => d.GetString()!).Where(d => !d.StartsWith('_')).Order(StringComparer.Ordinal).ToList();
        foreach (var database in databases)
        {
            var path = "/" + Uri.EscapeDataString(database);
            var before = (await GetAsync(http, path, cancellationToken).ConfigureAwait(false)).GetProperty("doc_count").GetInt64();
            await using var artifact = await sink.BeginArtifactAsync(SafeNames.Encode(database) + ".jsonl", cancellationToken).ConfigureAwait(false);
            long written = 0;
            string? startAfter = null;
            while (true)
            {
                var query = $"{path}/_all_docs?limit={Page}" + (startAfter is null ? "" : $"&startkey={Uri.EscapeDataString(JsonSerializer.Serialize(startAfter))}&skip=1");
                var ids = (await GetAsync(http, query, cancellationToken).ConfigureAwait(false)).GetProperty("rows").EnumerateArray()
                    .Select(r => r.GetProperty("id").GetString()!).ToList();
                foreach (var id in ids)
                {
                    // One document with its revision history and attachments inline: what _bulk_docs with new_edits:false takes back.
                    var doc = await GetRawAsync(http, $"{path}/{Uri.EscapeDataString(id)}?revs=true&attachments=true", cancellationToken).ConfigureAwait(false);
                    if (doc is null)
                    {
                        continue; // deleted between the listing and the read
                    }

                    await artifact.Content.WriteAsync(doc, cancellationToken).ConfigureAwait(false);
                    await artifact.Content.WriteAsync("\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
                    written++;
                }

                if (ids.Count < Page)
                {
                    break;
                }

                startAfter = ids[^1];
            }

            var after = (await GetAsync(http, path, cancellationToken).ConfigureAwait(false)).GetProperty("doc_count").GetInt64();
            if (written != before && written != after)
            {
                throw new BackupException(
                    $"source '{name}': {written} documents were written from database {database}, but the server counted {before} before and {after} after");
            }

            if (before != after)
            {
                sink.Warn($"database {database} changed while it was read ({before} documents before, {after} after)");
            }

            await artifact.CompleteAsync(new Dictionary<string, long> { ["databases"] = 1, ["documents"] = written }, cancellationToken).ConfigureAwait(false);
        }
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => new JsonLinesValidator();

    public string RestoreRecipe(string artifactName, string storedFile) =>
        $"curl -X PUT URL/DB && zstd -dc {storedFile} | jq -cs '{{new_edits: false, docs: .}}' | curl -X POST -H 'Content-Type: application/json' URL/DB/_bulk_docs -d @-";

    private HttpClient Client()
    {
        var http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(15) })
        {
            BaseAddress = options.Url,
            Timeout = TimeSpan.FromMinutes(5),
        };
        if (options.User is { } user)
        {
            var secret = options.Password?.Resolve() ?? "";
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{secret}")));
        }

        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return http;
    }

    private async Task<JsonElement> GetAsync(HttpClient http, string path, CancellationToken ct)
    {
        var raw = await GetRawAsync(http, path, ct).ConfigureAwait(false)
                  ?? throw new BackupException($"source '{name}': {path} does not exist at {Where}");
        using var doc = JsonDocument.Parse(raw);
        return doc.RootElement.Clone();
    }

    /// <summary>The body of a GET, or null for 404.</summary>
    private async Task<byte[]?> GetRawAsync(HttpClient http, string path, CancellationToken ct)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(path, UriKind.Relative), ct).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }

            if (response.StatusCode == HttpStatusCode.Unauthorized)
            {
                throw new BackupException($"source '{name}': CouchDB at {Where} refused the credentials: check 'user' and 'password'");
            }

            if (!response.IsSuccessStatusCode)
            {
                var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
                throw new BackupException($"source '{name}': CouchDB at {Where} answered {path} with HTTP {(int)response.StatusCode}: {text.Trim()[..Math.Min(200, text.Trim().Length)]}");
            }

            return await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new BackupException(e.InnerException switch
            {
                SocketException { SocketErrorCode: SocketError.ConnectionRefused } =>
                    $"source '{name}': connection to CouchDB at {Where} refused: is the server running and listening there?",
                IOException io =>
                    $"source '{name}': CouchDB at {Where} broke off the connection while sending {path.Split('?')[0]}: {(io.InnerException ?? io).Message} (did the server stop or restart?)",
                _ => $"source '{name}': CouchDB at {Where}: {e.Message}",
            });
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new BackupException($"source '{name}': CouchDB at {Where} did not answer {path} in time");
        }
    }

    /// <summary>Every line a JSON document with an <c>_id</c> and a <c>_rev</c>; their number is the documents fact.</summary>
    private sealed class JsonLinesValidator : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            using var reader = new StreamReader(content, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 1 << 16, leaveOpen: true);
            long documents = 0;
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                if (line.Length == 0)
                {
                    continue;
                }

                try
                {
                    using var doc = JsonDocument.Parse(line);
                    if (!doc.RootElement.TryGetProperty("_id", out _) || !doc.RootElement.TryGetProperty("_rev", out _))
                    {
                        throw new BackupException($"line {documents + 1} is a JSON value without _id and _rev");
                    }
                }
                catch (JsonException e)
                {
                    throw new BackupException($"line {documents + 1} is not JSON: {e.Message}");
                }

                documents++;
            }

            return new Dictionary<string, long> { ["documents"] = documents };
        }
    }
}
