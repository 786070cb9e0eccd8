using System.Globalization;
using Backstop.Core.Locking;
using Backstop.IntegrationTests.Support;
using Microsoft.Playwright;

namespace Backstop.IntegrationTests.Catalog;

/// <summary>
/// A fleet on the engines it already runs: agents as separate processes, each with its own state and machine name, one
/// catalog on a real PostgreSQL, one S3 server for the bytes. Kills, a restarted catalog server, a partitioned leader.
/// </summary>
public sealed class FleetTests : IClassFixture<PostgresServer>, IClassFixture<S3Server>, IDisposable
{
    private readonly PostgresServer _pg;
    private readonly S3Server _s3;
    private readonly string _database = "fleet_" + Guid.NewGuid().ToString("N")[..10];
    private readonly string _prefix = "fleet-" + Guid.NewGuid().ToString("N")[..6];
    private readonly List<Sandbox> _boxes = [];

    public FleetTests(PostgresServer pg, S3Server s3)
    {
        _pg = pg;
        _s3 = s3;
        _pg.Sql("postgres", $"CREATE DATABASE {_database}");
        Core.Catalog.CatalogStore.Open(PostgresCatalogTests.Engine(pg, _database)).Dispose(); // the schema, so the tests can watch it from the start
    }

    public void Dispose() => _boxes.ForEach(b => b.Dispose());

    private static Dictionary<string, string> Env(string machine) =>
        new(S3Server.Env) { ["PGPASSWORD"] = PostgresServer.Password, ["BACKSTOP_MACHINE"] = machine, ["BACKSTOP_SERVE_EVALUATE_SECONDS"] = "2" };

    /// <summary>An agent: its own folder (state, staging) with the fleet's one configuration.</summary>
    private Sandbox Agent(string sources, int? pgPort = null, string extra = "", string? database = null)
    {
        var box = new Sandbox();
        _boxes.Add(box);
        box.WriteConfig(
            $"catalog: {{url: \"postgresql://postgres@127.0.0.1:{pgPort ?? _pg.Port}/{database ?? _database}\", password: env:PGPASSWORD}}\n" +
            "staging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\n" + extra + "targets:\n" + _s3.TargetYaml("s3", _prefix) + "sources:\n" + sources);
        return box;
    }

    private static string Source(string name, string machine, string script) => Yaml.Command(name, script, $", machine: {machine}");

    private string Sql(string sql) => _pg.Scalar(_database, sql);

    private static string ThreeSources =>
        Source("web1", "node1", "head -c 300000 /dev/urandom") +
        Source("web2", "node2", "head -c 12000000 /dev/urandom; test -f slow && sleep 60; true") +
        Source("web3", "node3", "head -c 300000 /dev/urandom");

