using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Drill;

/// <summary>
/// <c>drill</c> for the kinds that need no database server of their own (files, sqlite, command) and Redis (a
/// scratch redis-server): a passing drill, failing ones, the records it leaves, and nothing else left behind.
/// </summary>
public sealed class DrillTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private void FilesConfig(string drill = "", string policy = "")
    {
        _box.Write("data/a.txt", "alpha\n");
        _box.Write("data/sub/b.txt", new string('b', 10_000));
        _box.Write("data/sub/c.bin", string.Concat(Enumerable.Range(0, 2000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        _box.WriteConfig(Yaml.LocalTarget().Replace("policy: { min_copies: 1, rpo: 24h }", $"policy: {{ min_copies: 1, rpo: 24h{policy} }}", StringComparison.Ordinal) +
                         $"sources:\n  - {{ name: docs, kind: files, paths: [./data]{drill} }}\n");
    }

    private static JsonElement Drill(JsonElement doc) => doc.GetProperty("drills").EnumerateArray().Single();

    private JsonElement DrillJson(params string[] args)
    {
        var r = _box.Run(["drill", .. args, "--json"]);
        return Drill(JsonDocument.Parse(r.Stdout).RootElement);
    }

    /// <summary>Nothing the drill made is left: no scratch folder in staging, no process whose command line names it.</summary>
    private void AssertNothingLeft()
    {
        var staging = _box["state/staging"];
        Assert.Empty(Directory.Exists(staging) ? Directory.GetDirectories(staging, ".backstop-drill-*") : []);
        Assert.Empty(ProcessesNaming(staging));
    }

    /// <summary>
    /// Processes whose command line names the path, or that run in a folder under it (scratch servers run in their
    /// drill's folder; redis-server rewrites its command line), other than backstop itself.
    /// </summary>
    /// <summary>
    /// The drill's scratch server ran as the dedicated OS user backstop-drill when the tests run as root (as CI does), else
    /// as this user: read by the drill from the kernel (/proc), never what it asked for.
    /// </summary>
    internal static void AssertScratchRanUnprivileged(System.Text.Json.JsonElement drill, string server)
    {
        var expected = Environment.UserName == "root" ? "backstop-drill" : Environment.UserName;
        Assert.Contains(drill.GetProperty("notes").EnumerateArray(),
            n => n.GetString()!.Contains($"the scratch {server} runs as the OS user {expected} (uid", StringComparison.Ordinal));
    }

    internal static List<string> ProcessesNaming(string path) =>
        Directory.GetDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)).Select(d =>
        {
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(d, "cmdline")).Replace('\0', ' ');
                var cwd = new DirectoryInfo(Path.Combine(d, "cwd")).LinkTarget ?? "";
                return cmdline.Contains("backstop.dll", StringComparison.Ordinal) ? "" : cmdline + " (in " + cwd + ")";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return "";
            }
        }).Where(c => c.Contains(path, StringComparison.Ordinal)).ToList();

    [Fact]
    public void A_files_drill_restores_into_a_scratch_folder_compares_the_facts_records_it_and_leaves_evidence()
    {
        FilesConfig(", rto: 10m");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var snapshot = _box.Snapshots()[0].GetProperty("snapshot").GetString();
        var r = _box.Run("drill", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var d = Drill(JsonDocument.Parse(r.Stdout).RootElement);
        Assert.Equal("docs", d.GetProperty("source").GetString());
        Assert.Equal("files", d.GetProperty("kind").GetString());
        Assert.Equal(snapshot, d.GetProperty("snapshot").GetString());
        Assert.True(d.GetProperty("passed").GetBoolean());
        Assert.Equal(600, d.GetProperty("rto_seconds").GetInt64());
        Assert.True(d.GetProperty("rto_met").GetBoolean());
        Assert.True(d.GetProperty("seconds").GetDouble() > 0);
        foreach (var phase in new[] { "setup", "fetch_and_hash", "decrypt_and_decompress", "load", "checks", "teardown" })
        {
            Assert.True(d.GetProperty("phases").TryGetProperty(phase, out _), phase);
        }

        var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal("3", checks["files.tar: files"].GetProperty("found").GetString());
        Assert.Equal("3", checks["files.tar: files"].GetProperty("expected").GetString());
        Assert.True(checks["files.tar: bytes"].GetProperty("passed").GetBoolean());
        Assert.True(checks["files.tar: directories"].GetProperty("passed").GetBoolean());
        Assert.Equal(JsonValueKind.Null, d.GetProperty("error").ValueKind);

        // Evidence: the JSON and a Markdown report beside the catalog.
        var evidence = d.GetProperty("evidence").GetString()!;
        Assert.StartsWith(_box["state/drills"], evidence, StringComparison.Ordinal);
        Assert.True(File.Exists(evidence));
        var report = File.ReadAllText(Path.ChangeExtension(evidence, ".md"));
        Assert.Contains("PASSED", report, StringComparison.Ordinal);
        Assert.Contains("the copy on target `local`", report, StringComparison.Ordinal);
        Assert.Contains("| files.tar: files | 3 | 3 | passed |", report, StringComparison.Ordinal);

        // Recorded: status shows it, and show lists it with the snapshot.
        var status = _box.Json("status").GetProperty("sources")[0].GetProperty("last_drill");
        Assert.Equal(snapshot, status.GetProperty("snapshot").GetString());
        Assert.True(status.GetProperty("passed").GetBoolean());
        Assert.Equal(600, status.GetProperty("rto_seconds").GetInt64());
        Assert.True(status.GetProperty("rto_met").GetBoolean());
        Assert.Contains("passed", _box.Run("status").Stdout, StringComparison.Ordinal);
        var show = _box.Run("show", snapshot!);
        Assert.Contains("drill", show.Stdout, StringComparison.Ordinal);
        AssertNothingLeft();
    }

    [Fact]
    public void A_spot_check_finds_a_file_whose_stored_bytes_differ_from_the_unchanged_live_file()
    {
        FilesConfig(", drill: { spot_check: 100% }");
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.True(DrillJson().GetProperty("passed").GetBoolean());

        // What a capture that stored wrong bytes looks like from outside: the live file has the same size and time
        // as the one in the snapshot, and other bytes.
        var live = _box["data/sub/b.txt"];
        var time = File.GetLastWriteTimeUtc(live);
        File.WriteAllText(live, new string('X', 10_000));
        File.SetLastWriteTimeUtc(live, time);
        var r = _box.Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("spot check", r.Stdout, StringComparison.Ordinal);
        Assert.Contains(live, r.Stdout, StringComparison.Ordinal);
        AssertNothingLeft();
    }

    [Fact]
    public void A_spot_check_skips_files_changed_since_the_snapshot()
    {
        FilesConfig(", drill: { spot_check: 100% }");
        Assert.Equal(0, _box.Run("run").ExitCode);
        File.WriteAllText(_box["data/a.txt"], "changed later\n"); // a new time: not the snapshot's file any more
        var d = DrillJson();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        var spot = d.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString()!.StartsWith("spot check", StringComparison.Ordinal));
        Assert.Contains("2 equal, 1 changed since the snapshot", spot.GetProperty("found").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_spot_check_that_could_compare_nothing_claims_no_check_and_says_why()
    {
        FilesConfig(", drill: { spot_check: 100% }");
        Assert.Equal(0, _box.Run("run").ExitCode);
        foreach (var f in new[] { "data/a.txt", "data/sub/b.txt", "data/sub/c.bin" })
        {
            File.AppendAllText(_box[f], "changed since the snapshot"); // every file changed: nothing to compare
        }

        var d = DrillJson();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        Assert.DoesNotContain(d.GetProperty("checks").EnumerateArray(), c => c.GetProperty("name").GetString()!.StartsWith("spot check", StringComparison.Ordinal));
        Assert.Contains(d.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("none could be compared", StringComparison.Ordinal));
    }

    [Fact]
    public void An_sqlite_drill_checks_integrity_tables_and_rows()
    {
        var db = _box["app.db"];
        var r = Sandbox.Exec("sqlite3", db, "CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3); CREATE TABLE u(y); INSERT INTO u VALUES ('a');");
        Assert.True(r.ExitCode == 0, r.ToString());
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: app, kind: sqlite, path: ./app.db }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var d = DrillJson();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("found").GetString());
        Assert.Equal("ok", checks["app.db: PRAGMA integrity_check"]);
        Assert.Equal("2", checks["app.db: tables"]);
        Assert.Equal("4", checks["app.db: rows"]);
        AssertNothingLeft();
    }

    [Fact]
    public void A_command_drill_runs_the_configured_program_on_the_restored_file_and_a_failing_one_fails_the_drill()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         Yaml.Command("app", "echo hello; echo world", ", drill: { command: [/bin/grep, -q, world] }") +
                         Yaml.Command("bad", "echo hello", ", drill: { command: [/bin/grep, -q, world] }"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run("drill", "--json");
        Assert.True(r.ExitCode == 1, r.ToString());
        var drills = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("drills").EnumerateArray().ToDictionary(d => d.GetProperty("source").GetString()!);
        Assert.True(drills["app"].GetProperty("passed").GetBoolean(), drills["app"].ToString());
        Assert.False(drills["bad"].GetProperty("passed").GetBoolean());
        Assert.Contains("drill.command /bin/grep -q world", drills["bad"].GetProperty("error").GetString(), StringComparison.Ordinal);
        AssertNothingLeft();
    }

    [Fact]
    public void A_drill_slower_than_its_rto_fails_and_says_by_how_much()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         Yaml.Command("app", "echo hello", ", rto: 1s, drill: { command: [/bin/sh, -c, 'sleep 1.5', drill] }"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run("drill", "--json");
        Assert.True(r.ExitCode == 1, r.ToString());
        var d = Drill(JsonDocument.Parse(r.Stdout).RootElement);
        Assert.False(d.GetProperty("passed").GetBoolean());
        Assert.False(d.GetProperty("rto_met").GetBoolean());
        Assert.Equal(1, d.GetProperty("rto_seconds").GetInt64());
        Assert.True(d.GetProperty("seconds").GetDouble() >= 1.5);
        Assert.Contains("more than the rto of 1s", d.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.All(d.GetProperty("checks").EnumerateArray(), c => Assert.True(c.GetProperty("passed").GetBoolean()));
        Assert.False(_box.Json("status").GetProperty("sources")[0].GetProperty("last_drill").GetProperty("rto_met").GetBoolean());
    }

    [Fact]
    public void An_encrypted_snapshot_without_the_identity_on_this_host_fails_its_drill_saying_so()
    {
        var key = _box["key.txt"];
        var keygen = _box.Run("keygen", "-o", key);
        var recipient = keygen.Stdout.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("age1", StringComparison.Ordinal));
        FilesConfig();
        File.AppendAllText(_box.Config, $"encryption: {{ recipients: [{recipient}] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("the key is not on this host", r.Stdout, StringComparison.Ordinal);
        // With the identity it passes: the drill proves the key that is here.
        var withKey = _box.Run("drill", "--identity", key);
        Assert.True(withKey.ExitCode == 0, withKey.ToString());
        AssertNothingLeft();
    }

    [Fact]
    public void Drill_every_makes_a_source_degraded_until_a_drill_passes_and_again_when_one_fails()
    {
        FilesConfig(", drill: { spot_check: 100% }", policy: ", drill: { every: 7d }");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var status = _box.Json("status").GetProperty("sources")[0];
        Assert.Equal("degraded", status.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, status.GetProperty("last_drill").ValueKind);
        Assert.Contains("no drill has passed yet", _box.Run("status").Stdout, StringComparison.Ordinal);

        Assert.Equal(0, _box.Run("drill").ExitCode);
        Assert.Equal("ok", _box.Json("status").GetProperty("sources")[0].GetProperty("state").GetString());

        var live = _box["data/a.txt"];
        var time = File.GetLastWriteTimeUtc(live);
        File.WriteAllText(live, "ALPHA\n");
        File.SetLastWriteTimeUtc(live, time);
        Assert.Equal(1, _box.Run("drill").ExitCode);
        var after = _box.Json("status").GetProperty("sources")[0];
        Assert.Equal("degraded", after.GetProperty("state").GetString());
        Assert.False(after.GetProperty("last_drill").GetProperty("passed").GetBoolean());
    }

    [Fact]
    public void A_source_with_no_snapshot_fails_its_drill_saying_so()
    {
        FilesConfig();
        var r = _box.Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("no snapshot of 'docs'", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_corrupt_copy_is_passed_over_for_a_good_one_and_the_drill_says_which_it_used()
    {
        FilesConfig();
        File.AppendAllText(_box.Config, "");
        _box.WriteConfig(File.ReadAllText(_box.Config).Replace("targets:\n  - { name: local, kind: local, path: ./backups }\n",
            "targets:\n  - { name: local, kind: local, path: ./backups }\n  - { name: second, kind: local, path: ./backups2 }\n", StringComparison.Ordinal));
        Directory.CreateDirectory(_box["backups2"]);
        Assert.Equal(0, _box.Run("run").ExitCode);
        var stored = Directory.GetFiles(_box["backups"], "files.tar.zst", SearchOption.AllDirectories).Single();
        var bytes = File.ReadAllBytes(stored);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(stored, bytes);
        var d = DrillJson();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        var copy = d.GetProperty("copies")[0];
        Assert.Equal("second", copy.GetProperty("target").GetString());
        Assert.Contains("copy on target 'local'", copy.GetProperty("skipped")[0].GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_redis_drill_loads_the_rdb_into_a_scratch_server_and_counts_its_keys()
    {
        using var redis = new RedisServer(password: false);
        Assert.Equal("OK", redis.Cli("EVAL", "for i=1,500 do redis.call('SET','key:'..i, i) end return 'OK'", "0").Stdout.Trim());
        Assert.Equal("OK", redis.Cli("-n", "2", "EVAL", "for i=1,7 do redis.call('SET','k:'..i, i) end return 'OK'", "0").Stdout.Trim());
        // Keys alive at the backup whose TTL passes before the drill: the snapshot has them, and so must the drill.
        Assert.Equal("OK", redis.Cli("EVAL", "for i=1,5 do redis.call('SET','session:'..i, i, 'PX', 4000) end return 'OK'", "0").Stdout.Trim());
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: cache, kind: redis, port: {redis.Port} }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        Thread.Sleep(4500);
        var d = DrillJson();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("found").GetString());
        Assert.Equal("512", checks["keys in the scratch redis-server"]);
        Assert.Equal("2", checks["databases in the scratch redis-server"]);
        Assert.Contains("scratch redis-server", d.GetProperty("scratch").GetString(), StringComparison.Ordinal);
        Assert.Contains(d.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("db0=505, db2=7", StringComparison.Ordinal));
        AssertScratchRanUnprivileged(d, "redis-server");
        AssertNothingLeft();
    }

    /// <summary>The pid of the scratch server a running drill recorded in its scratch folder, once it has.</summary>
    private static string? RecordedServer(string staging)
    {
        try
        {
            return Directory.Exists(staging)
                ? Directory.GetDirectories(staging, ".backstop-drill-*").Select(d => Path.Combine(d, "leftovers")).Where(File.Exists)
                    .SelectMany(File.ReadAllLines).Where(l => l.StartsWith("pid:", StringComparison.Ordinal)).Select(l => l.Split(':')[1]).FirstOrDefault()
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    [Fact]
    public void A_drill_killed_with_sigkill_leaves_a_scratch_server_that_the_next_drill_removes()
    {
        using var redis = new RedisServer(password: false);
        Assert.Equal("OK", redis.Cli("EVAL", "for i=1,200000 do redis.call('SET','key:'..i, string.rep('v', 100)) end return 'OK'", "0").Stdout.Trim());
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: cache, kind: redis, port: {redis.Port} }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var staging = _box["state/staging"];
        string? server = null;
        for (var attempt = 0; attempt < 5 && server is null; attempt++)
        {
            using var drill = _box.Start(["drill"], new Dictionary<string, string> { ["BACKSTOP_TEST_SECRET"] = "not-for-scratch-servers" });
            // Freeze the drill the moment it has recorded its scratch redis-server, then kill it: what -9 leaves behind.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!drill.HasExited && DateTime.UtcNow < deadline && (server = RecordedServer(staging)) is null)
            {
                Thread.Sleep(2);
            }

            if (server is not null && !drill.HasExited)
            {
                drill.Signal("STOP");
                drill.Signal("KILL"); // backstop alone, as the OOM killer does: its scratch server lives on
            }
            else
            {
                server = null;
            }

            drill.Wait();
        }

        Assert.True(server is not null, "the drill was never caught with its scratch server running");
        Assert.True(Directory.Exists($"/proc/{server}"), "the scratch redis-server should outlive the killed drill");
        // It was started with none of backstop's environment (which holds the secrets of env: references).
        Assert.DoesNotContain("not-for-scratch-servers", File.ReadAllText($"/proc/{server}/environ"), StringComparison.Ordinal);
        Assert.NotEmpty(Directory.GetDirectories(staging, ".backstop-drill-*"));

        var next = _box.Run("drill");
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.Contains("removed what a killed drill of 'cache' left", next.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists($"/proc/{server}"), "the next drill kills the scratch server the killed one left");
        AssertNothingLeft();
    }

    [Fact]
    public void A_drill_stopped_by_sigterm_stops_its_scratch_server_removes_its_folder_and_exits_130()
    {
        using var redis = new RedisServer(password: false);
        Assert.Equal("OK", redis.Cli("EVAL", "for i=1,200000 do redis.call('SET','key:'..i, string.rep('v', 100)) end return 'OK'", "0").Stdout.Trim());
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: cache, kind: redis, port: {redis.Port} }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var staging = _box["state/staging"];
        for (var attempt = 0; attempt < 5; attempt++)
        {
            using var drill = _box.Start("drill");
            string? server = null;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!drill.HasExited && DateTime.UtcNow < deadline && (server = RecordedServer(staging)) is null)
            {
                Thread.Sleep(2);
            }

            if (server is null || drill.HasExited)
            {
                drill.Wait();
                continue;
            }

            drill.Signal("TERM");
            var r = drill.Wait(TimeSpan.FromSeconds(60));
            if (r.ExitCode == 0)
            {
                continue; // it had finished before the signal came
            }

            Assert.True(r.ExitCode == 130, r.ToString());
            Assert.False(Directory.Exists($"/proc/{server}"), "the scratch redis-server is stopped");
            AssertNothingLeft();
            return;
        }

        Assert.Fail("the drill was never caught with its scratch server running");
    }

    [Fact]
    public void A_redis_drill_without_redis_server_on_this_host_fails_naming_the_package_and_leaves_nothing()
    {
        using var redis = new RedisServer(password: false);
        redis.Cli("SET", "k", "v");
        _box.WriteConfig(Yaml.LocalTarget() + $"sources:\n  - {{ name: cache, kind: redis, port: {redis.Port} }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var r = _box.Run(["drill", "--json"], new Dictionary<string, string> { ["PATH"] = "/nonexistent" });
        Assert.True(r.ExitCode == 1, r.ToString());
        var error = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("drills")[0].GetProperty("error").GetString();
        Assert.Contains("'redis-server' was not found in PATH (/nonexistent)", error, StringComparison.Ordinal);
        Assert.Contains("apt-get install redis-server", error, StringComparison.Ordinal);
        AssertNothingLeft();
    }
}
