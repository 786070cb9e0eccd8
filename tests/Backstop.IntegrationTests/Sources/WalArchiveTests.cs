using System.Text.Json;
using Backstop.Core.Catalog;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>
/// A real PostgreSQL whose archive_command is <c>backstop wal-push %p</c>, run by PostgreSQL itself as its own OS user
/// while the server writes: every segment shipped, read back and recorded with its LSN range; a target that is down
/// fails its own copy only while min_copies others take it, and holds the server's archiving back (PostgreSQL keeps the
/// segment and retries) when it is needed.
/// </summary>
public sealed class WalArchiveTests : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly PostgresServer _pg = new();

    public void Dispose()
    {
        _pg.Dispose();
        _box.Dispose();
    }

    /// <summary>The sandbox handed to postgres (archive_command runs as it), and the server archiving into it.</summary>
    private void Archiving(string targets, int minCopies, params string[] folders) => ArchivingWith("", targets, minCopies, folders);

    /// <summary>The same, with more keys for the source (", wal: {…}").</summary>
    private void ArchivingWith(string sourceKeys, string targets, int minCopies, params string[] folders)
    {
        // group: the catalog is shared with postgres, which runs wal-push, as a deployment does.
        _box.WriteConfig($"group: postgres\ncatalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: {{ min_copies: {minCopies}, rpo: 24h }}\ntargets:\n{targets}" +
                         $"sources:\n  - {{ name: pg, kind: postgres, mode: physical, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\"{sourceKeys} }}\n");
        // What postgres needs, as a deployment grants it: the configuration readable, the catalog's folder shared with
        // its group (group:), and the NAS folder writable (a NAS would take its own credentials).
        Assert.Equal(0, Sandbox.Exec("chmod", "755", _box.Root).ExitCode);
        Assert.Equal(0, Sandbox.Exec("chmod", "644", _box["backstop.yaml"]).ExitCode);
        Directory.CreateDirectory(_box["state"]);
        Assert.Equal(0, Sandbox.Exec("chgrp", "postgres", _box["state"]).ExitCode);
        Assert.Equal(0, Sandbox.Exec("chmod", "2770", _box["state"]).ExitCode);
        foreach (var folder in folders.Length > 0 ? folders : ["nas"])
        {
            Directory.CreateDirectory(_box[folder]);
            Assert.Equal(0, Sandbox.Exec("chown", "postgres:postgres", _box[folder]).ExitCode);
        }
        var dotnet = Sandbox.Exec("sh", "-c", "command -v dotnet").Stdout.Trim();
        var command = $"DOTNET_CLI_HOME={_box.Root} HOME={_box.Root} {dotnet} {Sandbox.BackstopDll} -c {_box["backstop.yaml"]} wal-push %p";
        _pg.Sql("postgres", "ALTER SYSTEM SET archive_mode = on");
        _pg.Sql("postgres", $"ALTER SYSTEM SET archive_command = '{command.Replace("'", "''", StringComparison.Ordinal)}'");
        _pg.Restart();
    }

    private void Write(int segments)
    {
        _pg.Sql("postgres", "CREATE TABLE IF NOT EXISTS ledger (id bigserial PRIMARY KEY, memo text)");
        for (var i = 0; i < segments; i++)
        {
            _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT md5(g::text) FROM generate_series(1, 20000) g; SELECT pg_switch_wal();");
        }
    }

    /// <summary>Waits for PostgreSQL's archiver; on a timeout, the end of its log says why.</summary>
    private void WaitUntil(Func<bool> condition, string what, int seconds)
    {
        try
        {
            RunningCli.WaitUntil(condition, what, TimeSpan.FromSeconds(seconds));
        }
        catch (TimeoutException e)
        {
            var log = File.ReadAllText(Path.Combine(_pg.Root, "log"));
            throw new TimeoutException($"{e.Message}; PostgreSQL's log ends with:\n{log[Math.Max(0, log.Length - 3000)..]}", e);
        }
    }

    /// <summary>The ledger table, archiving under way (its folders made by postgres), then a base backup (pg_basebackup waits for its last segment to be archived: wal-push runs during it).</summary>
    private void LedgerAndBaseBackup(IDictionary<string, string> env)
    {
        _pg.Sql("postgres", "CREATE TABLE ledger (id bigserial PRIMARY KEY, memo text)");
        _pg.Sql("postgres", "SELECT pg_switch_wal()");
        WaitUntil(() => Archiver().Archived >= 1, "archiving to start", 60);
        var run = _box.Run(["run"], env);
        Assert.True(run.ExitCode is 0 or 3, run.ToString());
    }

    private (long Archived, long Failed) Archiver()
    {
        var row = _pg.Scalar("postgres", "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver").Split(' ');
        return (long.Parse(row[0], System.Globalization.CultureInfo.InvariantCulture), long.Parse(row[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void PostgreSQL_archives_every_segment_through_wal_push_and_each_is_recorded_with_its_lsn_range()
    {
        Archiving("  - { name: nas, kind: local, path: ./nas }\n  - { name: usb, kind: local, path: ./usb }\n", minCopies: 2, "nas", "usb");
        Write(3);
        WaitUntil(() => Archiver().Archived >= 3, "PostgreSQL to archive three segments", 60);
        Assert.Equal(0, Archiver().Failed);

        using var catalog = CatalogStore.Open(_box["state/catalog.db"]);
        var archive = catalog.Archive("pg");
        Assert.True(archive.Count >= 3);
        Assert.All(archive, a =>
        {
            Assert.Equal("00000001", a.Folder);
            Assert.Equal(16L << 20, a.End - a.Start);
            Assert.Equal(["nas", "usb"], a.Copies.Where(c => c.State == CopyState.Verified).Select(c => c.Target).Order());
            Assert.True(File.Exists(_box[$"nas/pg/wal/00000001/{a.Name}.zst"]));
        });
        // Consecutive segments cover consecutive LSN ranges.
        var ordered = archive.OrderBy(a => a.Start).ToList();
        Assert.All(ordered.Zip(ordered.Skip(1)), p => Assert.Equal(p.First.End, p.Second.Start));

        // The stored segment decompresses to what PostgreSQL wrote (its own tools read it: pg_waldump).
        var first = ordered[0];
        var dump = Sandbox.Exec("sh", "-c", $"zstd -dc '{_box[$"nas/pg/wal/00000001/{first.Name}.zst"]}' > '{_box[first.Name]}' && '{_pg.Bin}/pg_waldump' -n 1 '{_box[first.Name]}'");
        Assert.True(dump.ExitCode == 0, dump.ToString());
    }

    [Fact]
    public void A_target_that_is_down_never_stops_the_archive_while_min_copies_others_take_it_and_holds_it_back_when_needed()
    {
        // usb's marker is missing (its disk is not plugged in): the target refuses every copy.
        Archiving("  - { name: nas, kind: local, path: ./nas }\n  - { name: usb, kind: local, path: ./usb, marker: .backstop-target }\n", minCopies: 1);
        Write(2);
        WaitUntil(() => Archiver().Archived >= 2, "PostgreSQL to archive on the nas alone", 60);
        using (var catalog = CatalogStore.Open(_box["state/catalog.db"]))
        {
            Assert.All(catalog.Archive("pg"), a =>
            {
                Assert.Equal(CopyState.Verified, a.Copies.Single(c => c.Target == "nas").State);
                Assert.Equal(CopyState.Failed, a.Copies.Single(c => c.Target == "usb").State);
            });
        }

        // Both needed now: PostgreSQL keeps the segment and retries, failing loudly in its log, until the usb is back.
        _box.WriteConfig(File.ReadAllText(_box["backstop.yaml"]).Replace("min_copies: 1", "min_copies: 2", StringComparison.Ordinal));
        Assert.Equal(0, Sandbox.Exec("chmod", "644", _box["backstop.yaml"]).ExitCode);
        var archived = Archiver().Archived;
        Write(1);
        WaitUntil(() => Archiver().Failed >= 1, "the archiving to fail while the usb is away", 60);
        Assert.Equal(archived, Archiver().Archived);
        Assert.Contains("is on 1 of the 2 target(s) min_copies needs", File.ReadAllText(Path.Combine(_pg.Root, "log")), StringComparison.Ordinal);
        var doctor = _box.Run(["doctor"], new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password });
        Assert.Contains("the archiver is failing now", doctor.Stdout, StringComparison.Ordinal);
        Assert.NotEqual(0, doctor.ExitCode);

        Directory.CreateDirectory(_box["usb"]);
        File.WriteAllText(_box["usb/.backstop-target"], "");
        Assert.Equal(0, Sandbox.Exec("chown", "-R", "postgres:postgres", _box["usb"]).ExitCode);
        WaitUntil(() => Archiver().Archived > archived, "the retried segment to be archived once the usb is back", 90);

        // The segments the usb missed while it was away are healed by the next run, from the nas, read back.
        var heal = _box.Run(["run"], new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password });
        Assert.Contains("healed 0000000", heal.Stdout + heal.Stderr, StringComparison.Ordinal);
        using var after = CatalogStore.Open(_box["state/catalog.db"]);
        Assert.All(after.Archive("pg"), a => Assert.Equal(CopyState.Verified, a.Copies.Single(c => c.Target == "usb").State));
        Assert.All(after.Archive("pg"), a => Assert.True(File.Exists(_box[$"usb/pg/wal/00000001/{a.StoredFile}"])));

        // A segment deleted on the usb is found by verify, and the next run heals it from the nas.
        var lost = after.Archive("pg")[0];
        File.Delete(_box[$"usb/pg/wal/00000001/{lost.StoredFile}"]);
        var verify = _box.Run("verify");
        Assert.NotEqual(0, verify.ExitCode);
        Assert.Contains($"wal {lost.Name}", verify.Stdout + verify.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, _box.Run(["run"], new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password }).ExitCode is 0 or 3 ? 0 : 1);
        Assert.True(File.Exists(_box[$"usb/pg/wal/00000001/{lost.StoredFile}"]));
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
    }

    /// <summary>Starts a restored data folder as postgres on a free port and waits for its recovery to end and the promotion; returns a query runner.</summary>
    private Func<string, string> StartRecovered(string data) => StartRecoveredAt(data).Query;

    private (Func<string, string> Query, int Port) StartRecoveredAt(string data)
    {
        var port = PostgresServer.FreePort();
        var log = Path.Combine(data, "startup.log");
        var start = Sandbox.Exec("runuser", "-u", "postgres", "--", Path.Combine(_pg.Bin, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "120",
            "-o", $"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data}", "start");
        Assert.True(start.ExitCode == 0, start + (File.Exists(log) ? File.ReadAllText(log) : ""));
        string Query(string sql) => Sandbox.ExecEnv(null, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password },
            Path.Combine(_pg.Bin, "psql"), "-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", "postgres", "-qAt", "-c", sql, "postgres").Stdout.Trim();
        WaitUntil(() => Query("SELECT pg_is_in_recovery()") == "f", "the restored server to finish its recovery and promote", 90);
        return (Query, port);
    }

    private void StopRecovered(string data) => Sandbox.Exec("runuser", "-u", "postgres", "--", Path.Combine(_pg.Bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop");

    [Fact]
    public void A_timeline_switch_after_a_promotion_keeps_the_chain_and_a_restore_follows_it_to_the_new_timeline()
    {
        Archiving("  - { name: nas, kind: local, path: ./nas }\n", minCopies: 1);
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        LedgerAndBaseBackup(env);
        _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT 'first' FROM generate_series(1, 1000)");
        Thread.Sleep(300);
        var beforeLate = ServerTime(sql => _pg.Scalar("postgres", sql));
        Thread.Sleep(300);
        _pg.Sql("postgres", "INSERT INTO ledger (memo) VALUES ('late: the bad transaction undone')");
        var archived = Archiver().Archived;
        _pg.Sql("postgres", "SELECT pg_switch_wal()");
        WaitUntil(() => Archiver().Archived > archived, "the first rows archived", 60);

        // The bad transaction undone: the primary is stopped, its copy recovered to the moment before it is promoted
        // (a new timeline branching inside the old one) and archives into the same source as the new primary.
        _pg.Stop();
        var restored = _box.Run(["restore", "--source", "pg", "--to-time", Time(beforeLate), "--to", _box["promoted"]], env);
        Assert.True(restored.ExitCode == 0, restored.ToString());
        var command = File.ReadAllText(Path.Combine(_pg.Data, "postgresql.auto.conf")).Split('\n').Last(l => l.StartsWith("archive_command", StringComparison.Ordinal));
        File.AppendAllText(_box["promoted/postgresql.auto.conf"], $"archive_mode = 'on'\n{command}\n");
        var (promoted, port) = StartRecoveredAt(_box["promoted"]);
        try
        {
            Assert.Equal("1000", promoted("SELECT count(*) FROM ledger"));
            promoted("INSERT INTO ledger (memo) SELECT 'second' FROM generate_series(1, 2000)");
            Thread.Sleep(300);
            var afterSecond = ServerTime(promoted);
            Thread.Sleep(300);
            promoted("SELECT pg_switch_wal()");
            WaitUntil(() =>
            {
                using var c = CatalogStore.Open(_box["state/catalog.db"]);
                var files = c.Archive("pg");
                return files.Any(a => a.Name == "00000002.history") && files.Any(a => a.Folder == "00000002" && a.End > 0);
            }, "the new timeline's history and first segment archived", 60);

            // The backups follow the new primary: its base backup holds the recovery settings its restore wrote, which a
            // later restore of it must not obey (an old target), only its own.
            _box.WriteConfig(File.ReadAllText(_box["backstop.yaml"]).Replace($"port: {_pg.Port}", $"port: {port}", StringComparison.Ordinal));
            Assert.Equal(0, Sandbox.Exec("chmod", "644", _box["backstop.yaml"]).ExitCode);
            var run = _box.Run(["run"], env);
            Assert.True(run.ExitCode is 0 or 3, run.ToString());
            promoted("INSERT INTO ledger (memo) SELECT 'third' FROM generate_series(1, 500)");
            promoted("SELECT pg_switch_wal()");
            WaitUntil(() =>
            {
                using var c = CatalogStore.Open(_box["state/catalog.db"]);
                return c.Archive("pg").Count(a => a.Folder == "00000002" && a.End > 0) >= 3; // the switch segment, the base backup's end, the third rows
            }, "the third rows archived", 60);

            // From the first base backup on timeline 1 to a moment on timeline 2: the old timeline's 'late' row never comes back.
            var mid = _box.Run(["restore", "--source", "pg", "--to-time", Time(afterSecond), "--to", _box["mid"]], env);
            Assert.True(mid.ExitCode == 0, mid.ToString());
            Assert.Equal(3000, RowsAfterRecovery(_box["mid"]));
        }
        finally
        {
            StopRecovered(_box["promoted"]);
        }

        // One window across the switch, no gap; a restore to its end from the newest base backup (taken on timeline 2).
        var window = Status().GetProperty("archive");
        Assert.Empty(window.GetProperty("problems").EnumerateArray());
        Assert.StartsWith("00000002", window.GetProperty("newest_file").GetString(), StringComparison.Ordinal);
        var after = _box.Run(["restore", "--source", "pg", "--to", _box["after-switch"]], env);
        Assert.True(after.ExitCode == 0, after.ToString());
        Assert.True(File.Exists(_box["after-switch/backstop_wal/00000002.history"]));
        Assert.Equal(3500, RowsAfterRecovery(_box["after-switch"]));
    }

    private static DateTimeOffset ServerTime(Func<string, string> query) =>
        DateTimeOffset.Parse(query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"), System.Globalization.CultureInfo.InvariantCulture);

    private static string Time(DateTimeOffset t) => t.ToString("yyyy-MM-dd HH:mm:ss.ffffff", System.Globalization.CultureInfo.InvariantCulture) + "+00";

    /// <summary>Starts a restored data folder as postgres on a free port, waits for its recovery to end, and counts the ledger's rows.</summary>
    private long RowsAfterRecovery(string data)
    {
        var port = PostgresServer.FreePort();
        var log = Path.Combine(data, "startup.log");
        var start = Sandbox.Exec("runuser", "-u", "postgres", "--", Path.Combine(_pg.Bin, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "120",
            "-o", $"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data}", "start");
        Assert.True(start.ExitCode == 0, start + (File.Exists(log) ? File.ReadAllText(log) : ""));
        try
        {
            string Query(string sql) => Sandbox.ExecEnv(null, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password },
                Path.Combine(_pg.Bin, "psql"), "-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", "postgres", "-qAt", "-c", sql, "postgres").Stdout.Trim();
            WaitUntil(() => Query("SELECT pg_is_in_recovery()") == "f", "the restored server to finish its recovery and promote", 90);
            Assert.Equal("off", Query("SHOW archive_mode")); // a restored copy never archives into production
            return long.Parse(Query("SELECT count(*) FROM ledger"), System.Globalization.CultureInfo.InvariantCulture);
        }
        finally
        {
            Sandbox.Exec("runuser", "-u", "postgres", "--", Path.Combine(_pg.Bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop");
        }
    }

    [Fact]
    public async Task A_base_backup_and_the_archived_wal_recover_to_the_start_to_a_time_between_an_insert_and_its_commit_and_to_the_end()
    {
        Archiving("  - { name: nas, kind: local, path: ./nas }\n", minCopies: 1);
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        LedgerAndBaseBackup(env);

        DateTimeOffset ServerNow() => DateTimeOffset.Parse(_pg.Scalar("postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"),
            System.Globalization.CultureInfo.InvariantCulture);
        Thread.Sleep(300);
        var start = ServerNow(); // the start of the window: the base backup, no row yet
        Thread.Sleep(300);
        _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT 'first' FROM generate_series(1, 1000)");

        // A transaction whose rows are inserted before the target time and committed after it: not there at that time.
        var pending = Task.Run(() => _pg.Sql("postgres", "BEGIN; INSERT INTO ledger (memo) SELECT 'pending' FROM generate_series(1, 500); SELECT pg_sleep(3); COMMIT;"));
        Thread.Sleep(1500);
        var between = ServerNow();
        Assert.Equal(0, (await pending).ExitCode);
        _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT 'second' FROM generate_series(1, 2000)");
        var archived = Archiver().Archived;
        _pg.Sql("postgres", "SELECT pg_switch_wal()");
        WaitUntil(() => Archiver().Archived > archived, "the last segment archived", 60);

        var atTime = _box.Run(["restore", "--source", "pg", "--to-time", between.ToString("yyyy-MM-dd HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture) + "+00",
            "--to", _box["at-time"]], env);
        Assert.True(atTime.ExitCode == 0, atTime.ToString());
        Assert.Contains("backstop_wal", atTime.Stdout + atTime.Stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(_box["at-time/recovery.signal"]));
        Assert.Equal(1000, RowsAfterRecovery(_box["at-time"]));
        var atStart = _box.Run(["restore", "--source", "pg", "--to-time", start.ToString("yyyy-MM-dd HH:mm:ss.ffffff", System.Globalization.CultureInfo.InvariantCulture) + "+00",
            "--to", _box["at-start"]], env);
        Assert.True(atStart.ExitCode == 0, atStart.ToString());
        Assert.Equal(0, RowsAfterRecovery(_box["at-start"]));

        // The stock recipe, run literally (zstd, tar, sha256sum, the server itself), recovers the same rows.
        var explain = _box.Run(["restore", "--source", "pg", "--to-time", between.ToString("yyyy-MM-dd HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture) + "+00",
            "--to", _box["by-hand"], "--explain"], env);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        Assert.Contains("recovery_target_time", explain.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("backstop ", explain.Stdout.Split('\n').Where(l => !l.StartsWith('#')).Aggregate("", (a, b) => a + b + "\n"), StringComparison.Ordinal);
        File.WriteAllText(_box["by-hand.sh"], explain.Stdout);
        var byHand = Sandbox.Exec("bash", "-e", _box["by-hand.sh"]);
        Assert.True(byHand.ExitCode == 0, byHand + "\n" + explain.Stdout);
        Assert.Equal(1000, RowsAfterRecovery(_box["by-hand"]));

        // --start: the restored server is started on a free port and replayed to the end before the restore returns.
        var atEnd = _box.Run(["restore", "--source", "pg", "--to", _box["at-end"], "--start"], env);
        Assert.True(atEnd.ExitCode == 0, atEnd.ToString());
        var port = System.Text.RegularExpressions.Regex.Match(atEnd.Stdout, "running on 127\\.0\\.0\\.1:(\\d+)").Groups[1].Value;
        try
        {
            var rows = Sandbox.ExecEnv(null, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password },
                Path.Combine(_pg.Bin, "psql"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-qAt", "-c", "SELECT count(*) || ' ' || pg_is_in_recovery() || ' ' || current_setting('archive_mode') FROM ledger", "postgres");
            Assert.Equal("3500 false off", rows.Stdout.Trim());
        }
        finally
        {
            StopRecovered(_box["at-end"]);
        }

        var outside = _box.Run(["restore", "--source", "pg", "--to-time", "2000-01-01 00:00:00+00", "--to", _box["too-early"]], env);
        Assert.Equal(1, outside.ExitCode);
        Assert.Contains("before the recovery window", outside.Stderr, StringComparison.Ordinal);
        var future = _box.Run(["restore", "--source", "pg", "--to-time", "2099-01-01 00:00:00+00", "--to", _box["too-late"]], env);
        Assert.Equal(1, future.ExitCode);
        Assert.Contains("the recovery window ends there", future.Stderr, StringComparison.Ordinal);
    }

    private JsonElement Status()
    {
        var status = _box.Run("status", "--json");
        return JsonDocument.Parse(status.Stdout).RootElement.GetProperty("sources")[0];
    }

    [Fact]
    public void A_target_down_past_queue_max_lets_the_server_go_on_and_the_gap_fails_the_source_within_a_status_until_a_new_base_backup()
    {
        ArchivingWith(", wal: { queue_max: 1MiB }", "  - { name: nas, kind: local, path: ./nas }\n", minCopies: 1);
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        _pg.Sql("postgres", "CREATE TABLE ledger (id bigserial PRIMARY KEY, memo text)");
        _pg.Sql("postgres", "SELECT pg_switch_wal()");
        WaitUntil(() => Archiver().Archived >= 1, "archiving to start", 60);
        var doctor = _box.Run(["doctor"], env);
        Assert.Contains("archive_command runs backstop wal-push", doctor.Stdout, StringComparison.Ordinal);
        Assert.Contains("archive_timeout is 0: a quiet server keeps its last writes", doctor.Stdout, StringComparison.Ordinal);
        _pg.Sql("postgres", "ALTER SYSTEM SET archive_timeout = '60s'");
        _pg.Sql("postgres", "SELECT pg_reload_conf()");
        Assert.Contains("archive_timeout is 60s, under wal.max_rpo 5m", _box.Run(["doctor"], env).Stdout, StringComparison.Ordinal);

        var run = _box.Run(["run"], env);
        Assert.True(run.ExitCode is 0 or 3, run.ToString());
        Write(1);
        try
        {
            RunningCli.WaitUntil(() => Status().GetProperty("archive").GetProperty("problems").GetArrayLength() == 0 && Status().GetProperty("state").GetString() == "ok",
                "the window to be whole", TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}: {_box.Run("status")}", e);
        }
        var window = Status().GetProperty("archive");
        Assert.True(window.GetProperty("rpo_seconds").GetInt64() < 60, window.ToString());
        Assert.True(window.GetProperty("rpo_met").GetBoolean());

        // The nas goes away (postgres may no longer write there): with 1 MiB allowed, the server is let go at once.
        Assert.Equal(0, Sandbox.Exec("chown", "root:root", _box["nas"]).ExitCode);
        Assert.Equal(0, Sandbox.Exec("chmod", "700", _box["nas"]).ExitCode);
        var archived = Archiver().Archived;
        Write(1);
        WaitUntil(() => Archiver().Archived > archived, "PostgreSQL to be let go past queue_max", 60);
        Assert.Equal(0, Archiver().Failed);
        Assert.Contains("over wal.queue_max", File.ReadAllText(Path.Combine(_pg.Root, "log")), StringComparison.Ordinal);

        // The nas is back: the next segment is stored, and the gap before it fails the source at once.
        Assert.Equal(0, Sandbox.Exec("chown", "postgres:postgres", _box["nas"]).ExitCode);
        archived = Archiver().Archived;
        Write(1);
        WaitUntil(() => Archiver().Archived > archived, "the next segment archived", 60);
        var broken = Status();
        Assert.Equal("failing", broken.GetProperty("state").GetString());
        Assert.Contains(broken.GetProperty("archive").GetProperty("problems").EnumerateArray(), p => p.GetString()!.Contains("the archive breaks after", StringComparison.Ordinal)
            && p.GetString()!.Contains("has no verified copy on any target", StringComparison.Ordinal));
        Assert.Equal(1, _box.Run("status").ExitCode);

        // A restore to the end stops before the gap, saying so; a new base backup starts a new window.
        var end = _box.Run(["restore", "--source", "pg", "--to", _box["at-end"]], env);
        Assert.NotEqual(0, end.ExitCode);
        Assert.Contains("has a gap at", end.Stderr, StringComparison.Ordinal);
        run = _box.Run(["run"], env);
        Assert.True(run.ExitCode is 0 or 3, run.ToString());
        var again = Status();
        Assert.NotEqual("failing", again.GetProperty("state").GetString());
        Assert.Contains(again.GetProperty("archive").GetProperty("problems").EnumerateArray(), p => p.GetString()!.Contains("the archive has a gap after", StringComparison.Ordinal));
    }

    [Fact]
    public void Retention_keeps_the_wal_from_the_oldest_kept_base_backup_and_nothing_older()
    {
        ArchivingWith(", retention: { last: 1 }", "  - { name: nas, kind: local, path: ./nas }\n", minCopies: 1);
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        LedgerAndBaseBackup(env);
        Write(2);
        var second = _box.Run(["run"], env); // the first base backup goes (last: 1), and the WAL only it needed
        Assert.True(second.ExitCode is 0 or 3, second.ToString());
        Assert.Contains("WAL file(s) older than the oldest kept base backup", second.Stdout + second.Stderr, StringComparison.Ordinal);

        using var catalog = CatalogStore.Open(_box["state/catalog.db"]);
        var kept = catalog.Snapshots("pg").Single(s => s.State == SnapshotState.Committed && s.Artifacts.All(a => a.Copies.Any(c => c.State == CopyState.Verified)));
        var start = kept.Facts["start_lsn"];
        var archive = catalog.Archive("pg");
        Assert.All(archive.Where(a => a.End > 0), a => Assert.True(a.End > start, $"{a.Name} ends before the kept base backup starts"));
        var onNas = Directory.GetFiles(_box["nas/pg/wal/00000001"]).Select(Path.GetFileName).ToList();
        Assert.Equal(archive.Select(a => a.StoredFile).Order(StringComparer.Ordinal), onNas.Order(StringComparer.Ordinal));
        Assert.Contains(archive, a => a.Name.EndsWith(".backup", StringComparison.Ordinal) || a.End > start); // what the kept base needs is there
        var status = Status();
        Assert.Equal(kept.Id, status.GetProperty("archive").GetProperty("from_snapshot").GetString());
        Assert.Empty(status.GetProperty("archive").GetProperty("problems").EnumerateArray());
    }

    [Fact]
    public void A_drill_recovers_a_throwaway_server_to_a_random_marker_serve_wrote_and_finds_exactly_the_markers_up_to_it()
    {
        var port = PostgresServer.FreePort();
        ArchivingWith(", drill: { marker_database: postgres, marker_every: 1s }",
            $"  - {{ name: nas, kind: local, path: ./nas }}\nserve: {{ listen: \"127.0.0.1:{port}\" }}\n", minCopies: 1);
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        LedgerAndBaseBackup(env);

        // serve writes a marker every second while the server works.
        using (var serve = _box.Start(["serve"], env))
        {
            for (var i = 0; i < 4; i++)
            {
                _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT md5(g::text) FROM generate_series(1, 5000) g");
                Thread.Sleep(1000);
            }

            WaitUntil(() => { using var c = CatalogStore.Open(_box["state/catalog.db"]); return c.Markers("pg").Count >= 4; }, "serve to write four markers", 60);
            serve.Signal("TERM");
            serve.Wait(TimeSpan.FromSeconds(60));
        }

        var archived = Archiver().Archived;
        _pg.Sql("postgres", "SELECT pg_switch_wal()");
        WaitUntil(() => Archiver().Archived > archived, "the markers' segment archived", 60);
        Assert.Equal(4, _pg.Scalar("postgres", "SELECT count(*) >= 4 FROM backstop_pitr_marker") == "t" ? 4 : 0);

        var chosen = new HashSet<long>();
        for (var i = 0; i < 2; i++)
        {
            var drill = _box.Run(["drill", "--source", "pg"], env);
            Assert.True(drill.ExitCode == 0, drill.ToString());
            using var catalog = CatalogStore.Open(_box["state/catalog.db"]);
            var d = catalog.Drills("pg").Last();
            Assert.True(d.Passed, d.Error);
            var said = System.Text.RegularExpressions.Regex.Match(drill.Stdout + drill.Stderr, "recovering to marker (\\d+)");
            Assert.True(said.Success, drill.ToString());
            var seq = long.Parse(said.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            chosen.Add(seq);

            // The evidence holds the check: exactly the markers up to the chosen one in the recovered server.
            var evidence = System.Text.RegularExpressions.Regex.Match(drill.Stdout, "evidence: (\\S+)").Groups[1].Value;
            using var json = JsonDocument.Parse(File.ReadAllText(evidence));
            var markers = json.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "markers");
            Assert.True(markers.GetProperty("passed").GetBoolean());
            Assert.Equal($"markers up to {seq}", markers.GetProperty("found").GetString());
        }

        Assert.NotEmpty(chosen);
    }

    [Fact]
    public async Task Pgbench_writing_while_a_base_backup_runs_and_segments_are_pushed_recovers_to_exactly_the_same_balances()
    {
        Archiving("  - { name: nas, kind: local, path: ./nas }\n", minCopies: 1);
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        var pgbenchEnv = new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password };
        string[] at = ["-h", "127.0.0.1", "-p", _pg.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", "postgres"];
        var init = Sandbox.ExecEnv(null, pgbenchEnv, Path.Combine(_pg.Bin, "pgbench"), [.. at, "-i", "-s", "2", "-q", "postgres"]);
        Assert.True(init.ExitCode == 0, init.ToString());

        // pgbench writes for 25 seconds (room for a slow machine); the nightly base backup runs in the middle of it; PostgreSQL pushes every
        // segment, switching at least every second (archive_timeout).
        _pg.Sql("postgres", "ALTER SYSTEM SET archive_timeout = '1s'");
        _pg.Sql("postgres", "SELECT pg_reload_conf()");
        var bench = Task.Run(() => Sandbox.ExecEnv(null, pgbenchEnv, Path.Combine(_pg.Bin, "pgbench"), [.. at, "-T", "25", "-c", "2", "-n", "postgres"]));
        await Task.Delay(2000);
        var run = _box.Run(["run"], env);
        Assert.True(run.ExitCode is 0 or 3, run.ToString());

        // While it writes, the current RPO stays under archive_timeout + 10 s (the goal), as status measures it.
        Assert.False(bench.IsCompleted, "pgbench ended before the RPO could be measured while it writes");
        var writing = Status().GetProperty("archive");
        Assert.True(writing.GetProperty("rpo_seconds").GetInt64() <= 1 + 10, writing.ToString());
        var done = await bench;
        Assert.True(done.ExitCode == 0, done.ToString());
        _pg.Sql("postgres", "ALTER SYSTEM SET archive_timeout = 0"); // quiet from here: the window stays where it is while it is compared
        _pg.Sql("postgres", "SELECT pg_reload_conf()");
        await Task.Delay(2500); // a switch the old timeout had due is archived before the last one is asked for
        var last = _pg.Scalar("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
        WaitUntil(() => string.CompareOrdinal(_pg.Scalar("postgres", "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").PadRight(24)[..24], last) >= 0, "every segment archived", 120);
        Assert.Equal(0, Archiver().Failed);
        const string Balances = "SELECT sum(abalance) || ' ' || count(*) || ' ' || (SELECT count(*) FROM pgbench_history) FROM pgbench_accounts";
        var expected = _pg.Scalar("postgres", Balances);

        using (var catalog = CatalogStore.Open(_box["state/catalog.db"]))
        {
            var segments = catalog.Archive("pg").Where(a => a.End > 0).OrderBy(a => a.Start).ToList();
            Assert.True(segments.Count >= 3, $"{segments.Count} segments");
            Assert.All(segments.Zip(segments.Skip(1)), p => Assert.Equal(p.First.End, p.Second.Start));
        }

        var before = Status().GetProperty("archive");
        Assert.Empty(before.GetProperty("problems").EnumerateArray());

        // The catalog lost: rebuilt from the manifests and the wal/ listing, the window is the same. What a tampered
        // target adds (a name that is no WAL file's, a segment in another timeline's folder) is refused, naming it.
        var real = Directory.GetFiles(_box["nas/pg/wal/00000001"], "0000000100000000000000*.zst").Order(StringComparer.Ordinal).First();
        Directory.CreateDirectory(_box["nas/pg/wal/00000002"]);
        File.Copy(real, _box["nas/pg/wal/00000002/" + Path.GetFileName(real)]);
        File.Copy(real, _box["nas/pg/wal/00000001/evil;rm -rf.zst"]);
        var rebuilt = _box.Run("catalog", "rebuild", "--force");
        Assert.True(rebuilt.ExitCode == 1, rebuilt.ToString()); // rebuilt, with problems said
        Assert.Contains($"belongs in pg/wal/00000001/, not the folder it is in", rebuilt.Stdout + rebuilt.Stderr, StringComparison.Ordinal);
        Assert.Contains("is not a WAL segment", rebuilt.Stdout + rebuilt.Stderr, StringComparison.Ordinal);
        File.Delete(_box["nas/pg/wal/00000002/" + Path.GetFileName(real)]);
        File.Delete(_box["nas/pg/wal/00000001/evil;rm -rf.zst"]);
        var after = Status().GetProperty("archive");
        Assert.Empty(after.GetProperty("problems").EnumerateArray());
        Assert.Equal(before.GetProperty("newest_file").GetString(), after.GetProperty("newest_file").GetString());
        Assert.Equal(before.GetProperty("files").GetInt32(), after.GetProperty("files").GetInt32());
        Assert.Equal(before.GetProperty("from_snapshot").GetString(), after.GetProperty("from_snapshot").GetString());
        var restored = _box.Run(["restore", "--source", "pg", "--to", _box["bench"]], env);
        Assert.True(restored.ExitCode == 0, restored.ToString());
        var query = StartRecovered(_box["bench"]);
        try
        {
            Assert.Equal(expected, query(Balances));
        }
        finally
        {
            StopRecovered(_box["bench"]);
        }

        // A segment of the window lost on every target (here the only one): verify finds it, status fails naming where
        // the window now ends, and a restore to the end is refused before anything is written.
        string lost;
        using (var catalog = CatalogStore.Open(_box["state/catalog.db"]))
        {
            var start = catalog.Snapshots("pg").Last(s => s.State == SnapshotState.Committed).Facts["start_lsn"];
            var inWindow = catalog.Archive("pg").Where(a => a.End > start).OrderBy(a => a.Start).ToList();
            lost = inWindow[inWindow.Count / 2].Name;
            File.Delete(_box[$"nas/pg/wal/00000001/{inWindow[inWindow.Count / 2].StoredFile}"]);
        }

        Assert.NotEqual(0, _box.Run("verify").ExitCode);
        var broken = Status();
        Assert.Equal("failing", broken.GetProperty("state").GetString());
        Assert.Contains(broken.GetProperty("archive").GetProperty("problems").EnumerateArray(),
            p => p.GetString()!.Contains("the archive breaks after", StringComparison.Ordinal) && p.GetString()!.Contains(lost, StringComparison.Ordinal));
        var refused = _box.Run(["restore", "--source", "pg", "--to", _box["past-the-gap"]], env);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("has a gap at", refused.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["past-the-gap"]));
    }

    [Fact]
    public void Serve_receives_the_wal_with_pg_receivewal_on_its_own_slot_where_archive_command_cannot_be_set()
    {
        // archive_mode stays off: only the replication protocol reaches the server, as with a managed one.
        var port = PostgresServer.FreePort();
        _box.WriteConfig($"catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: {{ min_copies: 1, rpo: 24h }}\ntargets:\n  - {{ name: nas, kind: local, path: ./nas }}\n" +
                         $"serve: {{ listen: \"127.0.0.1:{port}\" }}\nsources:\n  - {{ name: pg, kind: postgres, mode: physical, host: 127.0.0.1, port: {_pg.Port}, user: postgres, " +
                         "password: \"env:PG_TEST_PASSWORD\", wal: { receive: true } }\n");
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        _pg.Sql("postgres", "CREATE TABLE ledger (id bigserial PRIMARY KEY, memo text)");
        using (var serve = _box.Start(["serve"], env))
        {
            WaitUntil(() => _pg.Scalar("postgres", "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'backstop_pg' AND active") == "1",
                "serve to receive on its slot", 60);
            Assert.Contains("serve receives the WAL on slot backstop_pg", _box.Run(["doctor"], env).Stdout, StringComparison.Ordinal);
            var run = _box.Run(["run"], env);
            Assert.True(run.ExitCode is 0 or 3, run.ToString());
            _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT 'received' FROM generate_series(1, 1000)");
            var rows = _pg.Scalar("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
            WaitUntil(() => { using var c = CatalogStore.Open(_box["state/catalog.db"]); return c.Archive("pg", rows).Count == 1; }, "the rows' segment received and archived", 60);
            WaitUntil(() => Status() is var s && s.GetProperty("archive").GetProperty("to").ValueKind == JsonValueKind.String
                                                && s.GetProperty("archive").GetProperty("problems").GetArrayLength() == 0
                                                && s.GetProperty("state").GetString() == "ok", "the received WAL to make the window whole", 60);
            serve.Signal("TERM");
            serve.Wait(TimeSpan.FromSeconds(60));
        }

        // Pushed, then deleted; the newest pushed one stays (pg_receivewal resumes after it), and one received as serve
        // stopped waits for its next start.
        var left = Directory.GetFiles(_box["state/private/source-pg/wal-spool"]).Select(Path.GetFileName).Where(f => !f!.EndsWith(".partial", StringComparison.Ordinal)).ToList();
        Assert.True(left.Count <= 2, string.Join(", ", left));
        using (var catalog = CatalogStore.Open(_box["state/catalog.db"]))
        {
            var segments = catalog.Archive("pg").Where(a => a.End > 0).OrderBy(a => a.Start).ToList();
            Assert.All(segments.Zip(segments.Skip(1)), p => Assert.Equal(p.First.End, p.Second.Start));
            Assert.All(left, f => Assert.True(segments.Any(s => s.Name == f) || segments.All(s => string.CompareOrdinal(s.Name, f) < 0), f));
        }

        // serve is gone: the slot holds the WAL for it, and doctor says so.
        Assert.Contains("nothing receives on slot backstop_pg", _box.Run(["doctor"], env).Stdout, StringComparison.Ordinal);
        var restored = _box.Run(["restore", "--source", "pg", "--to", _box["received"]], env);
        Assert.True(restored.ExitCode == 0, restored.ToString());
        Assert.Equal(1000, RowsAfterRecovery(_box["received"]));
    }

    [Fact]
    public void A_server_that_keeps_its_configuration_outside_its_data_folder_restores_into_a_folder_that_starts()
    {
        // Debian's layout: the base backup holds no postgresql.conf or pg_hba.conf; the restore writes them where missing.
        _pg.MoveConfigOutOfData();
        Archiving("  - { name: nas, kind: local, path: ./nas }\n", minCopies: 1);
        var env = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };
        LedgerAndBaseBackup(env);
        _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT 'debian' FROM generate_series(1, 700)");
        var archived = Archiver().Archived;
        _pg.Sql("postgres", "SELECT pg_switch_wal()");
        WaitUntil(() => Archiver().Archived > archived, "the rows archived", 60);

        var restored = _box.Run(["restore", "--source", "pg", "--to", _box["debian"]], env);
        Assert.True(restored.ExitCode == 0, restored.ToString());
        Assert.StartsWith("# Written at restore", File.ReadAllText(_box["debian/postgresql.conf"]), StringComparison.Ordinal);
        Assert.Contains("local all all peer", File.ReadAllText(_box["debian/pg_hba.conf"]), StringComparison.Ordinal);
        Assert.Equal(700, RowsAfterRecovery(_box["debian"]));

        // The stock recipe writes them the same way, only where missing.
        var explain = _box.Run(["restore", "--source", "pg", "--to", _box["debian-by-hand"], "--explain"], env);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        Assert.Contains("[ -e ", explain.Stdout, StringComparison.Ordinal);
        File.WriteAllText(_box["debian.sh"], explain.Stdout);
        var byHand = Sandbox.Exec("bash", "-e", _box["debian.sh"]);
        Assert.True(byHand.ExitCode == 0, byHand + "\n" + explain.Stdout);
        Assert.Equal(700, RowsAfterRecovery(_box["debian-by-hand"]));
    }
}
