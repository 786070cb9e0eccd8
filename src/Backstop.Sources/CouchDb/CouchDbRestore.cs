using System.Net.Http.Headers;
using System.Text.Json;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.CouchDb;

/// <summary>Restore of a couchdb source's databases, into a server of the same source's credentials.</summary>
internal sealed class CouchDbRestore(CouchDbServer server) : IRestorable
{
    public IReadOnlyList<string> Plan(IReadOnlyList<string> artifacts, string destination) => RestoreDestination.OneDatabase(artifacts);

    private static readonly Dictionary<string, int> Schemes = new(StringComparer.Ordinal) { ["http"] = 5984, ["https"] = 6984 };

    private const string DestinationExample = "http://host:5984/dbname";

    public static IReadOnlyDictionary<string, string> RecipePlaces(string destination) =>
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

        var target = server.At(new Uri(uri.GetLeftPart(UriPartial.Authority)));
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
            await CouchDbServer.PostBulkAsync(http, path, json, cancellationToken).ConfigureAwait(false);
            batch.Clear();
            batchBytes = 0;
        }

        while (await reader.NextAsync(CouchDbSource.LargeLine, cancellationToken).ConfigureAwait(false) is var (bytes, complete))
        {
            if (complete)
            {
                if (bytes.AsSpan().IndexOfAnyExcept(" \t\r"u8) >= 0) // a blank line (as the check skips it) is no document
                {
                    batch.Add(bytes);
                    batchBytes += bytes.Length;
                    if (batch.Count == CouchDbSource.Page || batchBytes > CouchDbSource.LargeLine)
                    {
                        await FlushAsync().ConfigureAwait(false);
                    }
                }

                continue;
            }

            await FlushAsync().ConfigureAwait(false);
            using var streamed = new StreamedDocumentContent(bytes, reader).Json();
            await CouchDbServer.PostBulkAsync(http, path, streamed, cancellationToken).ConfigureAwait(false);
        }

        await FlushAsync().ConfigureAwait(false);

        var after = (await target.GetAsync(http, path, cancellationToken).ConfigureAwait(false)).GetProperty("doc_count").GetInt64();
        return new Dictionary<string, long> { ["databases"] = 1, ["documents"] = after };
    }
}
