using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Backstop.IntegrationTests.Drill;

namespace Backstop.IntegrationTests.Sources;

/// <summary>etcd drills (a scratch member from the snapshot) against a real etcd.</summary>
public sealed class EtcdDrillTests : IDisposable
{
    private readonly EtcdServer _etcd = new();
    private readonly Sandbox _box = new();

    public void Dispose()
    {
        _etcd.Dispose();
        _box.Dispose();
    }

    [Fact]
    public async Task An_etcd_drill_runs_the_snapshot_in_a_scratch_member_and_compares_revision_and_keys()
    {
        await _etcd.PutAsync(150);
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: etcd, kind: etcd, endpoints: [{_etcd.Endpoint}] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run("drill", "--json");
        var d = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("drills")[0];
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal("150", checks["keys in the scratch etcd member"].GetProperty("found").GetString());
        DrillTests.AssertScratchRanUnprivileged(d, "etcd");
        Assert.True(checks["revision in the scratch etcd member"].GetProperty("passed").GetBoolean());
        // The source has no authentication; the scratch member got it anyway, so nobody else on loopback reads it.
        Assert.DoesNotContain(d.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("answers anyone", StringComparison.Ordinal));
        Assert.Empty(Directory.GetDirectories(_box["state/staging"], ".backstop-drill-*"));
        Assert.Empty(DrillTests.ProcessesNaming(_box.Root));
    }
}

/// <summary>etcd drills of a cluster with authentication on: the scratch member keeps the snapshot's users.</summary>
public sealed class EtcdAuthDrillTests : IDisposable
{
    private readonly EtcdServer _etcd = new();
    private readonly Sandbox _box = new();

    public void Dispose()
    {
        _etcd.Dispose();
        _box.Dispose();
    }

    [Fact]
    public async Task An_etcd_drill_of_a_cluster_with_authentication_logs_in_to_the_scratch_member_as_the_source_does()
    {
        await _etcd.PutAsync(40);
        Assert.Equal(0, _etcd.Ctl("user", "add", "root:Etcd-Pass-1").ExitCode);
        Assert.Equal(0, _etcd.Ctl("auth", "enable").ExitCode);
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: etcd, kind: etcd, endpoints: [{_etcd.Endpoint}], user: root, password: \"env:ETCD_PASSWORD\" }}\n");
        var env = new Dictionary<string, string> { ["ETCD_PASSWORD"] = "Etcd-Pass-1" };
        Assert.Equal(0, _box.Run(["run"], env).ExitCode);
        var r = _box.Run(["drill", "--json"], env);
        var d = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("drills")[0];
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        Assert.Equal("40", d.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "keys in the scratch etcd member").GetProperty("found").GetString());
        Assert.DoesNotContain(d.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("answers anyone", StringComparison.Ordinal));
        Assert.Empty(DrillTests.ProcessesNaming(_box.Root));
    }
}

/// <summary>CouchDB drills (scratch databases on the server) against a real CouchDB-compatible server.</summary>
public sealed class CouchDbDrillTests : IClassFixture<CouchServer>, IDisposable
{
    private readonly CouchServer _couch;
    private readonly Sandbox _box = new();

    public CouchDbDrillTests(CouchServer couch) => _couch = couch;

    public void Dispose() => _box.Dispose();

    private async Task<List<string>> ScratchDatabasesAsync() =>
        (await _couch.SendAsync(HttpMethod.Get, "/_all_dbs")).EnumerateArray().Select(e => e.GetString()!)
        .Where(n => n.StartsWith("backstop_drill_", StringComparison.Ordinal)).ToList();

    [Fact]
    public async Task A_couchdb_drill_writes_each_database_into_a_scratch_database_counts_it_and_deletes_it()
    {
        var db = "ledger_" + Guid.NewGuid().ToString("N")[..8];
        await _couch.SendAsync(HttpMethod.Put, "/" + db);
        await _couch.SendAsync(HttpMethod.Post, $"/{db}/_bulk_docs", new { docs = Enumerable.Range(0, 40).Select(i => new { _id = $"tx-{i:000}", n = i }).ToArray() });
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: couch, kind: couchdb, url: \"{_couch.Url}\", databases: [{db}] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run("drill", "--json");
        var d = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("drills")[0];
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        Assert.Equal("40", d.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == $"{db}.jsonl: documents").GetProperty("found").GetString());
        Assert.Empty(await ScratchDatabasesAsync());
    }

    [Fact]
    public async Task A_couchdb_drill_killed_with_sigkill_leaves_a_scratch_database_that_the_next_run_deletes()
    {
        var db = "big_" + Guid.NewGuid().ToString("N")[..8];
        await _couch.SendAsync(HttpMethod.Put, "/" + db);
        for (var batch = 0; batch < 4; batch++)
        {
            await _couch.SendAsync(HttpMethod.Post, $"/{db}/_bulk_docs",
                new { docs = Enumerable.Range(0, 2000).Select(i => new { _id = $"d-{batch:00}-{i:0000}", body = new string('x', 200) }).ToArray() });
        }

        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: couch, kind: couchdb, url: \"{_couch.Url}\", databases: [{db}] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var killed = false;
        for (var attempt = 0; attempt < 5 && !killed; attempt++)
        {
            using var drill = _box.Start("drill");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!drill.HasExited && DateTime.UtcNow < deadline && (await ScratchDatabasesAsync()).Count == 0)
            {
                await Task.Delay(5);
            }

            if (!drill.HasExited && (await ScratchDatabasesAsync()).Count > 0)
            {
                drill.Signal("KILL");
                killed = true;
            }

            drill.Wait();
        }

        Assert.True(killed, "the drill was never caught with its scratch database");
        Assert.NotEmpty(await ScratchDatabasesAsync());
        var next = _box.Run("run");
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.Contains("removed what a killed drill of 'couch' left", next.All, StringComparison.Ordinal);
        Assert.Empty(await ScratchDatabasesAsync());
    }

    [Fact]
    public async Task A_couchdb_drill_whose_drill_server_refuses_fails_naming_it_and_creates_nothing()
    {
        var db = "refused_" + Guid.NewGuid().ToString("N")[..8];
        await _couch.SendAsync(HttpMethod.Put, "/" + db);
        await _couch.SendAsync(HttpMethod.Post, $"/{db}/_bulk_docs", new { docs = new[] { new { _id = "a" } } });
        var closed = PostgresServer.FreePort();
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: couch, kind: couchdb, url: \"{_couch.Url}\", databases: [{db}], drill: {{ server: \"http://127.0.0.1:{closed}\" }} }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains($"127.0.0.1:{closed}", r.Stdout, StringComparison.Ordinal);
        Assert.Empty(await ScratchDatabasesAsync());
        Assert.Empty(Directory.GetDirectories(_box["state/staging"], ".backstop-drill-*"));
    }
}
