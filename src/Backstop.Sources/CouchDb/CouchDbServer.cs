using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Backstop.Core.Plugins;

namespace Backstop.Sources.CouchDb;

/// <summary>
/// A CouchDB server as the parts of the couchdb kind reach it (the source's own, a restore's destination, a drill
/// server): an HTTP client with the source's credentials, answers read with a bound, and errors said with the cause.
/// </summary>
internal sealed class CouchDbServer(string name, CouchDbOptions options)
{
    /// <summary>The source (named in every message).</summary>
    public string Source => name;

    public CouchDbOptions Options => options;

    public string Where => $"{options.Url.Host}:{options.Url.Port}";

    /// <summary>Where a database of this server is.</summary>
    public string UrlOf(string database) => new Uri(options.Url, "/" + database).ToString();

    /// <summary>The server's version (<c>GET /</c>): it is reachable and takes the credentials.</summary>
    public async Task<string> VersionAsync(CancellationToken cancellationToken)
    {
        using var http = Client();
        var root = await GetAsync(http, "/", cancellationToken).ConfigureAwait(false);
        return root.TryGetProperty("version", out var v) ? v.GetString() ?? "?" : "?";
    }

    /// <summary>Another server of the same source (a restore's destination, a drill server), with the source's credentials.</summary>
    public CouchDbServer At(Uri url) => new(name, options with { Url = url });

    public HttpClient Client()
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

    public async Task<JsonElement> GetAsync(HttpClient http, string path, CancellationToken ct)
    {
        var raw = await GetRawAsync(http, path, ct).ConfigureAwait(false)
                  ?? throw new BackupException($"source '{name}': {path} does not exist at {Where}");
        using var doc = JsonDocument.Parse(raw);
        return doc.RootElement.Clone();
    }

    /// <summary>
    /// Copies one document (with its attachments inline) from the server into the artifact as one line, streamed: the
    /// body's newlines are formatting only (JSON strings cannot hold a raw one) and are left out. False for 404.
    /// </summary>
    public async Task<bool> CopyDocumentAsync(HttpClient http, string path, Stream output, CancellationToken ct)
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

    public static async Task PostBulkAsync(HttpClient http, string path, HttpContent content, CancellationToken ct)
    {
        using var response = await http.PostAsync(new Uri(path + "/_bulk_docs", UriKind.Relative), content, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new BackupException($"_bulk_docs into {path.TrimStart('/')} answered HTTP {(int)response.StatusCode}: {await ErrorTextAsync(response, ct).ConfigureAwait(false)}");
        }
    }

    public async Task<BackupException> RefusedAsync(HttpResponseMessage response, string path, CancellationToken ct)
    {
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            return new BackupException($"source '{name}': CouchDB at {Where} refused the credentials: check 'user' and 'password'");
        }

        var text = await ErrorTextAsync(response, ct).ConfigureAwait(false);
        return new BackupException($"source '{name}': CouchDB at {Where} answered {path} with HTTP {(int)response.StatusCode}: {text}");
    }

    /// <summary>An error's body: its first 64 KiB at most, printable, its first 200 characters.</summary>
    public static async Task<string> ErrorTextAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[64 << 10];
        var n = await body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        return Backstop.Core.Text.ServerText.Printable(System.Text.Encoding.UTF8.GetString(buffer, 0, n).Trim());
    }

    /// <summary>The largest answer read whole (a database's information, the list of databases): beyond it, a server is not answering as CouchDB does.</summary>
    internal const long AnswerLimit = 256L << 20;

    public string Explain(HttpRequestException e, string path) => e.InnerException switch
    {
        SocketException { SocketErrorCode: SocketError.ConnectionRefused } =>
            $"source '{name}': connection to CouchDB at {Where} refused: is the server running and listening there?",
        IOException io =>
            $"source '{name}': CouchDB at {Where} broke off the connection while sending {path.Split('?')[0]}: {(io.InnerException ?? io).Message} (did the server stop or restart?)",
        _ => $"source '{name}': CouchDB at {Where}: {e.Message}",
    };

    /// <summary>The body of a GET, or null for 404.</summary>
    public async Task<byte[]?> GetRawAsync(HttpClient http, string path, CancellationToken ct)
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
}
