using System.Globalization;
using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Doctor;

/// <summary><c>doctor</c> against real servers and real crontab and unit files: the audit's failures, each named.</summary>
public sealed class DoctorTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly PostgresServer _pg;
    private readonly Sandbox _box = new();
    private readonly Dictionary<string, string> _env = new() { ["PG_TEST_PASSWORD"] = PostgresServer.Password };

    public DoctorTests(PostgresServer pg) => _pg = pg;

    public void Dispose() => _box.Dispose();

    private static string NewName(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Nothing from this machine's own crontabs and units: only the files a test writes.</summary>
    private static string Doctor(string crontabs = "[]", string systemd = "[]") => $"doctor: {{ crontabs: {crontabs}, systemd: {systemd} }}\n";

    private List<JsonElement> Checks(IDictionary<string, string>? env = null)
    {
        var r = _box.Run(["doctor", "--json"], env ?? _env);
        return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("checks").EnumerateArray().ToList();
    }

    private static JsonElement One(List<JsonElement> checks, string check, string subjectPart) =>
        checks.Single(c => c.GetProperty("check").GetString() == check && c.GetProperty("subject").GetString()!.Contains(subjectPart, StringComparison.Ordinal));

    [Fact]
    public void Two_independent_servers_configured_as_primary_and_replica_fail_as_in_the_audit()
    {
        using var replica = new PostgresServer(); // another cluster, never a replica: the audit's "cluster"
        var db = NewName("shop");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE TABLE orders (id int); CREATE TABLE customers (id int);");
        _box.WriteConfig(Yaml.LocalTarget() + Doctor() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\", databases: [{db}], " +
                         $"replication: {{ min_replicas: 1, max_lag: 5m, replicas: [\"127.0.0.1:{replica.Port}\"] }} }}\n");
        var r = _box.Run(["doctor"], _env);
        Assert.True(r.ExitCode == 1, r.ToString());
        var checks = Checks();
        var primary = One(checks, "replication", "source 'pg'");
        Assert.Equal("fail", primary.GetProperty("status").GetString());
        Assert.Contains("0 replica(s) streaming, min_replicas is 1; pg_stat_replication has 0 row(s)", primary.GetProperty("message").GetString(), StringComparison.Ordinal);
        var other = One(checks, "replication", $"replica 127.0.0.1:{replica.Port}");
        Assert.Equal("fail", other.GetProperty("status").GetString());
        var message = other.GetProperty("message").GetString()!;
        Assert.Contains("not in recovery", message, StringComparison.Ordinal);
        Assert.Contains("another cluster", message, StringComparison.Ordinal);
        Assert.Contains("no row in pg_stat_wal_receiver", message, StringComparison.Ordinal);
        Assert.Contains($"database {db} (2 tables on the primary) does not exist there", message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_database_no_source_covers_is_named()
    {
        var covered = NewName("covered");
        var forgotten = NewName("forgotten");
        _pg.Sql("postgres", $"CREATE DATABASE {covered}");
        _pg.Sql("postgres", $"CREATE DATABASE {forgotten}");
        _box.WriteConfig(Yaml.LocalTarget() + Doctor() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\", databases: [{covered}] }}\n");
        var coverage = One(Checks(), "coverage", $"postgres 127.0.0.1:{_pg.Port}");
        Assert.Equal("warn", coverage.GetProperty("status").GetString());
        var message = coverage.GetProperty("message").GetString()!;
        Assert.Contains(forgotten, message, StringComparison.Ordinal);
        Assert.DoesNotContain(covered + ",", message, StringComparison.Ordinal);
        Assert.DoesNotContain("template", message, StringComparison.Ordinal);
        Assert.DoesNotContain("postgres,", message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_crontab_with_a_moved_script_and_a_command_missing_from_crons_path_fails_naming_the_absolute_path()
    {
        // ledgerctl (a peer's ledger tool) exists only in a folder of this shell's PATH, not in cron's /usr/bin:/bin: the audit's missing kubectl.
        var bin = _box["tools/bin"];
        _box.Write("tools/bin/ledgerctl", "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(Path.Combine(bin, "ledgerctl"), (UnixFileMode)0b111_101_101);
        _box.Write("scripts/backup-now.sh", "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(_box["scripts/backup-now.sh"], (UnixFileMode)0b111_101_101);
        _box.Write("cron/system", $"""
            # system format: a user field
            SHELL=/bin/sh
            30 2 * * * root /opt/backup/pg_backup_deprecated.sh >> /var/log/pg_backup.log 2>&1
            0 3 * * * root {_box["scripts/backup-now.sh"]} 2>&1 | logger -t backup
            """);
        _box.Write("cron/user", """
            # user format: no user field
            0 4 * * * ledgerctl get secrets -A -o yaml > /srv/backup/secrets.yaml
            15 4 * * * /bin/sh /srv/scripts/ledger-backup.sh
            @daily echo ok % not part of the command
            """);
        _box.WriteConfig(Yaml.LocalTarget() + Doctor($"[./cron/system, ./cron/user]") + "sources:\n" + Yaml.Command("app", "echo x"));
        var env = new Dictionary<string, string> { ["PATH"] = $"{bin}:/usr/bin:/bin" };
        var r = _box.Run(["doctor"], env);
        Assert.True(r.ExitCode == 1, r.ToString());
        var schedule = Checks(env).Where(c => c.GetProperty("check").GetString() == "schedule").ToList();
        var moved = schedule.Single(c => c.GetProperty("subject").GetString()!.EndsWith("cron/system:3", StringComparison.Ordinal));
        Assert.Equal("fail", moved.GetProperty("status").GetString());
        Assert.Contains("/opt/backup/pg_backup_deprecated.sh does not exist", moved.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(schedule, c => c.GetProperty("subject").GetString()!.EndsWith("cron/system:4", StringComparison.Ordinal));
        var ledgerctl = schedule.Single(c => c.GetProperty("subject").GetString()!.EndsWith("cron/user:2", StringComparison.Ordinal));
        Assert.Contains($"'ledgerctl' is not in cron's PATH (/usr/bin:/bin); here it is {bin}/ledgerctl", ledgerctl.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains($"PATH={bin}:/usr/bin:/bin", ledgerctl.GetProperty("fix").GetString(), StringComparison.Ordinal);
        var script = schedule.Single(c => c.GetProperty("subject").GetString()!.EndsWith("cron/user:3", StringComparison.Ordinal));
        Assert.Contains("the script /srv/scripts/ledger-backup.sh does not exist", script.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(schedule, c => c.GetProperty("subject").GetString()!.EndsWith("cron/user:4", StringComparison.Ordinal));

        // With the crontab's own PATH line, ledgerctl is found.
        File.WriteAllText(_box["cron/user"], $"PATH={bin}:/usr/bin:/bin\n0 4 * * * ledgerctl get secrets -A -o yaml > /srv/backup/secrets.yaml\n");
        Assert.Equal("ok", Checks(env).Single(c => c.GetProperty("subject").GetString()!.EndsWith("cron/user", StringComparison.Ordinal)).GetProperty("status").GetString());
    }

    [Fact]
    public void A_timer_whose_service_runs_a_missing_program_fails()
    {
        _box.Write("units/backup.timer", "[Timer]\nOnCalendar=daily\n");
        _box.Write("units/backup.service", "[Service]\nType=oneshot\nExecStart=/usr/local/bin/old-backup --all\n");
        _box.Write("units/orphan.timer", "[Timer]\nOnCalendar=daily\nUnit=gone.service\n");
        _box.Write("units/fine.timer", "[Timer]\nOnCalendar=daily\n");
        _box.Write("units/fine.service", "[Service]\nExecStart=-/bin/true\n");
        _box.WriteConfig(Yaml.LocalTarget() + Doctor(systemd: "[./units]") + "sources:\n" + Yaml.Command("app", "echo x"));
        var schedule = Checks().Where(c => c.GetProperty("check").GetString() == "schedule").ToList();
        Assert.Contains(schedule, c => c.GetProperty("status").GetString() == "fail" && c.GetProperty("message").GetString()!.Contains("/usr/local/bin/old-backup does not exist", StringComparison.Ordinal));
        Assert.Contains(schedule, c => c.GetProperty("status").GetString() == "fail" && c.GetProperty("message").GetString()!.Contains("starts gone.service, which does not exist", StringComparison.Ordinal));
        Assert.Contains(schedule, c => c.GetProperty("status").GetString() == "ok" && c.GetProperty("subject").GetString()!.EndsWith("fine.timer", StringComparison.Ordinal));
    }

    [Fact]
    public void A_configuration_readable_by_others_with_an_inline_secret_fails_without_printing_it()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Doctor() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"{PostgresServer.Password}\", databases: [postgres] }}\n");
        File.SetUnixFileMode(_box.Config, (UnixFileMode)0b110_100_100);
        var r = _box.Run(["doctor", "--json"], new Dictionary<string, string>());
        Assert.DoesNotContain(PostgresServer.Password, r.All, StringComparison.Ordinal);
        var secrets = One(JsonDocument.Parse(r.Stdout).RootElement.GetProperty("checks").EnumerateArray().ToList(), "secrets", _box.Config);
        Assert.Equal("fail", secrets.GetProperty("status").GetString());
        Assert.Contains("line 8", secrets.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("chmod 600", secrets.GetProperty("fix").GetString(), StringComparison.Ordinal);
        File.SetUnixFileMode(_box.Config, (UnixFileMode)0b110_100_000); // its group can read it: as bad
        Assert.Contains("group", One(Checks(new Dictionary<string, string>()), "secrets", _box.Config).GetProperty("message").GetString(), StringComparison.Ordinal);
        File.SetUnixFileMode(_box.Config, (UnixFileMode)0b110_000_000);
        Assert.Equal("warn", One(Checks(new Dictionary<string, string>()), "secrets", _box.Config).GetProperty("status").GetString());
    }

    [Fact]
    public void An_unreachable_source_and_a_missing_target_folder_fail_and_a_healthy_setup_passes()
    {
        _box.WriteConfig(Yaml.LocalTarget("./nowhere/backups") + Doctor() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {PostgresServer.FreePort()}, user: postgres, password: \"env:PG_TEST_PASSWORD\" }}\n");
        var checks = Checks();
        Assert.Equal("fail", One(checks, "preflight", "source 'pg'").GetProperty("status").GetString());
        Assert.Contains("refused", One(checks, "preflight", "source 'pg'").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("fail", One(checks, "target", "target 'local'").GetProperty("status").GetString());

        Directory.CreateDirectory(_box["backups"]);
        _box.WriteConfig(Yaml.LocalTarget() + Doctor() + "sources:\n" + Yaml.Command("app", "echo x"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Run("drill").ExitCode);
        var r = _box.Run("doctor");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("a probe object was written, read back and deleted", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.GetFiles(_box["backups"], "*", SearchOption.AllDirectories), f => f.Contains(".backstop-doctor", StringComparison.Ordinal));
        Assert.Contains("warn redundancy", r.Stdout, StringComparison.Ordinal); // one target, one copy
    }

    [Fact]
    public void Redis_replication_needs_its_replicas_online()
    {
        using var primary = new RedisServer(password: false);
        _box.WriteConfig(Yaml.LocalTarget() + Doctor() + "sources:\n" +
                         $"  - {{ name: cache, kind: redis, port: {primary.Port}, replication: {{ min_replicas: 1, max_lag: 30s }} }}\n");
        var alone = One(Checks(), "replication", "source 'cache'");
        Assert.Equal("fail", alone.GetProperty("status").GetString());
        Assert.Contains("0 replica(s) online, min_replicas is 1; none is connected", alone.GetProperty("message").GetString(), StringComparison.Ordinal);

        using var replica = new RedisServer(password: false);
        Assert.Equal("OK", replica.Cli("REPLICAOF", "127.0.0.1", primary.Port.ToString(CultureInfo.InvariantCulture)).Stdout.Trim());
        RunningCli.WaitUntil(() => primary.Cli("INFO", "replication").Stdout.Contains("state=online", StringComparison.Ordinal), "the replica online");
        var online = One(Checks(), "replication", "source 'cache'");
        Assert.Equal("ok", online.GetProperty("status").GetString());
        Assert.Contains($"127.0.0.1:{replica.Port} online", online.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_s3_target_is_probed_and_its_clock_compared_and_a_skewed_one_fails()
    {
        using var s3 = new S3Server();
        _box.WriteConfig(Yaml.LocalTarget().Replace("targets:\n  - { name: local, kind: local, path: ./backups }\n", "targets:\n" + s3.TargetYaml(), StringComparison.Ordinal) +
                         Doctor() + "sources:\n" + Yaml.Command("app", "echo x"));
        var checks = Checks(S3Server.Env);
        Assert.Equal("ok", One(checks, "target", "target 's3'").GetProperty("status").GetString());
        Assert.Equal("ok", One(checks, "clock", "target 's3'").GetProperty("status").GetString());

        // A server one hour behind (it answers every request with 403 and its Date, as S3 does to a bad signature).
        using var skewed = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        skewed.Start();
        var port = ((System.Net.IPEndPoint)skewed.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        _ = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var client = await skewed.AcceptTcpClientAsync(stop.Token);
                var stream = client.GetStream();
                var buffer = new byte[8192];
                var seen = "";
                while (!seen.Contains("\r\n\r\n", StringComparison.Ordinal) && await stream.ReadAsync(buffer, stop.Token) is var n and > 0)
                {
                    seen += System.Text.Encoding.ASCII.GetString(buffer, 0, n);
                }

                var date = DateTimeOffset.UtcNow.AddHours(-1).ToString("r", CultureInfo.InvariantCulture);
                await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 403 Forbidden\r\nDate: {date}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), stop.Token);
            }
        });
        _box.WriteConfig(Yaml.LocalTarget().Replace("targets:\n  - { name: local, kind: local, path: ./backups }\n",
                             $"targets:\n  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{port}\", bucket: b, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\", retries: 0, timeout: 5s }}\n",
                             StringComparison.Ordinal) + Doctor() + "sources:\n" + Yaml.Command("app", "echo x"));
        var clock = One(Checks(S3Server.Env), "clock", "target 's3'");
        stop.Cancel();
        Assert.Equal("fail", clock.GetProperty("status").GetString());
        Assert.Contains("1h from this host's", clock.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_backup_user_without_pg_monitor_is_told_to_get_it_instead_of_blaming_the_replicas()
    {
        var user = NewName("backup");
        _pg.Sql("postgres", $"CREATE ROLE {user} LOGIN PASSWORD '{PostgresServer.Password}'");
        _box.WriteConfig(Yaml.LocalTarget() + Doctor() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: {user}, password: \"env:PG_TEST_PASSWORD\", databases: [postgres], " +
                         "replication: { min_replicas: 1 } }\n");
        var replication = One(Checks(), "replication", "source 'pg'");
        Assert.Equal("fail", replication.GetProperty("status").GetString());
        Assert.Contains("may not read the replication statistics", replication.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains($"GRANT pg_monitor TO \"{user}\"", replication.GetProperty("fix").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Doctor_warns_when_the_throwaway_servers_of_drills_would_share_backstops_own_user()
    {
        _box.WriteConfig(Yaml.LocalTarget() + Doctor() + "sources:\n" +
                         "  - { name: cache, kind: redis, port: 1 }\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: postgres, databases: [postgres], drill: {{ server: \"postgresql://drill@127.0.0.1:{_pg.Port}\" }} }}\n");
        if (Environment.UserName == "root")
        {
            var root = One(Checks(), "drill", "scratch servers");
            Assert.Equal("ok", root.GetProperty("status").GetString());
            Assert.Contains("'cache' (a scratch redis-server) start their servers as the OS user backstop-drill", root.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.DoesNotContain("'pg'", root.GetProperty("message").GetString(), StringComparison.Ordinal); // its drill server is its own
            Assert.Equal(0, _box.Shell("mkdir -p state && chmod -R a+rwX state . && chmod a+r backstop.yaml").ExitCode);
            Sandbox.Exec("chmod", "o+rx", Path.GetDirectoryName(_box.Root)!);
        }

        var r = Environment.UserName == "root"
            ? Sandbox.ExecIn(_box.Root, "setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--",
                "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp", "dotnet", Sandbox.BackstopDll, "--config", _box.Config, "doctor", "--json"])
            : _box.Run(["doctor", "--json"], _env);
        var check = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("checks").EnumerateArray()
            .Single(c => c.GetProperty("check").GetString() == "drill" && c.GetProperty("subject").GetString() == "scratch servers");
        Assert.Equal("warn", check.GetProperty("status").GetString());
        Assert.Contains("not root, so the throwaway servers of drills ('cache' (a scratch redis-server)) run as that user too", check.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Doctor_shows_a_crontab_entry_without_its_secrets()
    {
        _box.Write("cron.d/backup", "0 3 * * * root PGPASSWORD=hunter2 /opt/gone/dump.sh && curl -fsS https://hc-ping.com/5e1f0c2a-secret-uuid\n");
        _box.WriteConfig(Yaml.LocalTarget() + Doctor($"[\"{_box["cron.d/backup"]}\"]") + "sources:\n" + Yaml.Command("app", "echo data"));
        var r = _box.Run(["doctor"], _env);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("/opt/gone/dump.sh", r.All, StringComparison.Ordinal);
        Assert.Contains("PGPASSWORD=***", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("5e1f0c2a", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", _box.Run(["doctor", "--json"], _env).All, StringComparison.Ordinal);
    }

    [Fact]
    public void An_s3_or_sftp_target_on_this_host_is_no_second_place_for_the_single_point_of_failure_check()
    {
        // MinIO and an SFTP server on a loopback address: two targets, two copies, and all of them on the source's host.
        _box.WriteConfig("catalog: ./state/catalog.db\npolicy: { min_copies: 2 }\n" + Doctor() + "targets:\n  - { name: local, kind: local, path: ./backups }\n" +
                         "  - { name: minio, kind: s3, endpoint: \"http://127.0.0.1:9\", bucket: backups, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\", retries: 0, timeout: 2s }\n" +
                         "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\", databases: [postgres] }}\n");
        var env = new Dictionary<string, string>(_env) { ["S3_KEY"] = "k", ["S3_SECRET"] = "s" };
        var finding = One(Checks(env), "redundancy", "source 'pg'");
        Assert.Equal("warn", finding.GetProperty("status").GetString());
        Assert.Contains("every target is on this host", finding.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