    [Fact]
    public void Three_agents_run_at_once_one_killed_mid_upload_is_failed_by_the_next_and_leaves_nothing_on_the_bucket()
    {
        var agents = Enumerable.Range(1, 3).Select(_ => Agent(ThreeSources)).ToList();
        agents[1].Write("slow", "");
        var runs = agents.Select((a, i) => a.Start(["run"], Env($"node{i + 1}"))).ToList();
        RunningCli.WaitUntil(() => Sql("SELECT count(*) FROM snapshots WHERE source = 'web2' AND state = 'running'") == "1", "web2 running", TimeSpan.FromSeconds(60));
        var first = runs[0].Wait();
        var third = runs[2].Wait();
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.True(third.ExitCode == 0, third.ToString());
        Thread.Sleep(3000); // 12 MB on its way to S3 in parts while the command still runs
        runs[1].KillHard();
        Assert.Equal("running", Sql("SELECT state FROM snapshots WHERE source = 'web2'"));

        // Each agent ran its own machine's source only, once.
        Assert.Equal("web1:node1,web2:node2,web3:node3", Sql("SELECT string_agg(name || ':' || machine, ',' ORDER BY name) FROM sources"));
        Assert.Equal("3", Sql("SELECT count(*) FROM snapshots"));

        // The next agent to run sees web2's lock free: the dead agent's snapshot is failed; the others are untouched.
        var next = agents[0].Run(["run"], Env("node1"));
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.Contains("of 'web2' was interrupted by a run that died; recorded as failed", next.All, StringComparison.Ordinal);
        Assert.Equal("failed", Sql("SELECT state FROM snapshots WHERE source = 'web2'"));
        Assert.Equal("1", Sql("SELECT count(*) FROM snapshots WHERE source = 'web3' AND state = 'committed'"));

        // node2 comes back: its run sweeps what the killed upload left under its own prefix, then backs up.
        File.Delete(agents[1]["slow"]);
        var again = agents[1].Run(["run"], Env("node2"));
        Assert.True(again.ExitCode == 0, again.ToString());
        var committed = Sql("SELECT string_agg(id, ',') FROM snapshots WHERE state = 'committed'").Split(',').ToHashSet();
        var bucket = Path.Combine(_s3.Root, _s3.Bucket, _prefix);
        var stored = Sandbox.FilesUnder(bucket).Select(f => f.Split('/')).ToList();
        Assert.NotEmpty(stored);
        Assert.All(stored, parts => Assert.True(parts.Length >= 3 && committed.Contains(parts[1]), "an object outside every committed snapshot: " + string.Join('/', parts)));
        Assert.Equal(4, stored.Select(p => p[1]).Distinct().Count());

        // One view from any machine: every machine's sources, each named with its machine, and --machine narrows it.
        var status = agents[2].Json(["status"], Env("node3"));
        Assert.Equal(["web1:node1:ok", "web2:node2:ok", "web3:node3:ok"], status.GetProperty("sources").EnumerateArray()
            .Select(s => $"{s.GetProperty("name").GetString()}:{s.GetProperty("machine").GetString()}:{s.GetProperty("state").GetString()}"));
        Assert.Equal(["node1", "node2", "node3"], status.GetProperty("machines").EnumerateArray().Select(m => m.GetProperty("name").GetString()));
        Assert.All(status.GetProperty("machines").EnumerateArray(), m => Assert.False(m.GetProperty("stale").GetBoolean()));
        var narrowed = agents[2].Json(["status", "--machine", "node2"], Env("node3"));
        Assert.Equal(["web2"], narrowed.GetProperty("sources").EnumerateArray().Select(s => s.GetProperty("name").GetString()));
        var list = agents[0].Run(["list", "--machine", "node9"], Env("node1"));
        Assert.Equal(2, list.ExitCode);
        Assert.Contains("--machine node9: no source of", list.Stderr, StringComparison.Ordinal);

        // The bucket alone gives the fleet's history back: a rebuild into a new catalog from the shared target has every machine's snapshots.
        var fresh = "fleet_" + Guid.NewGuid().ToString("N")[..10];
        _pg.Sql("postgres", $"CREATE DATABASE {fresh}");
        var rebuilder = Agent(ThreeSources, database: fresh);
        var rebuild = rebuilder.Run(["catalog", "rebuild"], Env("node3"));
        Assert.True(rebuild.ExitCode == 0, rebuild.ToString());
        Assert.Equal(Sql("SELECT string_agg(id || ':' || source, ',' ORDER BY id) FROM snapshots WHERE state = 'committed'"),
            _pg.Scalar(fresh, "SELECT string_agg(id || ':' || source, ',' ORDER BY id) FROM snapshots"));
        var again2 = rebuilder.Run(["catalog", "rebuild"], Env("node3"));
        Assert.Equal(2, again2.ExitCode);
        Assert.Contains("holds 4 snapshot(s) of the fleet; a rebuild fills an empty catalog", again2.Stderr, StringComparison.Ordinal);

        // A name is the fleet's: another live machine defining web1 is refused, and nothing of it is written.
        var rogue = Agent(Source("web1", "node9", "echo other"));
        var refused = rogue.Run(["run"], Env("node9"));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("source 'web1' is already defined by machine 'node1'", refused.All, StringComparison.Ordinal);
        Assert.Equal("node1", Sql("SELECT machine FROM sources WHERE name = 'web1'"));
        var elsewhere = agents[0].Run(["run", "--source", "web2"], Env("node1"));
        Assert.Equal(2, elsewhere.ExitCode);
        Assert.Contains("it runs on machine 'node2'", elsewhere.Stderr, StringComparison.Ordinal);
        var pruneElsewhere = agents[0].Run(["prune", "--source", "web2"], Env("node1"));
        Assert.Equal(2, pruneElsewhere.ExitCode);
        Assert.Contains("--source web2: it runs on machine 'node2' (the catalog is shared): prune it there", pruneElsewhere.Stderr, StringComparison.Ordinal);
        var prune = agents[0].Run(["prune", "--dry-run"], Env("node1"));
        Assert.True(prune.ExitCode == 0, prune.ToString());
        Assert.DoesNotContain("web2", prune.All, StringComparison.Ordinal); // its own machine's sources only
        Assert.DoesNotContain("web3", prune.All, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_agents_for_one_source_one_runs_and_the_other_exits_75_naming_its_machine_and_pid_or_waits()
    {
        var sources = Source("web1", "node1", "sleep 6; echo data");
        var a = Agent(sources);
        var b = Agent(sources);
        using var first = a.Start(["run"], Env("node1"));
        RunningCli.WaitUntil(() => Sql("SELECT count(*) FROM snapshots WHERE state = 'running'") == "1", "the first run", TimeSpan.FromSeconds(60));
        var second = b.Run(["run"], Env("node1"));
        Assert.True(second.ExitCode == 75, second.ToString());
        Assert.Contains($"source 'web1' is being backed up by machine 'node1', pid {first.Pid.ToString(CultureInfo.InvariantCulture)}", second.Stderr, StringComparison.Ordinal);
        Assert.Equal("1", Sql("SELECT count(*) FROM snapshots")); // the second began nothing

        var waited = b.Run(["run", "--wait=60s"], Env("node1"));
        Assert.True(waited.ExitCode == 0, waited.ToString());
        Assert.Contains("waiting up to 1m for source 'web1'", waited.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, first.Wait().ExitCode);
        Assert.Equal("2", Sql("SELECT count(*) FROM snapshots WHERE state = 'committed'"));
        Assert.Equal("t", Sql("SELECT (SELECT min(finished_at) FROM snapshots) <= (SELECT max(started_at) FROM snapshots)")); // one after the other, never at once
    }

    [Fact]
    public void A_catalog_server_restarted_during_a_run_fails_it_loudly_and_half_of_nothing_is_recorded()
    {
        var agent = Agent(Source("web1", "node1", "head -c 100000 /dev/urandom; test -f slow && sleep 6; true"));
        agent.Write("slow", "");
        using var run = agent.Start(["run"], Env("node1"));
        RunningCli.WaitUntil(() => Sql("SELECT count(*) FROM snapshots WHERE state = 'running'") == "1", "the run", TimeSpan.FromSeconds(60));
        _pg.Restart();
        var r = run.Wait();
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("catalog", r.Stderr, StringComparison.Ordinal);
        Assert.Equal("0", Sql("SELECT count(*) FROM snapshots WHERE state = 'committed'"));

        File.Delete(agent["slow"]);
        var next = agent.Run(["run"], Env("node1"));
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.Equal("committed:1,failed:1", Sql("SELECT string_agg(state || ':' || n, ',' ORDER BY state) FROM (SELECT state, count(*) n FROM snapshots GROUP BY state) x"));
        Assert.Equal(0, agent.Run(["verify", "--deep"], Env("node1")).ExitCode);
    }

    [Fact]
    public async Task A_leader_cut_off_by_the_network_is_replaced_and_leads_nothing_after_and_the_dashboard_shows_every_machine()
    {
        using var proxy = new FaultProxy(_pg.Port, long.MaxValue);
        int portA = PostgresServer.FreePort(), portB = PostgresServer.FreePort();
        var sources = Source("web1", "nodeA", "echo a") + Source("web2", "nodeB", "echo b");
        var a = Agent(sources, proxy.Port, $"serve: {{ listen: \"127.0.0.1:{portA}\" }}\n");
        var b = Agent(sources, null, $"serve: {{ listen: \"127.0.0.1:{portB}\" }}\n");
        Assert.Equal(0, a.Run(["run"], Env("nodeA")).ExitCode);
        Assert.Equal(0, b.Run(["run"], Env("nodeB")).ExitCode);
        var hi = ((ulong)FleetLocks.LeaderKey >> 32).ToString(CultureInfo.InvariantCulture);
        var lo = ((ulong)FleetLocks.LeaderKey & 0xFFFFFFFF).ToString(CultureInfo.InvariantCulture);
        string Leader() => Sql("SELECT coalesce(max(a.application_name), '') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid " +
                               $"WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = {hi} AND l.objid::bigint = {lo}");

        using var serveA = a.Start(["serve"], Env("nodeA"));
        RunningCli.WaitUntil(() => Leader().StartsWith("backstop nodeA ", StringComparison.Ordinal), "nodeA leading", TimeSpan.FromSeconds(60));
        using var serveB = b.Start(["serve"], Env("nodeB"));
        RunningCli.WaitUntil(() => Sandbox.Exec("curl", "-sf", $"http://127.0.0.1:{portB}/healthz").ExitCode == 0, "nodeB serving", TimeSpan.FromSeconds(30));
        Thread.Sleep(5000);
        Assert.StartsWith("backstop nodeA ", Leader(), StringComparison.Ordinal); // one leader at a time

        // The dashboard from either machine shows every machine's sources and every agent.
        using (var playwright = await Playwright.CreateAsync())
        await using (var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = "/usr/bin/chromium", Headless = true, Args = ["--no-sandbox"] }))
        {
            var page = await browser.NewPageAsync();
            Assert.Equal(200, (await page.GotoAsync($"http://127.0.0.1:{portB}/"))!.Status);
            Assert.Equal("nodeA", (await page.Locator("tr[data-source='web1'] td.machine").InnerTextAsync()).Trim());
            Assert.Equal("nodeB", (await page.Locator("tr[data-source='web2'] td.machine").InnerTextAsync()).Trim());
            Assert.Equal(["ok", "ok"], await Task.WhenAll((await page.Locator("#machines tbody tr").AllAsync()).Select(async r => (await r.GetAttributeAsync("data-state"))!)));
        }

        proxy.Partition();
        RunningCli.WaitUntil(() => Leader().StartsWith("backstop nodeB ", StringComparison.Ordinal), "nodeB taking over", TimeSpan.FromSeconds(60));
        var healed = DateTimeOffset.UtcNow;
        proxy.Heal();
        RunningCli.WaitUntil(() => Sql($"SELECT count(*) FROM machines WHERE name = 'nodeA' AND seen_at > '{Core.Text.Json.Time(healed)}'") == "1",
            "nodeA reporting again", TimeSpan.FromSeconds(90));
        Thread.Sleep(6000);
        Assert.StartsWith("backstop nodeB ", Leader(), StringComparison.Ordinal); // the old leader, back, does not lead again

        serveA.Signal("TERM");
        serveB.Signal("TERM");
        var ra = serveA.Wait(TimeSpan.FromSeconds(60));
        serveB.Wait(TimeSpan.FromSeconds(60));
        Assert.Equal(1, CountOf(ra.Stdout, "now leads the fleet's duties"));
        Assert.Contains("stops leading until it can", ra.Stdout, StringComparison.Ordinal);
    }

    private static int CountOf(string text, string what) => (text.Length - text.Replace(what, "", StringComparison.Ordinal).Length) / what.Length;
}
