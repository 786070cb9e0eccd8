using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;

namespace Backstop.IntegrationTests.Support;

/// <summary>A real single-member etcd on free loopback ports, in a temporary folder; stopped afterwards.</summary>
public sealed class EtcdServer : IDisposable
{
    private readonly Process _server;

    public EtcdServer(string? dataDir = null)
    {
        Root = Path.Combine(Path.GetTempPath(), "backstop-etcd-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        DataDir = dataDir ?? Path.Combine(Root, "data");
        Port = PostgresServer.FreePort();
        var peer = PostgresServer.FreePort();
        var psi = new ProcessStartInfo("etcd")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
                 {
                     "--name", "t", "--data-dir", DataDir,
                     "--listen-client-urls", Endpoint, "--advertise-client-urls", Endpoint,
                     "--listen-peer-urls", $"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{peer}",
                     "--initial-cluster", $"t=http://127.0.0.1:{peer}",
                 })
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            _server = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("etcd is needed: run ./test.sh, which installs etcd-server", e);
        }

        _server.StandardOutput.ReadToEndAsync();
        var log = _server.StandardError.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (Ctl("endpoint", "health").ExitCode != 0)
        {
            Assert.False(_server.HasExited, "etcd exited: " + (_server.HasExited ? log.Result : ""));
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), "etcd did not become healthy in 60 s");
            Thread.Sleep(200);
        }
    }

    public string Root { get; }

    public string DataDir { get; }

    public int Port { get; }

    public string Endpoint => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public CliResult Ctl(params string[] args) =>
        Sandbox.ExecEnv(null, new Dictionary<string, string> { ["ETCDCTL_API"] = "3" }, "etcdctl", ["--endpoints", Endpoint, .. args]);

    /// <summary>Puts keys through the v3 JSON gateway.</summary>
    public async Task PutAsync(int count)
    {
        using var http = new HttpClient();
        for (var i = 0; i < count; i++)
        {
            var response = await http.PostAsJsonAsync(new Uri(Endpoint + "/v3/kv/put"), new
            {
                key = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"/app/config/key-{i:0000}")),
                value = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(new string('v', i % 100))),
            });
            response.EnsureSuccessStatusCode();
        }
    }

    public long KeyCount()
    {
        var r = Ctl("get", "", "--from-key", "--keys-only");
        Assert.Equal(0, r.ExitCode);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
    }

    public void Dispose()
    {
        try
        {
            _server.Kill(entireProcessTree: true);
            _server.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }

        _server.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
