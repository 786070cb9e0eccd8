using System.Globalization;
using System.Net.Http.Json;

namespace Backstop.IntegrationTests.Support;

/// <summary>A real single-member etcd on free loopback ports, in a temporary folder; stopped afterwards.</summary>
public sealed class EtcdServer : IDisposable
{
    private readonly ServerProcess _server;

    public EtcdServer(string? dataDir = null)
    {
        var root = Path.Combine(Path.GetTempPath(), "backstop-etcd-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        DataDir = dataDir ?? Path.Combine(root, "data");
        Port = PostgresServer.FreePort();
        var peer = $"http://127.0.0.1:{PostgresServer.FreePort().ToString(CultureInfo.InvariantCulture)}";
        _server = new ServerProcess("etcd",
        [
            "--name", "t", "--data-dir", DataDir, "--listen-client-urls", Endpoint, "--advertise-client-urls", Endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", $"t={peer}",
        ], root, "etcd-server and etcd-client");
        _server.WaitUntil(() => Ctl("endpoint", "health").ExitCode == 0, "etcd");
    }

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

    public void Dispose() => _server.Dispose();
}
