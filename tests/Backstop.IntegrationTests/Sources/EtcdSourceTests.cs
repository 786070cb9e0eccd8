using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>etcd with a real server (the audit: etcd never backed up).</summary>
public sealed class EtcdSourceTests : IDisposable
{
    private readonly EtcdServer _etcd = new();
    private readonly Sandbox _box = new();

    public void Dispose()
    {
        _etcd.Dispose();
        _box.Dispose();
    }

    private void Config(string endpoints, string extra = "") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + $"  - {{ name: etcd, kind: etcd, endpoints: [{endpoints}]{extra} }}\n");

    [Fact]
    public async Task A_snapshot_round_trips_through_etcdctl_snapshot_restore_with_the_same_keys()
    {
        await _etcd.PutAsync(200);
        Config(_etcd.Endpoint, ", expect: { min_keys: 200 }");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var facts = _box.Snapshots()[0].GetProperty("facts");
        Assert.Equal(200, facts.GetProperty("keys").GetInt64());
        Assert.True(facts.GetProperty("revision").GetInt64() >= 201);

        var stored = Directory.GetFiles(_box["backups/etcd"], "snapshot.db.zst", SearchOption.AllDirectories).Single();
        var restoredDir = _box["restored-data"];
        var restore = _box.Shell($"zstd -d < '{stored}' > snapshot.db && ETCDCTL_API=3 etcdctl snapshot restore snapshot.db --data-dir '{restoredDir}'");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        using var restored = new EtcdServer(restoredDir);
        Assert.Equal(200, restored.KeyCount());
        Assert.Equal(_etcd.Ctl("get", "/app/config/key-0042", "--print-value-only").Stdout, restored.Ctl("get", "/app/config/key-0042", "--print-value-only").Stdout);
    }

    [Fact]
    public void A_closed_port_fails_naming_the_endpoint()
    {
        var closed = PostgresServer.FreePort();
        Config($"http://127.0.0.1:{closed}");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"no etcd endpoint answered: connection to etcd at 127.0.0.1:{closed} refused", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public async Task The_next_endpoint_is_used_when_the_first_is_down()
    {
        await _etcd.PutAsync(3);
        Config($"http://127.0.0.1:{PostgresServer.FreePort()}, {_etcd.Endpoint}");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
    }

    [Fact]
    public void An_empty_cluster_fails_min_keys()
    {
        Config(_etcd.Endpoint, ", expect: { min_keys: 1 }");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("the source reported 0 keys, fewer than expect.min_keys 1", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_damaged_snapshot_is_refused_by_its_own_hash()
    {
        await _etcd.PutAsync(20);
        var file = _box["s.db"];
        Assert.Equal(0, _etcd.Ctl("snapshot", "save", file).ExitCode);
        var snapshot = await File.ReadAllBytesAsync(file);
        var options = new Backstop.Sources.Etcd.EtcdOptions([new Uri(_etcd.Endpoint)], null, null, TimeSpan.FromMinutes(1));
        var definition = new Backstop.Core.Config.SourceDefinition("e", "etcd", options, Backstop.Core.Config.Expectations.None, TimeSpan.FromDays(1), 1, ["l"], default);
        var validator = new Backstop.Sources.Etcd.EtcdSourceKind().Create(definition, options).ValidatorFor("snapshot.db")!;
        // etcdctl saves the stream as the server sends it: the content, then its SHA-256.
        var withHash = snapshot;
        await validator.ReadFactsAsync(new MemoryStream(withHash), CancellationToken.None);
        var flipped = (byte[])withHash.Clone();
        flipped[100] ^= 1;
        await Assert.ThrowsAsync<Backstop.Core.Plugins.BackupException>(() => validator.ReadFactsAsync(new MemoryStream(flipped), CancellationToken.None));
        await Assert.ThrowsAsync<Backstop.Core.Plugins.BackupException>(() => validator.ReadFactsAsync(new MemoryStream(withHash[..^10]), CancellationToken.None));
    }

    [Fact]
    public async Task Restore_writes_a_snapshot_that_etcdctl_restores()
    {
        await _etcd.PutAsync(30);
        Config(_etcd.Endpoint);
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run("restore", "--source", "etcd", "--to", _box["restored"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        // The revision is read out of the snapshot (etcdctl snapshot status) at backup and again from the restored file;
        // the live key count cannot be (the snapshot counts every revision), and the restore says so.
        Assert.Matches("revision=[0-9]+, as recorded \\(not compared: keys\\)", r.Stdout);
        Assert.Equal(["keys"], _box.Snapshots().Single().GetProperty("artifacts")[0].GetProperty("reported").EnumerateArray().Select(x => x.GetString()));
        var data = _box["member"];
        var restore = _box.Shell($"ETCDCTL_API=3 etcdctl snapshot restore '{_box["restored/snapshot.db"]}' --data-dir '{data}'");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        using var restored = new EtcdServer(data);
        Assert.Equal(30, restored.KeyCount());
    }

    [Fact]
    public void With_authentication_on_a_wrong_password_fails_and_the_right_one_works()
    {
        Assert.Equal(0, _etcd.Ctl("put", "app/config", "v1").ExitCode); // a first snapshot that holds nothing would be degraded (exit 3)
        Assert.Equal(0, _etcd.Ctl("user", "add", "root:Etcd-Pass-1").ExitCode);
        Assert.Equal(0, _etcd.Ctl("auth", "enable").ExitCode);
        var env = new Dictionary<string, string> { ["ETCD_PASSWORD"] = "Etcd-Pass-1" };
        Config(_etcd.Endpoint, ", user: root, password: \"env:ETCD_PASSWORD\"");
        var good = _box.Run(["run"], env);
        Assert.True(good.ExitCode == 0, good.ToString());

        Config(_etcd.Endpoint, ", user: root, password: wrong-pass");
        var bad = _box.Run("run");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("authentication failed: check 'user' and 'password'", bad.All, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-pass", bad.All, StringComparison.Ordinal);

        Config(_etcd.Endpoint);
        var none = _box.Run("run");
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("requires authentication: set 'user' and 'password'", none.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_dies_mid_snapshot_fails_the_snapshot_and_stores_nothing()
    {
        await _etcd.PutAsync(300);
        using var proxy = new FaultProxy(_etcd.Port, budget: 16 * 1024); // /version and the key count pass, the snapshot is cut
        Config($"http://127.0.0.1:{proxy.Port}");
        var run = _box.Run("run");
        Assert.True(proxy.Tripped, "the snapshot was smaller than the proxy's budget");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"the snapshot stream from 127.0.0.1:{proxy.Port} broke off", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
        Assert.Equal("failed", _box.Snapshots()[0].GetProperty("state").GetString());
    }

    /// <summary>The restore --explain recipe run as printed: etcdctl restores a member with the same keys.</summary>
    [Fact]
    public async Task The_explain_recipe_run_literally_restores_a_member_with_the_same_keys()
    {
        await _etcd.PutAsync(25);
        Config(_etcd.Endpoint);
        Assert.Equal(0, _box.Run("run").ExitCode);
        var explain = _box.Run("restore", "--source", "etcd", "--explain", "--to", _box["explained"]);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var recipe = explain.Stdout.Split('\n').Single(l => l.StartsWith("mkdir", StringComparison.Ordinal));
        var r = _box.Shell(recipe);
        Assert.True(r.ExitCode == 0, r.ToString() + "\n" + recipe);
        using var restored = new EtcdServer(_box["explained/data"]);
        Assert.Equal(25, restored.KeyCount());
    }
}
