using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// A CouchDB-compatible server (npm's pouchdb-server, installed by ./test.sh into .tools/) on a free loopback port,
/// in a temporary folder; stopped afterwards.
/// </summary>
public sealed class CouchServer : IDisposable
{
    private readonly ServerProcess _server;

    public CouchServer()
    {
        var program = Path.Combine(RepoRoot, ".tools", "node_modules", ".bin", "pouchdb-server");
        Assert.True(File.Exists(program), $"{program} is missing: run ./test.sh, which installs pouchdb-server from npm");
        Root = Path.Combine(Path.GetTempPath(), "backstop-couch-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Port = PostgresServer.FreePort();
        _server = new ServerProcess(program, ["--host", "127.0.0.1", "--port", Port.ToString(CultureInfo.InvariantCulture), "--dir", Root, "--no-stdout-logs"],
            Root, "pouchdb-server (npm)");
        Http = new HttpClient { BaseAddress = new Uri(Url) };
        _server.WaitUntil(() => Http.GetAsync(new Uri("/", UriKind.Relative)).Result.IsSuccessStatusCode, "pouchdb-server");
    }

    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "Backstop.slnx")))
            {
                d = d.Parent;
            }

            return d?.FullName ?? throw new InvalidOperationException("repository root not found");
        }
    }

    public string Root { get; }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public HttpClient Http { get; }

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = body is string s ? new StringContent(s, System.Text.Encoding.UTF8, "application/json") : JsonContent.Create(body);
        }

        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public void Dispose()
    {
        Http.Dispose();
        _server.Dispose();
    }
}
