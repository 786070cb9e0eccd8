using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Backstop.IntegrationTests.Drill;

namespace Backstop.IntegrationTests.Recovery;

/// <summary>
/// Disaster rehearsals of a three-machine estate on this host (machines simulated by the <c>machine:</c> key, each with
/// its targets): vps1 runs Backstop and holds the app's files and a local disk; vps2 holds a PostgreSQL database (a real
/// server) and an SQLite ledger; the NAS is a machine of its own. Before each rehearsal the lost machine's catalog, key
/// and disk are deleted: the rehearsal trusts only what survives.
/// </summary>
public sealed class RehearsalTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly Sandbox _box = new();
    private readonly PostgresServer _pg;
    private readonly Dictionary<string, string> _env = new() { ["PG_TEST_PASSWORD"] = PostgresServer.Password };

    public RehearsalTests(PostgresServer pg) => _pg = pg;

    public void Dispose() => _box.Dispose();

    private CliResult Run(params string[] args) => _box.Run(args, _env);

    private string Estate(string extraSources = "", string recovery = "", string encryption = "", string appTargets = "[disk1, nas]", string shopNeeds = "",
        bool everyDatabase = true)
    {
        var db = "shop_" + Guid.NewGuid().ToString("N")[..8];
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2)); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g;");
        _box.Write("app/etc/app.conf", "listen 8080\n");
        _box.Write("app/data/report.csv", string.Join("\n", Enumerable.Range(1, 2000)));
        Assert.Equal(0, _box.Shell("sqlite3 ledger.db 'CREATE TABLE entries (id INTEGER PRIMARY KEY, amount INT); INSERT INTO entries (amount) VALUES (1), (2), (3);'").ExitCode);
        _box.WriteConfig(
            "machine: vps1\ncatalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\n" + encryption +
            "targets:\n  - { name: disk1, kind: local, path: ./disk1 }\n  - { name: disk2, kind: local, path: ./disk2, machine: vps2 }\n" +
            "  - { name: nas, kind: local, path: ./nas, machine: nas }\n" +
            "sources:\n" +
            $"  - {{ name: app, kind: files, paths: [./app], targets: {appTargets} }}\n" +
            $"  - {{ name: shop, kind: postgres, machine: vps2, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\", databases: {(everyDatabase ? "all" : $"[{db}]")}, targets: [disk2, nas]{shopNeeds} }}\n" +
            "  - { name: ledger, kind: sqlite, machine: vps2, path: ./ledger.db, targets: [disk2, nas] }\n" + extraSources +
            "recovery:\n  scenarios:\n" +
            "    - { name: node-vps1, rto: 10m, lost: { machines: [vps1] } }\n" +
            "    - { name: node-vps2, rto: 10m, lost: { machines: [vps2] } }\n" +
            "    - { name: cluster, rto: 10m, lost: { machines: all } }\n" + recovery);
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        return db;
    }

    private JsonElement Rehearse(string scenario, int exit = 0)
    {
        var r = Run("rehearse", scenario, "--json");
        Assert.True(r.ExitCode == exit, r.ToString());
        return JsonDocument.Parse(r.Stdout).RootElement;
    }

    /// <summary>What a lost machine takes with it: its catalog and key (kept only on it), and its disk.</summary>
    private void LoseVps1()
    {
        File.Delete(_box["state/catalog.db"]);
        Directory.Delete(_box["disk1"], recursive: true);
    }

    [Fact]
    public void Losing_a_machine_brings_its_sources_back_from_the_surviving_target_within_the_objective_and_its_runbook_does_the_same_literally()
    {
        Estate(recovery: "  manual: [{ step: \"provision vps1 again\", estimate: 1m }]\n");
        LoseVps1();
        var result = Rehearse("node-vps1");
        Assert.True(result.GetProperty("passed").GetBoolean());
        Assert.True(result.GetProperty("rto_met").GetBoolean());
        Assert.Equal(600, result.GetProperty("rto_seconds").GetInt64());
        var restore = Assert.Single(result.GetProperty("restores").EnumerateArray());
        Assert.Equal("app", restore.GetProperty("source").GetString());
        Assert.Equal("nas", restore.GetProperty("target").GetString()); // the off-site copy is the one proven
        Assert.True(restore.GetProperty("passed").GetBoolean());
        Assert.True(restore.GetProperty("phases").TryGetProperty("fetch_and_hash", out _));
        Assert.Equal(["app"], result.GetProperty("critical_path").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(60, result.GetProperty("manual")[0].GetProperty("estimate_seconds").GetInt64());
        Assert.True(result.GetProperty("seconds").GetDouble() >= 60); // the manual estimate is part of the total
        Assert.Empty(Directory.GetDirectories(_box["state/staging"], ".backstop-*"));

        // The runbook, followed literally with only its placeholders filled, brings the same files back.
        var runbook = JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(result.GetProperty("runbook").GetString()!, ".json"))).RootElement;
        var step = Assert.Single(runbook.GetProperty("steps").EnumerateArray());
        Assert.Equal("nas", step.GetProperty("target").GetString());
        Assert.Equal("nas", step.GetProperty("machine").GetString());
        Assert.Equal(["DEST"], step.GetProperty("placeholders").EnumerateArray().Select(p => p.GetString()));
        var commands = runbook.GetProperty("prelude").EnumerateArray().Concat(step.GetProperty("commands").EnumerateArray()).Select(c => c.GetString()!).ToList();
        var script = string.Join("\n", commands.Select(c => Fill(c, new() { ["WORK"] = _box["work"], ["DEST"] = _box["restored"] })));
        var followed = _box.Shell("set -e\n" + script);
        Assert.True(followed.ExitCode == 0, followed.ToString());
        Assert.Equal("listen 8080\n", File.ReadAllText(_box["restored"] + _box["app/etc/app.conf"]));
        Assert.Equal(File.ReadAllText(_box["app/data/report.csv"]), File.ReadAllText(_box["restored"] + _box["app/data/report.csv"]));
        var md = File.ReadAllText(result.GetProperty("runbook").GetString()!);
        Assert.Contains("provision vps1 again", md, StringComparison.Ordinal);
        Assert.Contains("from target 'nas' (machine nas)", md, StringComparison.Ordinal);

        // Recorded in the (new) live catalog: status and the dashboard read it.
        var status = JsonDocument.Parse(Run("status", "--json").Stdout).RootElement.GetProperty("scenarios");
        var vps1 = status.EnumerateArray().Single(s => s.GetProperty("name").GetString() == "node-vps1");
        Assert.True(vps1.GetProperty("last_rehearsal").GetProperty("passed").GetBoolean());
        Assert.Equal(JsonValueKind.Null, status.EnumerateArray().Single(s => s.GetProperty("name").GetString() == "cluster").GetProperty("last_rehearsal").ValueKind);
        var metrics = Run("metrics").Stdout;
        Assert.Contains("backstop_rehearsal_success{scenario=\"node-vps1\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("backstop_rehearsal_success{scenario=\"cluster\"} 0", metrics, StringComparison.Ordinal);
        Assert.Contains("backstop_rehearsal_seconds{scenario=\"node-vps1\"}", metrics, StringComparison.Ordinal);
    }

    /// <summary>A placeholder (a whole word in capitals) replaced by a quoted value, as a person fills it in.</summary>
    private static string Fill(string command, Dictionary<string, string> values) =>
        System.Text.RegularExpressions.Regex.Replace(command, @"(?<![\w.])(WORK|DEST)(?![\w.])", m => "'" + values[m.Value].Replace("'", "'\\''", StringComparison.Ordinal) + "'");

    [Fact]
    public void The_cluster_comes_back_in_needs_order_with_independent_sources_at_once_from_the_nas_only()
    {
        Estate(shopNeeds: ", needs: [ledger]");
        var result = Rehearse("cluster");
        Assert.True(result.GetProperty("passed").GetBoolean(), result.ToString());
        var restores = result.GetProperty("restores").EnumerateArray().ToDictionary(r => r.GetProperty("source").GetString()!);
        Assert.Equal(3, restores.Count);
        Assert.All(restores.Values, r => Assert.Equal("nas", r.GetProperty("target").GetString()));
        // shop needs ledger: it starts only once the ledger is back; app (files, the last stage) waits for both data sources.
        Assert.True(restores["shop"].GetProperty("began").GetDouble() >= restores["ledger"].GetProperty("ended").GetDouble());
        Assert.True(restores["app"].GetProperty("began").GetDouble() >= restores["shop"].GetProperty("ended").GetDouble());
        Assert.Equal(["ledger", "shop", "app"], result.GetProperty("restores").EnumerateArray().Select(r => r.GetProperty("source").GetString()));
        Assert.Equal(["ledger", "shop", "app"], result.GetProperty("critical_path").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains(restores["shop"].GetProperty("phases").EnumerateObject(), p => p.Name == "load");
    }

    [Fact]
    public void Two_independent_sources_are_restored_at_once_and_the_total_is_below_their_sum()
    {
        Estate();
        var result = Rehearse("node-vps2");
        Assert.True(result.GetProperty("passed").GetBoolean(), result.ToString());
        var restores = result.GetProperty("restores").EnumerateArray().ToList();
        Assert.Equal(["ledger", "shop"], restores.Select(r => r.GetProperty("source").GetString()).Order());
        // recovery.parallel 2: neither waits for the other.
        Assert.True(restores.Max(r => r.GetProperty("began").GetDouble()) < restores.Min(r => r.GetProperty("ended").GetDouble()));
        Assert.True(result.GetProperty("seconds").GetDouble() < restores.Sum(r => r.GetProperty("ended").GetDouble() - r.GetProperty("began").GetDouble()));
    }

    [Fact]
    public void A_source_whose_only_copies_are_on_the_lost_machine_fails_the_rehearsal_before_anything_is_restored()
    {
        Estate(appTargets: "[disk1]");
        var result = Rehearse("node-vps1", exit: 1);
        Assert.False(result.GetProperty("passed").GetBoolean());
        var lost = Assert.Single(result.GetProperty("unrecoverable").EnumerateArray());
        Assert.Equal("app", lost.GetProperty("source").GetString());
        Assert.Equal("node-vps1: app has all 1 copy on vps1: nothing survives; add a target that lives elsewhere (a NAS, a bucket)", lost.GetProperty("reason").GetString());
        Assert.Empty(result.GetProperty("restores").EnumerateArray());
        Assert.False(Directory.Exists(_box["state/staging"]) && Directory.GetDirectories(_box["state/staging"], ".backstop-*").Length > 0);

        // doctor says the same per scenario, as a failure, before anyone rehearses.
        var doctor = Run("doctor", "--json");
        var findings = JsonDocument.Parse(doctor.Stdout).RootElement.GetProperty("checks").EnumerateArray()
            .Where(f => f.GetProperty("check").GetString() == "scenario").ToList();
        Assert.Contains(findings, f => f.GetProperty("subject").GetString() == "scenario 'node-vps1'" && f.GetProperty("status").GetString() == "fail"
                                       && f.GetProperty("message").GetString()!.Contains("app has all 1 copy on vps1", StringComparison.Ordinal));
        Assert.Contains(findings, f => f.GetProperty("subject").GetString() == "scenario 'cluster'" && f.GetProperty("message").GetString()!.StartsWith("never rehearsed", StringComparison.Ordinal));
    }

    [Fact]
    public void A_corrupted_surviving_copy_fails_the_rehearsal_naming_the_copy()
    {
        Estate();
        LoseVps1();
        var copy = Directory.GetFiles(_box["nas/app"], "files.tar.zst", SearchOption.AllDirectories).Single();
        var bytes = File.ReadAllBytes(copy);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(copy, bytes);
        var result = Rehearse("node-vps1", exit: 1);
        var restore = Assert.Single(result.GetProperty("restores").EnumerateArray());
        Assert.False(restore.GetProperty("passed").GetBoolean());
        Assert.Contains("'nas'", restore.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("files.tar.zst", restore.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("app:", result.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_identity_kept_only_on_the_lost_machine_is_said_and_the_escrowed_copy_opens_the_copies()
    {
        Directory.CreateDirectory(_box["escrow"]);
        Assert.Equal(0, Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-o", _box["key.txt"]).ExitCode);
        File.Copy(_box["key.txt"], _box["escrow/key.txt"]);
        var recipient = Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-y", _box["key.txt"]).Stdout.Trim();
        var encryption = $"encryption: {{ recipients: [{recipient}], identities: [\"file:./key.txt\"] }}\n";
        Estate(encryption: encryption);
        LoseVps1();
        File.Delete(_box["key.txt"]);
        var unescrowed = Rehearse("node-vps1", exit: 1);
        Assert.Contains("identity (encryption.identities) lives on vps1", unescrowed.GetProperty("unrecoverable")[0].GetProperty("reason").GetString(), StringComparison.Ordinal);

        _box.WriteConfig(File.ReadAllText(_box["backstop.yaml"]) + "  identities: [\"file:./escrow/key.txt\"]\n");
        var escrowed = Rehearse("node-vps1");
        Assert.True(escrowed.GetProperty("passed").GetBoolean(), escrowed.ToString());
        Assert.Contains(escrowed.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("escrowed", StringComparison.Ordinal));
        var runbook = File.ReadAllText(Path.ChangeExtension(escrowed.GetProperty("runbook").GetString()!, ".json"));
        Assert.Contains("escrow/key.txt", runbook, StringComparison.Ordinal); // the runbook opens the copies with the escrowed key
    }

    [Fact]
    public void A_rehearsal_killed_with_sigkill_leaves_nothing_the_next_one_does_not_sweep()
    {
        Estate();
        using (var victim = _box.Start(["rehearse", "node-vps2"], _env))
        {
            RunningCli.WaitUntil(() => Directory.Exists(_box["state/staging"]) && Directory.GetDirectories(_box["state/staging"], ".backstop-drill-*").Length > 0,
                "a rehearsal's restore to be under way");
            victim.KillHard();
        }

        var next = Run("rehearse", "node-vps2");
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.Contains("removed what a killed rehearsal left", next.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetDirectories(_box["state/staging"], ".backstop-*"));
        Assert.Empty(DrillTests.ProcessesNaming(_box.Root));
        Assert.Equal("0", _pg.Scalar("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop_drill_%'"));
    }

    [Fact]
    public void Ctrl_c_stops_a_rehearsal_and_every_scratch_server_and_folder_goes_with_it()
    {
        Estate();
        using (var victim = _box.Start(["rehearse", "node-vps2"], _env))
        {
            RunningCli.WaitUntil(() => Directory.Exists(_box["state/staging"]) && Directory.GetDirectories(_box["state/staging"], ".backstop-drill-*").Length > 0,
                "a rehearsal's restore to be under way");
            victim.Signal("INT");
            var stopped = victim.Wait(TimeSpan.FromSeconds(60));
            Assert.NotEqual(0, stopped.ExitCode);
        }

        Assert.Empty(Directory.GetDirectories(_box["state/staging"], ".backstop-*"));
        Assert.Empty(DrillTests.ProcessesNaming(_box.Root));
        Assert.Equal("0", _pg.Scalar("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop_drill_%'"));
    }

    [Fact]
    public void What_a_loopback_rehearsal_cannot_time_is_named_as_manual_steps()
    {
        Estate();
        var result = Rehearse("node-vps2");
        var manual = result.GetProperty("manual").EnumerateArray().Select(m => m.GetProperty("step").GetString()!).ToList();
        Assert.Contains(manual, m => m.StartsWith("provision vps2 again", StringComparison.Ordinal));
        Assert.Contains(manual, m => m.StartsWith("the copies come from 'disk2'", StringComparison.Ordinal) || m.StartsWith("the copies come from 'nas'", StringComparison.Ordinal));
        Assert.All(result.GetProperty("manual").EnumerateArray(), m => Assert.Equal(0, m.GetProperty("estimate_seconds").GetInt64()));
        Assert.Contains("provision vps2 again", File.ReadAllText(result.GetProperty("runbook").GetString()!), StringComparison.Ordinal);
    }

    [Fact]
    public void A_database_no_source_backs_up_on_the_lost_machine_is_said_before_anything_is_restored()
    {
        var forgotten = "forgotten_" + Guid.NewGuid().ToString("N")[..8];
        _pg.Sql("postgres", $"CREATE DATABASE {forgotten}"); // on vps2's server, in no source
        var db = Estate(everyDatabase: false);
        var result = Rehearse("node-vps2", exit: 1);
        Assert.Empty(result.GetProperty("restores").EnumerateArray());
        var lost = result.GetProperty("unrecoverable").EnumerateArray().Single(u => u.GetProperty("source").GetString() == "shop");
        Assert.Contains($"127.0.0.1:{_pg.Port}", lost.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains(forgotten, lost.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("not backed up by any source, and lost with vps2", lost.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(db, lost.GetProperty("reason").GetString()!.Split(": ")[1].Split(" on ")[0].Split(", "));
    }

    [Fact]
    public void A_source_that_fails_holds_back_everything_that_needs_it_even_through_another()
    {
        Estate(shopNeeds: ", needs: [ledger]");
        var copy = Directory.GetFiles(_box["nas/ledger"], "*.zst", SearchOption.AllDirectories).Single();
        var bytes = File.ReadAllBytes(copy);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(copy, bytes);
        var result = Rehearse("cluster", exit: 1);
        var restores = result.GetProperty("restores").EnumerateArray().ToDictionary(r => r.GetProperty("source").GetString()!);
        Assert.False(restores["ledger"].GetProperty("passed").GetBoolean());
        Assert.Equal("not restored: it needs ledger, which did not come back", restores["shop"].GetProperty("error").GetString());
        Assert.StartsWith("not restored: it needs ", restores["app"].GetProperty("error").GetString(), StringComparison.Ordinal); // files wait for both data sources
        Assert.Equal(JsonValueKind.Null, restores["shop"].GetProperty("target").ValueKind); // never started
        Assert.Equal(JsonValueKind.Null, restores["app"].GetProperty("target").ValueKind);
    }
}
