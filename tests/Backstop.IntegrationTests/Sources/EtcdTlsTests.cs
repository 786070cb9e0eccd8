using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>etcd as k3s runs it: https client URLs, and every client presents a certificate signed by the cluster's CA.</summary>
public sealed class EtcdTlsTests : IDisposable
{
    private readonly TestCertificates _certs = new("etcd");
    private readonly TestCertificates _other = new("other");
    private readonly EtcdServer _etcd;
    private readonly Sandbox _box = new();

    public EtcdTlsTests() => _etcd = new EtcdServer(tls: _certs);

    public void Dispose()
    {
        _etcd.Dispose();
        _box.Dispose();
        _certs.Dispose();
        _other.Dispose();
    }

    private void Config(string tls) =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + $"  - {{ name: etcd, kind: etcd, endpoints: [\"{_etcd.Endpoint}\"]{tls} }}\n");

    [Fact]
    public void With_its_client_certificate_it_is_backed_up_and_drilled_and_without_it_or_with_another_ca_refused_with_the_fix()
    {
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(0, _etcd.Ctl("put", $"/registry/configmaps/k{i}", "v").ExitCode);
        }

        Config($", cacert: {_certs.CaCert}, cert: {_certs.ClientCert}, key: {_certs.ClientKey}, expect: {{ min_keys: 20 }}");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(20, _box.Snapshots()[0].GetProperty("facts").GetProperty("keys").GetInt64());
        var drill = _box.Run("drill", "--source", "etcd");
        Assert.True(drill.ExitCode == 0, drill.ToString());

        Config($", cacert: {_certs.CaCert}");
        var anonymous = _box.Run("run");
        Assert.Equal(1, anonymous.ExitCode);
        Assert.Contains("a cluster with --client-cert-auth needs a client certificate (cert and key)", anonymous.All, StringComparison.Ordinal);

        Config($", cacert: {_other.CaCert}, cert: {_certs.ClientCert}, key: {_certs.ClientKey}");
        var untrusted = _box.Run("run");
        Assert.Equal(1, untrusted.ExitCode);
        Assert.Contains("the TLS handshake failed", untrusted.All, StringComparison.Ordinal);
        Assert.Contains($"the server's certificate must be signed by {_other.CaCert}", untrusted.All, StringComparison.Ordinal);

        Config($", cert: {_certs.ClientCert}");
        var half = _box.Run("run");
        Assert.Equal(2, half.ExitCode);
        Assert.Contains("a client certificate needs both 'cert' and 'key'", half.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Doctor_checks_that_k3s_own_etcd_snapshots_are_recent_when_k3s_takes_them()
    {
        // k3s' layout: its certificates under DATA/server/tls/etcd/, its snapshots under DATA/server/db/snapshots.
        var tls = _box["k3s/server/tls/etcd"];
        Directory.CreateDirectory(tls);
        foreach (var (from, to) in new[] { (_certs.CaCert, "server-ca.crt"), (_certs.ClientCert, "client.crt"), (_certs.ClientKey, "client.key") })
        {
            File.Copy(from, Path.Combine(tls, to));
        }

        Config($", cacert: {tls}/server-ca.crt, cert: {tls}/client.crt, key: {tls}/client.key, k3s_config: {_box["k3s-config.yaml"]}");
        void Doctor(string expected)
        {
            var all = _box.Run("doctor", "--source", "etcd").All;
            Assert.True(all.Contains(expected, StringComparison.Ordinal), all);
        }

        Doctor("k3s' etcd-snapshot is on (every 12h, '0 */12 * * *') and " + _box["k3s/server/db/snapshots"] + " holds no snapshot");

        var snapshots = _box["k3s/server/db/snapshots"];
        Directory.CreateDirectory(snapshots);
        var old = Path.Combine(snapshots, "etcd-snapshot-server-1764990000");
        File.WriteAllText(old, "x");
        File.SetLastWriteTimeUtc(old, DateTime.UtcNow.AddHours(-30));
        Doctor("k3s' newest etcd snapshot etcd-snapshot-server-1764990000 is 30h old, and k3s takes one every 12h ('0 */12 * * *'): its schedule stopped");

        _box.Write("k3s-config.yaml", "etcd-snapshot-schedule-cron: \"0 */2 * * *\"\n");
        var fresh = Path.Combine(snapshots, "etcd-snapshot-server-1765000000");
        File.WriteAllText(fresh, "x");
        File.SetLastWriteTimeUtc(fresh, DateTime.UtcNow.AddHours(-1));
        Doctor("k3s' newest etcd snapshot etcd-snapshot-server-1765000000 is 1h old (every 2h)");

        _box.Write("k3s-config.yaml", "etcd-disable-snapshots: true\n");
        Doctor("k3s' own etcd snapshots are off (etcd-disable-snapshots in");
    }
}
