using System.Globalization;
using System.Net.Http.Json;

namespace Backstop.IntegrationTests.Support;

/// <summary>A real single-member etcd on free loopback ports, in a temporary folder; stopped afterwards.</summary>
public sealed class EtcdServer : IDisposable
{
    private readonly ServerProcess _server;

    /// <param name="tls">Client URLs over https with these certificates, and every client must present one signed by its CA (<c>--client-cert-auth</c>, as k3s runs etcd).</param>
    public EtcdServer(string? dataDir = null, TestCertificates? tls = null)
    {
        var root = Path.Combine(Path.GetTempPath(), "backstop-etcd-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        DataDir = dataDir ?? Path.Combine(root, "data");
        Port = PostgresServer.FreePort();
        _tls = tls;
        var peer = $"http://127.0.0.1:{PostgresServer.FreePort().ToString(CultureInfo.InvariantCulture)}";
        string[] secure = tls is null ? [] : ["--cert-file", tls.ServerCert, "--key-file", tls.ServerKey, "--client-cert-auth", "--trusted-ca-file", tls.CaCert];
        _server = new ServerProcess("etcd",
        [
            "--name", "t", "--data-dir", DataDir, "--listen-client-urls", Endpoint, "--advertise-client-urls", Endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", $"t={peer}", .. secure,
        ], root, "etcd-server and etcd-client");
        _server.WaitUntil(() => Ctl("endpoint", "health").ExitCode == 0, "etcd");
    }

    private readonly TestCertificates? _tls;

    public string DataDir { get; }

    public int Port { get; }

    public string Endpoint => $"{(_tls is null ? "http" : "https")}://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public CliResult Ctl(params string[] args) =>
        Sandbox.ExecEnv(null, new Dictionary<string, string> { ["ETCDCTL_API"] = "3" }, "etcdctl",
            ["--endpoints", Endpoint, .. _tls is null ? [] : new[] { "--cacert", _tls.CaCert, "--cert", _tls.ClientCert, "--key", _tls.ClientKey }, .. args]);

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
