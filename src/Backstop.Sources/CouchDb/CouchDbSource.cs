using System.Text.Json;
using Backstop.Core.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

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
        var server = new CouchDbServer(definition.Name, options);
        return new CouchDbSource(server, new CouchDbRestore(server), new CouchDbDrill(server, drill), new CouchDbHealth(server));
    }
}

/// <summary>A couchdb source: its databases captured as JSON lines with their format check and stock recipe; restore, drill and health are parts of their own over one <see cref="CouchDbServer"/>.</summary>
internal sealed class CouchDbSource(CouchDbServer server, CouchDbRestore restore, CouchDbDrill drill, CouchDbHealth health) : ISource
{
    public T? Capability<T>() where T : class => restore as T ?? drill as T ?? health as T ?? this as T;

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination) => CouchDbRestore.RecipePlaces(destination);

    internal const int Page = 500;

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken) =>
        new(new Dictionary<string, string> { ["couchdb"] = await server.VersionAsync(cancellationToken).ConfigureAwait(false) }, 0);

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        using var http = server.Client();
        var databases = server.Options.Databases ?? (await server.GetAsync(http, "/_all_dbs", cancellationToken).ConfigureAwait(false))
            .EnumerateArray().Select(d => d.GetString()!).Where(d => !d.StartsWith('_')).Order(StringComparer.Ordinal).ToList();
        foreach (var database in databases)
        {
            var path = "/" + Uri.EscapeDataString(database);
            var before = (await server.GetAsync(http, path, cancellationToken).ConfigureAwait(false)).GetProperty("doc_count").GetInt64();
            await using var artifact = await sink.BeginArtifactAsync(SafeNames.Encode(database) + ".jsonl", cancellationToken).ConfigureAwait(false);
            long written = 0;
            string? startAfter = null;
            while (true)
            {
                var query = $"{path}/_all_docs?limit={Page}" + (startAfter is null ? "" : $"&startkey={Uri.EscapeDataString(JsonSerializer.Serialize(startAfter))}&skip=1");
                var ids = (await server.GetAsync(http, query, cancellationToken).ConfigureAwait(false)).GetProperty("rows").EnumerateArray()
                    .Select(r => r.GetProperty("id").GetString()!).ToList();
                foreach (var id in ids)
                {
                    // One document with its revision history and attachments inline: what _bulk_docs with new_edits:false takes back.
                    if (!await server.CopyDocumentAsync(http, $"{path}/{Uri.EscapeDataString(id)}?revs=true&attachments=true", artifact.Content, cancellationToken)
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

            var after = (await server.GetAsync(http, path, cancellationToken).ConfigureAwait(false)).GetProperty("doc_count").GetInt64();
            if (written != before && written != after)
            {
                throw new BackupException(
                    $"source '{server.Source}': {written} documents were written from database {database}, but the server counted {before} before and {after} after");
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

    /// <summary>A line of the backup larger than this is never held: it is streamed (restore) or copied through (capture).</summary>
    internal const int LargeLine = 8 << 20;

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
