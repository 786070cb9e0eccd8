using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Backstop.Core.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.CouchDb;

public sealed record CouchDbOptions(Uri Url, string? User, SecretRef? Password, IReadOnlyList<string>? Databases, TimeSpan Timeout);

/// <summary>
/// CouchDB (and compatible servers): every database's documents with their revision history and attachments, as
/// JSON Lines (<c>&lt;db&gt;.jsonl</c>, one document a line), enough to restore with <c>_bulk_docs</c> and
/// <c>new_edits: false</c>. The documents written are counted against the server's <c>doc_count</c>.
/// </summary>
public sealed partial class CouchDbSourceKind : SourceKind<CouchDbOptions, CouchDbDrillOptions>
{
    public override string Kind => "couchdb";

    public override string Summary => "A CouchDB (or compatible) server: one `<db>.json` per database, every document and attachment.";

    public override string RestoreTo => "http://HOST:PORT/DB";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("url", "http://couch-1.internal:5984", "The server, without credentials or database"),
        new("user", "backup", "An admin (or a reader of every database)"),
        new("password", "env:COUCHDB_PASSWORD", "Its password; sent only to the server"),
        new("databases", "all", "The databases: all (but _replicator, _users, _global_changes), or a list"),
        new("timeout", "6h", "The most a whole export may take"),
        new("drill.server", "http://127.0.0.1:5985", "Restore into scratch databases on this server") { Default = "the source's server" },
    ];

    public override IReadOnlyList<string> Facts { get; } = ["databases", "documents"];

    public override IReadOnlyList<string> CountFacts { get; } = ["databases", "documents"];

    public override CouchDbOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var url = map.StringOr("url", "http://127.0.0.1:5984");
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

    public override ISource Create(SourceDefinition definition, CouchDbOptions options, CouchDbDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new CouchDbSource(definition.Name, options) { DrillOptions = drill };
    }
}

internal sealed partial class CouchDbSource(string name, CouchDbOptions options) : ISource, IRestorable
{
    private const int Page = 500;

    public IReadOnlyList<string> Plan(IReadOnlyList<string> artifacts, string destination) => RestoreDestination.OneDatabase(artifacts);

    private static readonly Dictionary<string, int> Schemes = new(StringComparer.Ordinal) { ["http"] = 5984, ["https"] = 6984 };

