using System.Globalization;
using System.Text.Json;
using Backstop.Core.Config;
using Cronos;
using CsCheck;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Serve;

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
    public void A_failed_scheduled_run_is_logged_once_at_the_error_level()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" + Yaml.Command("broken", "echo refused >&2; exit 3", ", schedule: \"0 3 * * *\""));
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => _box.Snapshots().Any(s => s.GetProperty("state").GetString() == "failed"), "the catch-up run to fail", TimeSpan.FromSeconds(60));
        serve.Signal("TERM");
        var r = serve.Wait(TimeSpan.FromSeconds(30));
        var id = _box.Snapshots().Single().GetProperty("snapshot").GetString()!;
        var line = Assert.Single(r.Stdout.Split('\n'), l => l.Contains($"snapshot {id} FAILED", StringComparison.Ordinal));

        // One line per event through serve's log: the UTC time, the level (journald and Kubernetes filter on it), serve[event id].
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ fail: serve\[\d+\] broken: snapshot ", line);
        Assert.Matches(@"(?m)^\S+ info: serve\[\d+\] broken: run started$", r.Stdout);
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
    public void An_empty_token_is_no_token_inline_or_from_an_empty_file()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "serve: { listen: \"0.0.0.0:18098\", token: \"\" }\nsources:\n" + Yaml.Command("app", "echo data"));
        var inline = _box.Run("serve");
        Assert.Equal(2, inline.ExitCode);
        Assert.Contains("an empty token is no token", inline.Stderr, StringComparison.Ordinal);
        _box.Write("token", "\n");
        _box.WriteConfig(Yaml.LocalTarget() + $"serve: {{ listen: \"0.0.0.0:18098\", token: \"file:{_box["token"]}\" }}\nsources:\n" + Yaml.Command("app", "echo data"));
        var empty = _box.Run("serve");
        Assert.Equal(2, empty.ExitCode);
        Assert.Contains("is empty", empty.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled", empty.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Off_loopback_every_page_status_and_metrics_need_the_token_and_a_foreign_host_is_refused()
    {
        const string Token = "a-long-random-serve-token-4f1d9c";
        _box.WriteConfig(Yaml.LocalTarget() + $"serve: {{ listen: \"0.0.0.0:{_port}\", token: \"env:SERVE_TOKEN\" }}\nsources:\n" + Yaml.Command("app", "echo data"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        using var serve = _box.Start(["serve"], new Dictionary<string, string> { ["SERVE_TOKEN"] = Token });
        var url = $"http://127.0.0.1:{_port}";
        RunningCli.WaitUntil(() => Sandbox.Exec("curl", "-sf", $"{url}/healthz").ExitCode == 0, "serve listening", TimeSpan.FromSeconds(30));
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false });

        async Task<HttpResponseMessage> Get(string path, string? bearer = null, string? cookie = null, string? host = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url + path);
            if (bearer is not null)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
            }

            if (cookie is not null)
            {
                request.Headers.Add("Cookie", cookie);
            }

            if (host is not null)
            {
                request.Headers.Host = host;
            }

            return await http.SendAsync(request);
        }

        Assert.Equal("ok\n", await (await Get("/healthz")).Content.ReadAsStringAsync()); // open, and says nothing else
        foreach (var path in new[] { "/api/status", "/metrics" })
        {
            var refused = await Get(path);
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Equal("Bearer", refused.Headers.WwwAuthenticate.Single().Scheme);
            Assert.DoesNotContain("app", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await Get(path, bearer: Token + "x")).StatusCode);
            Assert.Equal(System.Net.HttpStatusCode.OK, (await Get(path, bearer: Token)).StatusCode);
        }

        var page = await Get("/");
        Assert.Equal(System.Net.HttpStatusCode.Redirect, page.StatusCode);
        Assert.Equal("/login", page.Headers.Location!.OriginalString);
        Assert.Equal(System.Net.HttpStatusCode.Redirect, (await Get("/source/app")).StatusCode);

        // The login form: the token once, for a session cookie (HttpOnly, SameSite=Strict).
        var form = await Get("/login");
        var csrf = form.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("backstop_csrf=", StringComparison.Ordinal)).Split(';')[0]["backstop_csrf=".Length..];
        async Task<HttpResponseMessage> Login(string token)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url + "/login")
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["csrf"] = csrf, ["token"] = token }),
            };
            request.Headers.Add("Cookie", $"backstop_csrf={csrf}");
            return await http.SendAsync(request);
        }

        Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await Login("wrong")).StatusCode);
        var login = await Login(Token);
        Assert.Equal(System.Net.HttpStatusCode.Redirect, login.StatusCode);
        var session = login.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("backstop_session=", StringComparison.Ordinal));
        Assert.Contains("httponly", session, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", session, StringComparison.OrdinalIgnoreCase);
        var dashboard = await Get("/", cookie: session.Split(';')[0]);
        Assert.Equal(System.Net.HttpStatusCode.OK, dashboard.StatusCode);
        Assert.Contains("data-source=\"app\"", await dashboard.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.Redirect, (await Get("/", cookie: "backstop_session=" + new string('0', 64))).StatusCode);

        // DNS rebinding: a name that is not this server's is refused, token or not; /healthz stays open.
        var rebound = await Get("/api/status", bearer: Token, host: $"attacker.example:{_port}");
        Assert.Equal(System.Net.HttpStatusCode.MisdirectedRequest, rebound.StatusCode);
        Assert.Contains("serve.hostnames", await rebound.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await Get("/api/status", bearer: Token, host: $"localhost:{_port}")).StatusCode);

        // Prometheus sends the token with authorization: and scrapes.
        var promPort = PostgresServer.FreePort();
        _box.Write("prometheus.yml", $"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: backstop\n" +
                                     $"    authorization: {{ type: Bearer, credentials: {Token} }}\n    static_configs: [ {{ targets: ['127.0.0.1:{_port}'] }} ]\n");
        Directory.CreateDirectory(_box["tsdb"]);
        using var prometheus = new ServerProcess("prometheus",
            [$"--config.file={_box["prometheus.yml"]}", $"--storage.tsdb.path={_box["tsdb"]}", $"--web.listen-address=127.0.0.1:{promPort}"], _box["tsdb"], "prometheus");
        RunningCli.WaitUntil(() =>
        {
            var r = Sandbox.Exec("curl", "-sf", $"http://127.0.0.1:{promPort}/api/v1/query?query=backstop_source_state%7Bsource%3D%22app%22%2Cstate%3D%22ok%22%7D");
            return r.ExitCode == 0 && JsonDocument.Parse(r.Stdout).RootElement.GetProperty("data").GetProperty("result").GetArrayLength() > 0;
        }, "prometheus to scrape serve with its token", TimeSpan.FromSeconds(60));
        serve.Signal("TERM");
        serve.Wait(TimeSpan.FromSeconds(30));
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
    public void Schedule_install_timers_writes_a_run_service_and_timer_per_schedule_that_systemd_verifies_and_removes_its_own_stale_units()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Serve(", jitter: 90s") + "verify: { deep_schedule: \"0 5 * * 0\" }\nsources:\n" +
                         Yaml.Command("app", "echo data", ", schedule: \"*/30 * * * *\", drill: { schedule: \"0 4 * * 6\" }") +
                         Yaml.Command("db", "echo data", ", schedule: \"0 3 * * *\", schedule_timezone: Europe/Paris, drill: { every: 7d }") +
                         Yaml.Command("manual", "echo data"));
        Directory.CreateDirectory(_box["units"]);
        File.WriteAllText(_box["units/backstop-custom.service"], "[Service]\nExecStart=/bin/true\n"); // not ours: never touched
        var r = _box.Run("schedule", "install", "--systemd", "--timers", "--dir", "units");
        Assert.True(r.ExitCode == 0, r.ToString());
        string[] ours = ["backstop-drill-app", "backstop-run-app", "backstop-run-db", "backstop-verify-deep"];
        Assert.Equal([.. ours.SelectMany(u => new[] { u + ".service", u + ".timer" }).Append("backstop-custom.service").Order(StringComparer.Ordinal)],
            Directory.GetFiles(_box["units"]).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var run = File.ReadAllText(_box["units/backstop-run-db.service"]);
        Assert.Contains($"--config {_box.Config} run --source db", run, StringComparison.Ordinal);
        Assert.Contains("Type=oneshot", run, StringComparison.Ordinal);
        var timer = File.ReadAllText(_box["units/backstop-run-db.timer"]);
        Assert.Contains("OnCalendar=*-*-* 3:0:00 Europe/Paris", timer, StringComparison.Ordinal);
        Assert.Contains("Persistent=true", timer, StringComparison.Ordinal);
        Assert.Contains("RandomizedDelaySec=90s", timer, StringComparison.Ordinal);
        Assert.Contains("drill --source app", File.ReadAllText(_box["units/backstop-drill-app.service"]), StringComparison.Ordinal);
        Assert.Contains("verify --deep", File.ReadAllText(_box["units/backstop-verify-deep.service"]), StringComparison.Ordinal);
        foreach (var unit in ours)
        {
            var verify = Sandbox.Exec("systemd-analyze", "verify", "--man=no", _box[$"units/{unit}.timer"], _box[$"units/{unit}.service"]);
            Assert.True(verify.ExitCode == 0, unit + ": " + verify);
        }

        Assert.Contains("enable --now backstop-drill-app.timer backstop-run-app.timer backstop-run-db.timer backstop-verify-deep.timer", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("db's drill.every is evaluated by 'backstop serve'", r.Stdout, StringComparison.Ordinal);

        // app loses its schedules: its units go, the foreign unit stays.
        _box.WriteConfig(Yaml.LocalTarget() + Serve() + "sources:\n" + Yaml.Command("app", "echo data") +
                         Yaml.Command("db", "echo data", ", schedule: \"0 3 * * *\""));
        var again = _box.Run("schedule", "install", "--systemd", "--timers", "--dir", "units");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(["backstop-custom.service", "backstop-run-db.service", "backstop-run-db.timer"],
            Directory.GetFiles(_box["units"]).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Contains("removed", again.Stdout, StringComparison.Ordinal);

        // Nothing scheduled: refused, nothing written.
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo data"));
        var none = _box.Run("schedule", "install", "--systemd", "--timers", "--dir", "units");
        Assert.Equal(2, none.ExitCode);
        Assert.Contains("nothing is scheduled", none.Stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(_box["units/backstop-run-db.timer"]));
    }

    [Fact]
    public void The_systemd_calendars_written_for_timers_fire_when_cronos_does_as_systemd_analyze_computes_them()
    {
        string[] crons = ["0 3 * * *", "*/15 * * * *", "30 2 * * 1-5", "0 9-17/4 * * *", "0 0 1,15 * 3", "5 4 * * SUN", "0 12 * JAN,JUL *", "@weekly", "0 22 * * FRI-SUN"];
        foreach (var zone in new[] { "UTC", "Europe/Paris", "America/New_York" })
        {
            foreach (var cron in crons)
            {
                var schedule = new Schedule(cron, cron.StartsWith('@') ? CronExpression.Parse(cron) : CronExpression.Parse(cron, CronFormat.Standard), TimeZoneInfo.FindSystemTimeZoneById(zone));
                var calendar = SystemdCalendar.From(schedule);
                for (var attempt = 0; ; attempt++)
                {
                    var now = DateTimeOffset.UtcNow;
                    var analyze = Sandbox.ExecEnv(null, new Dictionary<string, string> { ["TZ"] = "UTC" }, "systemd-analyze", "calendar", "--iterations=6", calendar);
                    Assert.True(analyze.ExitCode == 0, $"{cron} → {calendar}: {analyze}");
                    var systemd = analyze.Stdout.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("Next elapse:", StringComparison.Ordinal) || l.StartsWith("Iter. #", StringComparison.Ordinal))
                        .Select(l => DateTimeOffset.ParseExact(l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()[4..^4], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal)).ToList();
                    var cronos = new List<DateTimeOffset>();
                    var from = now;
                    while (cronos.Count < 6 && schedule.Next(from) is { } next)
                    {
                        cronos.Add(next);
                        from = next;
                    }

                    if (systemd.SequenceEqual(cronos) || attempt == 1)
                    {
                        Assert.True(systemd.SequenceEqual(cronos), $"{cron} ({zone}) → OnCalendar={calendar}\nsystemd: {string.Join(", ", systemd)}\ncronos:  {string.Join(", ", cronos)}");
                        break;
                    }
                }
            }
        }
    }

    [Fact]
    public void Random_cron_schedules_become_systemd_calendars_that_fire_when_cronos_does()
    {
        // Fields of every form cron takes: *, a value, a range, a step, a range with a step, a list, names.
        static CsCheck.Gen<string> Field(int min, int max, string[]? names = null) => CsCheck.Gen.OneOf(
            CsCheck.Gen.Const("*"),
            CsCheck.Gen.Int[min, max].Select(v => v.ToString(CultureInfo.InvariantCulture)),
            CsCheck.Gen.Int[min, max].Select(CsCheck.Gen.Int[min, max]).Select((a, b) => $"{Math.Min(a, b)}-{Math.Max(a, b)}"),
            CsCheck.Gen.Int[1, Math.Max(1, (max - min) / 2)].Select(s => $"*/{s}"),
            CsCheck.Gen.Int[min, max].Select(CsCheck.Gen.Int[1, 6]).Select((a, s) => $"{a}-{max}/{s}"),
            CsCheck.Gen.Int[min, max].Array[2, 4].Select(vs => string.Join(',', vs.Distinct().Order())),
            names is null ? CsCheck.Gen.Const("*") : CsCheck.Gen.Int[0, names.Length - 1].Select(i => names[i]));
        var cron = Field(0, 59).Select(Field(0, 23), Field(1, 28), Field(1, 12, ["JAN", "MAR", "JUL", "DEC"]), Field(0, 6, ["MON", "FRI", "SUN", "MON-FRI"]))
            .Select((m, h, dom, mon, dow) => $"{m} {h} {dom} {mon} {dow}");
        var checkedCount = 0;
        cron.Sample(text =>
        {
            Schedule schedule;
            string calendar;
            try
            {
                schedule = new Schedule(text, CronExpression.Parse(text, CronFormat.Standard), TimeZoneInfo.Utc);
                calendar = SystemdCalendar.From(schedule);
            }
            catch (Exception e) when (e is CronFormatException or ConfigException)
            {
                return; // not a schedule cron or systemd takes: said to the user, not compared
            }

            for (var attempt = 0; ; attempt++)
            {
                var now = DateTimeOffset.UtcNow;
                var analyze = Sandbox.ExecEnv(null, new Dictionary<string, string> { ["TZ"] = "UTC" }, "systemd-analyze", "calendar", "--iterations=4", calendar);
                Assert.True(analyze.ExitCode == 0, $"{text} → {calendar}: {analyze}");
                var systemd = analyze.Stdout.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("Next elapse:", StringComparison.Ordinal) || l.StartsWith("Iter. #", StringComparison.Ordinal))
                    .Select(l => DateTimeOffset.ParseExact(l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()[4..^4], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal)).ToList();
                var cronos = new List<DateTimeOffset>();
                var from = now;
                while (cronos.Count < 4 && schedule.Next(from) is { } next)
                {
                    cronos.Add(next);
                    from = next;
                }

                if (systemd.SequenceEqual(cronos) || attempt == 1)
                {
                    Assert.True(systemd.SequenceEqual(cronos), $"{text} → OnCalendar={calendar}\nsystemd: {string.Join(", ", systemd)}\ncronos:  {string.Join(", ", cronos)}");
                    Interlocked.Increment(ref checkedCount);
                    break;
                }
            }
        }, iter: 150, threads: 1);
        Assert.True(checkedCount > 50, $"only {checkedCount} of 150 random schedules were compared");
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

    [Fact]
    public async Task An_overdue_scenario_is_rehearsed_by_serve_a_failure_is_told_and_the_dashboard_links_its_runbook()
    {
        using var hook = new HttpReceiver();
        _box.Write("data/a.txt", "a");
        _box.WriteConfig("machine: vps1\n" + Yaml.LocalTarget() + Serve() + $"notify:\n  - {{ name: chat, kind: webhook, url: \"{hook.Url("/hook")}\" }}\n" +
                         "sources:\n  - { name: app, kind: files, paths: [./data] }\n" +
                         "recovery:\n  scenarios:\n    - { name: node-vps1, rto: 1h, lost: { machines: [vps1] }, every: 30d }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => hook.Requests.Any(r => r.Body.Contains("rehearsal_failed", StringComparison.Ordinal)), "the rehearsal's failure told", TimeSpan.FromSeconds(60));
        var told = JsonDocument.Parse(hook.Requests.First(r => r.Body.Contains("rehearsal_failed", StringComparison.Ordinal)).Body).RootElement;
        Assert.Contains("app has all 1 copy on vps1", told.GetProperty("text").GetString(), StringComparison.Ordinal);

        using var http = new HttpClient();
        var page = await http.GetStringAsync(new Uri($"http://127.0.0.1:{_port}/"));
        Assert.Contains("Disaster scenarios", page, StringComparison.Ordinal);
        Assert.Contains("/runbook/node-vps1", page, StringComparison.Ordinal);
        var runbook = await http.GetStringAsync(new Uri($"http://127.0.0.1:{_port}/runbook/node-vps1"));
        Assert.Contains("# Runbook: node-vps1", runbook, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync(new Uri($"http://127.0.0.1:{_port}/runbook/..%2F..%2Fbackstop.yaml"))).StatusCode);
        serve.Signal("TERM");
        serve.Wait(TimeSpan.FromSeconds(30));
    }
}
