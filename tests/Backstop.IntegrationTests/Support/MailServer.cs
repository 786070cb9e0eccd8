using System.Globalization;
using System.Text.Json;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// A real SMTP server (npm's maildev, installed by ./test.sh into .tools/) on free loopback ports: it accepts every
/// message and serves what it received as JSON (<c>GET /api/email</c>).
/// </summary>
public sealed class MailServer : IDisposable
{
    private readonly ServerProcess _server;
    private readonly HttpClient _http;

    public MailServer()
    {
        var program = Path.Combine(CouchServer.RepoRoot, ".tools", "node_modules", ".bin", "maildev");
        Assert.True(File.Exists(program), $"{program} is missing: run ./test.sh, which installs maildev from npm");
        Root = Path.Combine(Path.GetTempPath(), "backstop-mail-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        SmtpPort = PostgresServer.FreePort();
        var web = PostgresServer.FreePort();
        _server = new ServerProcess(program, ["--smtp", SmtpPort.ToString(CultureInfo.InvariantCulture), "--web", web.ToString(CultureInfo.InvariantCulture),
            "--ip", "127.0.0.1", "--mail-directory", Root], Root, "maildev (npm)");
        _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{web.ToString(CultureInfo.InvariantCulture)}") };
        _server.WaitUntil(() =>
        {
            try
            {
                return _http.GetAsync(new Uri("/api/email", UriKind.Relative)).Result.IsSuccessStatusCode;
            }
            catch (AggregateException)
            {
                return false;
            }
        }, "maildev");
    }

    public string Root { get; }

    public int SmtpPort { get; }

    /// <summary>The messages received so far: subject, recipients and text.</summary>
    public List<(string Subject, List<string> To, string Text)> Messages()
    {
        var json = _http.GetStringAsync(new Uri("/api/email", UriKind.Relative)).Result;
        return JsonDocument.Parse(json).RootElement.EnumerateArray().Select(m => (
            m.GetProperty("subject").GetString() ?? "",
            m.GetProperty("to").EnumerateArray().Select(t => t.GetProperty("address").GetString() ?? "").ToList(),
            m.TryGetProperty("text", out var t) ? t.GetString() ?? "" : "")).ToList();
    }

    public void Dispose()
    {
        _http.Dispose();
        _server.Dispose();
    }
}

/// <summary>An HTTP receiver on a free loopback port (a webhook endpoint, a Healthchecks-style ping service): it keeps every request.</summary>
public sealed class HttpReceiver : IDisposable
{
    private readonly System.Net.HttpListener _listener = new();
    private readonly List<(string Method, string Path, string Body)> _requests = [];

    /// <summary>Each request's Content-Length (-1 when it came chunked, without one), in order.</summary>
    public List<long> ContentLengths { get; } = [];
    private readonly CancellationTokenSource _stop = new();

    public HttpReceiver(int status = 200)
    {
        Port = PostgresServer.FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/");
        _listener.Start();
        _ = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                System.Net.HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is System.Net.HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                using var reader = new StreamReader(context.Request.InputStream);
                var body = await reader.ReadToEndAsync();
                lock (_requests)
                {
                    _requests.Add((context.Request.HttpMethod, context.Request.Url!.AbsolutePath, body));
                    ContentLengths.Add(context.Request.ContentLength64);
                }

                context.Response.StatusCode = status;
                context.Response.Close();
            }
        });
    }

    public int Port { get; }

    public string Url(string path) => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}{path}";

    public List<(string Method, string Path, string Body)> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Close();
        _stop.Dispose();
    }
}