    private const string DestinationExample = "http://host:5984/dbname";

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination) =>
        ServerDestination.Parse(destination, Schemes, DestinationExample, null).Places;

    /// <summary>
    /// Into <c>http(s)://host:port/db</c> (credentials from the source): the database is created when missing and refused
    /// when it holds documents (unless --force); documents go back through <c>_bulk_docs</c> with <c>new_edits: false</c>,
    /// so their revisions and attachments are the same; the documents counted afterwards are compared.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        var d = ServerDestination.Parse(destination, Schemes, DestinationExample, null);
        d.RequireDatabase(DestinationExample);
        if (!Uri.TryCreate(destination, UriKind.Absolute, out var uri) || uri.UserInfo.Length > 0)
        {
            throw new ConfigException($"--to {destination}: a CouchDB destination is a URL without credentials (they come from the source's user and password), like {DestinationExample}");
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

        // Line by line, never a whole large document: small ones go in batches, a large one (an attachment) alone,
        // streamed from the copy into the request.
        var reader = new JsonLineReader(content);
        var batch = new List<byte[]>();
        long batchBytes = 0;
        async Task FlushAsync()
        {
            if (batch.Count == 0)
            {
                return;
            }

            var body = new MemoryStream();
            body.Write("""{"new_edits":false,"docs":["""u8);
            for (var i = 0; i < batch.Count; i++)
            {
                if (i > 0)
                {
                    body.WriteByte((byte)',');
                }

                body.Write(batch[i]);
            }

            body.Write("]}"u8);
            using var json = new ByteArrayContent(body.GetBuffer(), 0, (int)body.Length);
            json.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            await PostBulkAsync(http, path, json, cancellationToken).ConfigureAwait(false);
            batch.Clear();
            batchBytes = 0;
        }

        while (await reader.NextAsync(LargeLine, cancellationToken).ConfigureAwait(false) is var (bytes, complete))
        {
            if (complete)
            {
                if (bytes.AsSpan().IndexOfAnyExcept(" \t\r"u8) >= 0) // a blank line (as the check skips it) is no document
                {
                    batch.Add(bytes);
                    batchBytes += bytes.Length;
                    if (batch.Count == Page || batchBytes > LargeLine)
                    {
                        await FlushAsync().ConfigureAwait(false);
                    }
                }

                continue;
            }

            await FlushAsync().ConfigureAwait(false);
            using var streamed = new StreamedDocumentContent(bytes, reader).Json();
            await PostBulkAsync(http, path, streamed, cancellationToken).ConfigureAwait(false);
        }

        await FlushAsync().ConfigureAwait(false);

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
                    if (!await CopyDocumentAsync(http, $"{path}/{Uri.EscapeDataString(id)}?revs=true&attachments=true", artifact.Content, cancellationToken)
                            .ConfigureAwait(false))
                    {
                        continue; // deleted between the listing and the read
                    }

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

    /// <summary>A line of the backup larger than this is never held: it is streamed (restore) or copied through (capture).</summary>
    private const int LargeLine = 8 << 20;

    /// <summary>
    /// Copies one document (with its attachments inline) from the server into the artifact as one line, streamed: the
    /// body's newlines are formatting only (JSON strings cannot hold a raw one) and are left out. False for 404.
    /// </summary>
    private async Task<bool> CopyDocumentAsync(HttpClient http, string path, Stream output, CancellationToken ct)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return false;
            }

            if (!response.IsSuccessStatusCode)
            {
                throw await RefusedAsync(response, path, ct).ConfigureAwait(false);
            }

            await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            var buffer = new byte[1 << 16];
            int n;
            long copied = 0;
            while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                var kept = 0;
                for (var i = 0; i < n; i++)
                {
                    if (buffer[i] is not ((byte)'\n' or (byte)'\r'))
                    {
                        buffer[kept++] = buffer[i];
                    }
                }

                await output.WriteAsync(buffer.AsMemory(0, kept), ct).ConfigureAwait(false);
                copied += kept;
            }

            if (copied == 0)
            {
                throw new BackupException($"source '{name}': CouchDB at {Where} answered {path.Split('?')[0]} with an empty body");
            }

            await output.WriteAsync("\n"u8.ToArray(), ct).ConfigureAwait(false);
            return true;
        }
        catch (HttpRequestException e)
        {
            throw new BackupException(Explain(e, path));
        }
        catch (IOException e)
        {
            throw new BackupException($"source '{name}': CouchDB at {Where} broke off the connection while sending {path.Split('?')[0]}: {(e.InnerException ?? e).Message} (did the server stop or restart?)");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new BackupException($"source '{name}': CouchDB at {Where} did not answer {path.Split('?')[0]} in time");
        }
    }

    private static async Task PostBulkAsync(HttpClient http, string path, HttpContent content, CancellationToken ct)
    {
        using var response = await http.PostAsync(new Uri(path + "/_bulk_docs", UriKind.Relative), content, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new BackupException($"_bulk_docs into {path.TrimStart('/')} answered HTTP {(int)response.StatusCode}: {await ErrorTextAsync(response, ct).ConfigureAwait(false)}");
        }
    }

    private async Task<BackupException> RefusedAsync(HttpResponseMessage response, string path, CancellationToken ct)
    {
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            return new BackupException($"source '{name}': CouchDB at {Where} refused the credentials: check 'user' and 'password'");
        }

        var text = await ErrorTextAsync(response, ct).ConfigureAwait(false);
        return new BackupException($"source '{name}': CouchDB at {Where} answered {path} with HTTP {(int)response.StatusCode}: {text}");
    }

    /// <summary>An error's body: its first 64 KiB at most, printable, its first 200 characters.</summary>
    private static async Task<string> ErrorTextAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[64 << 10];
        var n = await body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        return Backstop.Core.Text.ServerText.Printable(System.Text.Encoding.UTF8.GetString(buffer, 0, n).Trim());
    }

    /// <summary>The largest answer read whole (a database's information, the list of databases): beyond it, a server is not answering as CouchDB does.</summary>
    private const long AnswerLimit = 256L << 20;

    private string Explain(HttpRequestException e, string path) => e.InnerException switch
    {
        SocketException { SocketErrorCode: SocketError.ConnectionRefused } =>
            $"source '{name}': connection to CouchDB at {Where} refused: is the server running and listening there?",
        IOException io =>
            $"source '{name}': CouchDB at {Where} broke off the connection while sending {path.Split('?')[0]}: {(io.InnerException ?? io).Message} (did the server stop or restart?)",
        _ => $"source '{name}': CouchDB at {Where}: {e.Message}",
    };

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
                throw new BackupException($"source '{name}': CouchDB at {Where} answered {path} with HTTP {(int)response.StatusCode}: {await ErrorTextAsync(response, ct).ConfigureAwait(false)}");
            }

            await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            return await Backstop.Core.Text.ServerText.ReadAtMostAsync(body, AnswerLimit,
                () => new BackupException($"source '{name}': CouchDB at {Where} answered {path} with more than {AnswerLimit >> 20} MiB, which no CouchDB answer to it is"), ct)
                .ConfigureAwait(false);
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

    /// <summary>Every line a JSON document with an <c>_id</c> and a <c>_rev</c>; their number is the documents fact. Streamed.</summary>
    private sealed class JsonLinesValidator : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            var scanner = new JsonLineScanner();
            var buffer = new byte[1 << 16];
            int n;
            while ((n = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                scanner.Feed(buffer.AsSpan(0, n));
            }

            scanner.Finish();
            return new Dictionary<string, long> { ["documents"] = scanner.Documents };
        }
    }
}
