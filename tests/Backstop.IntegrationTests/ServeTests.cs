using System.Globalization;
using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

/// <summary><c>serve</c>, the real program: schedules, catch-up, parallelism, the shared lock, SIGTERM, and a real Prometheus scraping it.</summary>
public sealed class ServeTests : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly int _port = PostgresServer.FreePort();

    public void Dispose() => _box.Dispose();

    private string Serve(string extra = "") => $"serve: {{ listen: \"127.0.0.1:{_port}\"{extra} }}\n";

    private static List<JsonElement> Valid(Sandbox box, string source) =>
        box.Snapshots().Where(s => s.GetProperty("source").GetString() == source && s.GetProperty("valid").GetBoolean()).ToList();

    private static DateTimeOffset Time(JsonElement s, string field) => s.GetProperty(field).GetDateTimeOffset();

    [Fact]
    public void A_schedule_of_every_minute_commits_a_snapshot_within_80_seconds()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" + Yaml.Command("app", "echo data", ", schedule: \"* * * * *\""));
        Assert.Equal(0, _box.Run("run").ExitCode); // backed up already: no catch-up, the schedule alone must run it
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => Valid(_box, "app").Count >= 2, "a scheduled snapshot", TimeSpan.FromSeconds(80));
        serve.Signal("TERM");
        var r = serve.Wait(TimeSpan.FromSeconds(30));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("app: next at", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("app: run started", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("catch-up", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void At_start_a_source_never_backed_up_or_behind_its_schedule_runs_at_once_and_one_on_time_waits()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" +
                         Yaml.Command("fresh", "echo data", ", schedule: \"0 3 1 1 *\"") + Yaml.Command("behind", "echo data", ", schedule: \"0 3 * * *\""));
        Assert.Equal(0, _box.Run("run", "--source", "fresh").ExitCode);
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => Valid(_box, "behind").Count >= 1, "the catch-up run", TimeSpan.FromSeconds(60));
        serve.Signal("TERM");
        var r = serve.Wait(TimeSpan.FromSeconds(30));
        Assert.Contains("behind: catch-up: never backed up; running now", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("fresh: catch-up", r.Stdout, StringComparison.Ordinal);
        Assert.Single(Valid(_box, "fresh")); // its yearly slot is not now
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Two_sources_due_together_honour_parallel(int parallel)
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve($", parallel: {parallel}") + "sources:\n" +
                         Yaml.Command("a", "sleep 2; echo a", ", schedule: \"0 3 * * *\"") + Yaml.Command("b", "sleep 2; echo b", ", schedule: \"0 3 * * *\""));
        using var serve = _box.Start("serve");
        try
        {
            RunningCli.WaitUntil(() => Valid(_box, "a").Count == 1 && Valid(_box, "b").Count == 1, "both catch-up runs", TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            serve.Signal("TERM");
            Assert.Fail($"both catch-up runs did not come: {serve.Wait(TimeSpan.FromSeconds(30))}\n{_box.Run("list")}");
        }

        serve.Signal("TERM");
        serve.Wait(TimeSpan.FromSeconds(30));
        var a = Valid(_box, "a")[0];
        var b = Valid(_box, "b")[0];
        var overlap = Time(a, "started_at") < Time(b, "finished_at") && Time(b, "started_at") < Time(a, "finished_at");
        Assert.Equal(parallel > 1, overlap);
    }

    [Fact]
    public void A_manual_run_holding_the_lock_is_waited_for_and_the_delayed_slot_is_said_and_run_after()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" +
                         Yaml.Command("slow", "sleep 6; echo slow") + Yaml.Command("app", "echo data", ", schedule: \"0 3 * * *\""));
        using var manual = _box.Start("run", "--source", "slow");
        RunningCli.WaitUntil(() => File.Exists(_box["state/catalog.db.lock"]) && _box.Shell("pgrep -f 'run --source slow' >/dev/null && sleep 1").ExitCode == 0,
            "the manual run", TimeSpan.FromSeconds(30));
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => Valid(_box, "app").Count == 1, "the delayed catch-up run", TimeSpan.FromSeconds(60));
        Assert.Equal(0, manual.Wait(TimeSpan.FromSeconds(30)).ExitCode);
        serve.Signal("TERM");
        var r = serve.Wait(TimeSpan.FromSeconds(30));
        Assert.Contains("run app: waiting:", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("the run lock is free again", r.Stdout, StringComparison.Ordinal);
        var slow = Valid(_box, "slow")[0];
        Assert.True(Time(Valid(_box, "app")[0], "started_at") >= Time(slow, "finished_at"), "the scheduled run started after the manual one");
    }

    [Fact]
    public void Sigterm_mid_run_stops_serve_cleanly_and_the_run_is_recorded_as_interrupted()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" + Yaml.Command("slow", "touch started; exec sleep 61", ", schedule: \"0 3 * * *\""));
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => File.Exists(_box["started"]), "the run", TimeSpan.FromSeconds(30));
        serve.Signal("TERM");
        var r = serve.Wait(TimeSpan.FromSeconds(30));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("stopped", r.Stdout, StringComparison.Ordinal);
        var snapshot = _box.Snapshots().Single();
        Assert.Equal("failed", snapshot.GetProperty("state").GetString());
        Assert.Equal(1, Sandbox.Exec("pgrep", "-x", "-f", "sleep 61").ExitCode); // its command was stopped too
    }

    [Fact]
    public void A_listen_address_off_loopback_without_a_token_is_refused()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "serve: { listen: \"0.0.0.0:18099\" }\nsources:\n" + Yaml.Command("app", "echo data"));
        var r = _box.Run("serve");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("set serve.token", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_real_prometheus_scrapes_metrics_and_status_serves_the_status_json()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" + Yaml.Command("app", "echo data"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        using var serve = _box.Start("serve");
        using var http = new HttpClient();
        RunningCli.WaitUntil(() => Sandbox.Exec("curl", "-sf", $"http://127.0.0.1:{_port}/healthz").ExitCode == 0, "serve listening", TimeSpan.FromSeconds(30));
        var status = JsonDocument.Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:{_port}/api/status"))).RootElement;
        Assert.Equal(_box.Json("status").GetProperty("sources").ToString(), status.GetProperty("sources").ToString());

        var promPort = PostgresServer.FreePort();
        _box.Write("prometheus.yml", $"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: backstop\n    static_configs: [ {{ targets: ['127.0.0.1:{_port}'] }} ]\n");
        Directory.CreateDirectory(_box["tsdb"]);
        using var prometheus = new ServerProcess("prometheus",
            [$"--config.file={_box["prometheus.yml"]}", $"--storage.tsdb.path={_box["tsdb"]}", $"--web.listen-address=127.0.0.1:{promPort}"], _box["tsdb"], "prometheus");
        string? value = null;
        RunningCli.WaitUntil(() =>
        {
            var r = Sandbox.Exec("curl", "-sf", $"http://127.0.0.1:{promPort}/api/v1/query?query=backstop_source_state%7Bsource%3D%22app%22%2Cstate%3D%22ok%22%7D");
            if (r.ExitCode != 0)
            {
                return false;
            }

            var result = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("data").GetProperty("result");
            value = result.GetArrayLength() > 0 ? result[0].GetProperty("value")[1].GetString() : null;
            return value is not null;
        }, "prometheus to scrape serve", TimeSpan.FromSeconds(60));
        Assert.Equal("1", value);
        var up = JsonDocument.Parse(Sandbox.Exec("curl", "-sf", $"http://127.0.0.1:{promPort}/api/v1/query?query=up").Stdout).RootElement;
        Assert.Equal("1", up.GetProperty("data").GetProperty("result")[0].GetProperty("value")[1].GetString());
        serve.Signal("TERM");
        serve.Wait(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Schedule_install_writes_a_serve_unit_with_absolute_paths_that_systemd_analyze_verifies()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" + Yaml.Command("app", "echo data", ", schedule: \"0 3 * * *\""));
        Directory.CreateDirectory(_box["units"]);
        var r = _box.Run("schedule", "install", "--systemd", "--dir", "units");
        Assert.True(r.ExitCode == 0, r.ToString());
        var unit = _box["units/backstop-serve.service"];
        var text = File.ReadAllText(unit);
        var exec = text.Split('\n').Single(l => l.StartsWith("ExecStart=", StringComparison.Ordinal))["ExecStart=".Length..].Split(' ');
        Assert.True(Path.IsPathRooted(exec[0]) && File.Exists(exec[0]), exec[0]);
        Assert.Contains($"--config {_box.Config} serve", text, StringComparison.Ordinal);
        var verify = Sandbox.Exec("systemd-analyze", "verify", "--man=no", unit);
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Contains("systemctl daemon-reload && systemctl enable --now backstop-serve.service", r.Stdout, StringComparison.Ordinal);

        var bad = _box.Run("schedule", "install");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--systemd", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_source_that_goes_stale_while_nothing_runs_is_told_once_by_serve()
    {
        using var hook = new HttpReceiver();
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + $"notify:\n  - {{ kind: webhook, url: \"{hook.Url("/ops")}\" }}\nsources:\n" +
                         Yaml.Command("app", "echo data", ", rpo: 2s"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        Thread.Sleep(2500); // past the RPO, with no schedule: nothing will run
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => hook.Requests.Any(r => r.Body.Contains("\"stale\"", StringComparison.Ordinal)), "the stale event", TimeSpan.FromSeconds(30));
        Thread.Sleep(1500);
        serve.Signal("TERM");
        serve.Wait(TimeSpan.FromSeconds(30));
        var stale = hook.Requests.Where(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("event").GetString() == "stale").ToList();
        Assert.Single(stale);
        Assert.Contains("RPO is 2s", JsonDocument.Parse(stale[0].Body).RootElement.GetProperty("text").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_digest_summarises_every_source_on_its_schedule()
    {
        using var hook = new HttpReceiver();
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + $"notify:\n  - {{ kind: webhook, url: \"{hook.Url("/ops")}\", events: [failed], digest: \"* * * * *\" }}\nsources:\n" +
                         Yaml.Command("app", "echo data") + Yaml.Command("broken", "exit 2"));
        Assert.Equal(1, _box.Run("run").ExitCode);
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => hook.Requests.Any(r => r.Body.Contains("\"digest\"", StringComparison.Ordinal)), "the digest", TimeSpan.FromSeconds(75));
        serve.Signal("TERM");
        serve.Wait(TimeSpan.FromSeconds(30));
        var digest = JsonDocument.Parse(hook.Requests.First(r => r.Body.Contains("\"digest\"", StringComparison.Ordinal)).Body).RootElement;
        var text = digest.GetProperty("text").GetString()!;
        Assert.Contains("1 of 2 source(s) ok", text, StringComparison.Ordinal);
        Assert.Contains("- app (command): ok", text, StringComparison.Ordinal);
        Assert.Contains("- broken (command): never", text, StringComparison.Ordinal);
        Assert.Equal("never", digest.GetProperty("state").GetString());
    }
}
