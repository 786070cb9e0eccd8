using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>
/// <c>mode: physical</c> against a real PostgreSQL: a base backup streamed from <c>pg_basebackup -Ft -D -</c> with its
/// manifest checked in flight, the WAL range it needs recorded, and the stock recipe's extraction proven by PostgreSQL's
/// own <c>pg_verifybackup</c> (every file's CRC-32C against the manifest).
/// </summary>
public sealed class PostgresPhysicalTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly Sandbox _box = new();
    private readonly PostgresServer _pg;
    private readonly Dictionary<string, string> _env = new() { ["PG_TEST_PASSWORD"] = PostgresServer.Password };

    public PostgresPhysicalTests(PostgresServer pg) => _pg = pg;

    public void Dispose() => _box.Dispose();

    private CliResult Run(params string[] args) => _box.Run(args, _env);

    private void Config(string extra = "") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, mode: physical, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\"{extra} }}\n");

    [Fact]
    public void A_base_backup_is_stored_with_its_manifest_and_the_wal_range_it_needs_and_extracts_into_what_pg_verifybackup_accepts()
    {
        var db = "ledger_" + Guid.NewGuid().ToString("N")[..8];
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE TABLE entries (id bigint PRIMARY KEY, amount int); INSERT INTO entries SELECT g, g FROM generate_series(1, 5000) g; CREATE TABLE notes (t text);");
        Config();
        var run = Run("run");
        Assert.True(run.ExitCode is 0 or 3, run.ToString());
        var snapshot = _box.Snapshots().Single();
        var artifact = snapshot.GetProperty("artifacts").EnumerateArray().Single();
        Assert.Equal("base.tar", artifact.GetProperty("name").GetString());
        var facts = artifact.GetProperty("facts");
        Assert.True(facts.GetProperty("files").GetInt64() > 100);
        // Every file's CRC-32C was checked against the manifest as it streamed (what pg_verifybackup does on a plain copy).
        Assert.Equal(facts.GetProperty("files").GetInt64(), facts.GetProperty("checksummed_files").GetInt64());
        Assert.True(facts.GetProperty("tables").GetInt64() >= 2);
        Assert.True(facts.GetProperty("databases").GetInt64() >= 2);
        Assert.True(facts.GetProperty("timeline").GetInt64() >= 1);
        Assert.True(facts.GetProperty("end_lsn").GetInt64() > facts.GetProperty("start_lsn").GetInt64());
        Assert.Equal(0, Run("verify", "--deep").ExitCode);

        // The stock recipe, literally, then PostgreSQL's own check of every file (the WAL is checked apart: --no-parse-wal).
        var explain = Run("restore", "--source", "pg", "--explain", "--to", _box["data"]);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var lines = explain.Stdout.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var extracted = _box.Shell(string.Join("\n", lines.Select(l => l + " || exit 1")));
        Assert.True(extracted.ExitCode == 0, extracted.ToString());
        var verified = Sandbox.Exec(Path.Combine(_pg.Bin, "pg_verifybackup"), "--no-parse-wal", _box["data"]);
        Assert.True(verified.ExitCode == 0, verified.ToString());
        Assert.Contains("backup successfully verified", verified.Stdout, StringComparison.Ordinal);

        // Until the WAL archive exists, a restore and a drill say what a base backup needs, never a half-made cluster.
        var restore = Run("restore", "--source", "pg", "--to", _box["restored"]);
        Assert.Equal(1, restore.ExitCode);
        Assert.Contains("WAL", restore.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["restored"]));
    }

    [Fact]
    public void A_server_with_a_tablespace_outside_its_data_folder_is_refused_naming_it()
    {
        var where = Path.Combine(_pg.Root, "ts_" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(where);
        Assert.Equal(0, Sandbox.Exec("chown", "postgres:postgres", where).ExitCode);
        var name = "fast_" + Guid.NewGuid().ToString("N")[..6];
        _pg.Sql("postgres", $"CREATE TABLESPACE {name} LOCATION '{where}'");
        try
        {
            Config();
            var run = Run("run");
            Assert.Equal(1, run.ExitCode);
            Assert.Contains($"tablespace(s) {name} besides pg_default", run.Stdout + run.Stderr, StringComparison.Ordinal);
            Assert.Contains("mode: dump", run.Stdout + run.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            _pg.Sql("postgres", $"DROP TABLESPACE {name}");
        }
    }

    [Fact]
    public void Dump_only_keys_with_mode_physical_are_refused_where_they_are()
    {
        Config(", databases: [app]");
        var check = Run("config", "check");
        Assert.Equal(2, check.ExitCode);
        Assert.Contains("databases: applies to mode: dump", check.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Wal_push_stores_a_segment_once_and_refuses_other_content_under_its_name()
    {
        _pg.Sql("postgres", "SELECT pg_switch_wal()");
        var segment = Directory.GetFiles(Path.Combine(_pg.Data, "pg_wal")).Select(Path.GetFileName).First(n => n!.Length == 24)!;
        File.Copy(Path.Combine(_pg.Data, "pg_wal", segment), _box[segment]);
        Config();
        var first = Run("wal-push", _box[segment]);
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains($"{segment} of 'pg' archived on 1 target(s)", first.Stderr, StringComparison.Ordinal);
        var stored = _box[$"backups/pg/wal/{segment[..8]}/{segment}.zst"];
        var written = File.GetLastWriteTimeUtc(stored);

        var again = Run("wal-push", _box[segment]); // PostgreSQL retries after a crash: the same content, nothing sent again
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("already archived", again.Stderr, StringComparison.Ordinal);
        Assert.Equal(written, File.GetLastWriteTimeUtc(stored));

        var bytes = File.ReadAllBytes(_box[segment]);
        bytes[4096] ^= 0xFF;
        File.WriteAllBytes(_box[segment], bytes);
        var other = Run("wal-push", _box[segment]);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("already archived with other content", other.Stderr, StringComparison.Ordinal);
        Assert.Equal(written, File.GetLastWriteTimeUtc(stored)); // nothing overwritten

        // Past wal.queue_max of WAL held back in pg_wal (archive_status/*.ready), even a refusal lets the server go on, loudly.
        Directory.CreateDirectory(_box["pg_wal/archive_status"]);
        File.Copy(_box[segment], _box[$"pg_wal/{segment}"]);
        File.WriteAllText(_box[$"pg_wal/archive_status/{segment}.ready"], "");
        Config(", wal: { queue_max: 1MiB }");
        var letGo = Run("wal-push", _box[$"pg_wal/{segment}"]);
        Assert.True(letGo.ExitCode == 0, letGo.ToString());
        Assert.Contains("ERROR: " + segment, letGo.Stderr, StringComparison.Ordinal);
        Assert.Contains("let go so that the server keeps running", letGo.Stderr, StringComparison.Ordinal);
        Assert.Equal(written, File.GetLastWriteTimeUtc(stored)); // still nothing overwritten

        var stray = Run("wal-push", _box["backstop.yaml"]);
        Assert.Equal(1, stray.ExitCode);
        Assert.Contains("is not a WAL segment", stray.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_wal_push_killed_mid_upload_leaves_nothing_that_counts_the_retry_stores_it_once_and_a_run_sweeps_the_leftover()
    {
        // A segment-sized file of random bytes (incompressible, so the upload takes a moment) named as a segment.
        var segment = "0000000100000000000000F0";
        File.WriteAllBytes(_box[segment], System.Security.Cryptography.RandomNumberGenerator.GetBytes(64 << 20));
        Config();
        using (var victim = _box.Start(["wal-push", _box[segment]], _env))
        {
            RunningCli.WaitUntil(() => Directory.Exists(_box["backups/pg/wal/00000001"])
                                       && Sandbox.FilesUnder(_box["backups/pg/wal/00000001"]).Any(f => f.EndsWith(".partial", StringComparison.Ordinal)), "the upload to be under way");
            victim.KillHard();
        }

        Assert.False(File.Exists(_box[$"backups/pg/wal/00000001/{segment}.zst"])); // only a whole upload takes the name
        var retry = Run("wal-push", _box[segment]); // PostgreSQL retries: the whole file, once
        Assert.True(retry.ExitCode == 0, retry.ToString());
        Assert.True(File.Exists(_box[$"backups/pg/wal/00000001/{segment}.zst"]));
        var leftover = Path.Combine(_box["backups/pg/wal/00000001"],
            Path.GetFileName(Sandbox.FilesUnder(_box["backups/pg/wal/00000001"]).Single(f => f.EndsWith(".partial", StringComparison.Ordinal))));
        File.SetLastWriteTimeUtc(leftover, DateTime.UtcNow.AddHours(-2)); // an hour untouched: dead
        var run = Run("run");
        Assert.Contains("the temporary object of a WAL upload that never finished", run.Stdout + run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(Sandbox.FilesUnder(_box["backups/pg/wal"]), f => f.EndsWith(".partial", StringComparison.Ordinal));
    }
}
