using System.Globalization;
using System.Text;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>MariaDB with a real server: dump, facts, stock restore, and the failures.</summary>
public sealed class MySqlSourceTests : IClassFixture<MariaDbServer>, IDisposable
{
    private readonly MariaDbServer _db;
    private readonly Sandbox _box = new();
    private readonly Dictionary<string, string> _env = new() { ["MY_TEST_PASSWORD"] = MariaDbServer.Password };

    public MySqlSourceTests(MariaDbServer db) => _db = db;

    public void Dispose() => _box.Dispose();

    private static string NewName(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8];

    private void Config(string database, string extra = "", int? port = null, string password = "env:MY_TEST_PASSWORD") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: my, kind: mysql, host: 127.0.0.1, port: {port ?? _db.Port}, user: {MariaDbServer.User}, password: \"{password}\", databases: [{database}]{extra} }}\n");

    private CliResult Run(params string[] args) => _box.Run(args, _env);

    private string CreateShop(int tables, int rows)
    {
        var db = NewName("shop");
        var sql = new StringBuilder($"CREATE DATABASE {db}; USE {db};");
        for (var i = 0; i < tables; i++)
        {
            sql.Append(CultureInfo.InvariantCulture, $"CREATE TABLE t{i:00} (id INT PRIMARY KEY, name VARCHAR(40), data BLOB);");
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO t{i:00} SELECT seq, CONCAT('item ', seq), UNHEX(MD5(seq)) FROM seq_1_to_{rows + i};");
        }

        _db.RootSql(sql.ToString());
        return db;
    }

    private string Checksum(string db, int tables) =>
        string.Join(",", Enumerable.Range(0, tables).Select(i => _db.RootSql($"SELECT COUNT(*), SUM(CRC32(CONCAT(id, name, HEX(data)))) FROM t{i:00}", db)));

    [Fact]
    public void A_database_round_trips_through_the_stock_client_with_the_same_tables_and_rows()
    {
        var db = CreateShop(12, 50);
        Config(db, ", exact_rows: true, expect: { min_tables: 12 }");
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var facts = _box.Snapshots()[0].GetProperty("facts");
        Assert.Equal(12, facts.GetProperty("tables").GetInt64());
        Assert.Equal(12 * 50 + 66, facts.GetProperty("rows").GetInt64());

        var stored = Directory.GetFiles(_box["backups/my"], db + ".sql.zst", SearchOption.AllDirectories).Single();
        var copy = NewName("restored");
        _db.RootSql($"CREATE DATABASE {copy}");
        var restore = _box.Shell($"zstd -dc '{stored}' | mariadb --no-defaults -uroot --socket={_db.Socket} {copy}");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(Checksum(db, 12), Checksum(copy, 12));
    }

    [Fact]
    public void A_closed_port_fails_naming_host_and_port()
    {
        var closed = PostgresServer.FreePort();
        Config("mysql", port: closed);
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"connection to MySQL/MariaDB at 127.0.0.1:{closed} refused", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void A_wrong_password_fails_saying_access_denied()
    {
        Config("mysql", password: "not-the-password");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"access denied for user '{MariaDbServer.User}'", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_database_fails_min_tables()
    {
        var db = NewName("empty");
        _db.RootSql($"CREATE DATABASE {db}");
        Config(db, ", expect: { min_tables: 5 }");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("the source reported 0 tables, fewer than expect.min_tables 5", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_client_fails_preflight_naming_where_it_looked()
    {
        Config("mysql");
        var run = _box.Run(["run"], new Dictionary<string, string>(_env) { ["PATH"] = "/nonexistent" });
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("neither mariadb-dump nor mysqldump was found in PATH (/nonexistent)", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dump_tool_older_than_the_server_fails_preflight_naming_both_versions()
    {
        var db = CreateShop(1, 1);
        var fake = _box.Write("fake/mariadb-dump",
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'mariadb-dump  Ver 10.17 Distrib 10.3.39-MariaDB, for debian-linux-gnu (x86_64)'; exit 0; }\nexec mariadb-dump \"$@\"\n");
        File.SetUnixFileMode(fake, (UnixFileMode)0b111_101_101);
        Config(db, ", tools: { dump: ./fake/mariadb-dump }");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("is version 10.3.39-MariaDB, older than the server at 127.0.0.1:", run.All, StringComparison.Ordinal);
        Assert.Contains("install a client of version 10.11 or newer and set tools.dump", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void A_dump_cut_short_is_refused_by_its_missing_completion_line()
    {
        var db = CreateShop(2, 10);
        var fake = _box.Write("fake/mariadb-dump", "#!/bin/sh\nmariadb-dump \"$@\" | head -n 20\n");
        File.SetUnixFileMode(fake, (UnixFileMode)0b111_101_101);
        Config(db, ", tools: { dump: ./fake/mariadb-dump }");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("does not end with its '-- Dump completed' line", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void The_password_is_in_no_command_line_and_no_file_left_behind()
    {
        var db = CreateShop(2, 10);
        Config(db);
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.DoesNotContain(MariaDbServer.Password, run.All, StringComparison.Ordinal);
        foreach (var file in Sandbox.FilesUnder(_box.Root))
        {
            Assert.DoesNotContain(MariaDbServer.Password, File.ReadAllText(_box[file]), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_restore_that_fails_midway_drops_the_database_it_created()
    {
        var db = CreateShop(3, 5);
        _db.RootSql($"CREATE PROCEDURE {db}.p() SELECT 1");
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);

        // A restoring user who may create tables but not routines: the load stops after the tables.
        var user = "r" + Guid.NewGuid().ToString("N")[..8];
        _db.RootSql($"CREATE USER '{user}'@'%' IDENTIFIED BY '{MariaDbServer.Password.Replace("'", "''", StringComparison.Ordinal)}'; " +
                    $"GRANT SELECT, INSERT, CREATE, DROP, ALTER, INDEX, LOCK TABLES, REFERENCES, CREATE VIEW, SHOW VIEW ON *.* TO '{user}'@'%'");
        var copy = NewName("half");
        var failed = Run("restore", "--source", "my", "--to", $"mysql://{user}@127.0.0.1:{_db.Port}/{copy}");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("denied", failed.Stderr, StringComparison.OrdinalIgnoreCase); // stopped midway by the routine, not before
        Assert.Equal("", _db.RootSql($"SHOW DATABASES LIKE '{copy}'"));
    }

    private static string Quoted(string name) => "`" + name.Replace("`", "``", StringComparison.Ordinal) + "`";

    [Fact]
    public void Hostile_database_names_are_data_never_code_backed_up_and_restored_under_their_own_name()
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var victim = "y" + suffix;
        _db.RootSql($"CREATE DATABASE {victim}");
        var names = new[]
        {
            $"--result-file=/tmp/x{suffix}",
            $"a\\'; DROP DATABASE {victim}; --{suffix}",
            $"quote\"d 'n' `b` {suffix}",
            $"new\nline{suffix}",
            $"../../x{suffix}",
            $"café ✓{suffix}",
        };
        foreach (var (n, i) in names.Select((n, i) => (n, i)))
        {
            _db.RootSql($"CREATE DATABASE {Quoted(n)}; USE {Quoted(n)}; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_{10 + i};");
        }

        Config(string.Join(", ", names.Select(n =>
            "\"" + n.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"")),
            ", exact_rows: true");
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.False(File.Exists($"/tmp/x{suffix}"));
        Assert.Equal(victim, _db.RootSql($"SHOW DATABASES LIKE '{victim}'"));
        var snapshot = _box.Snapshots().Single();
        Assert.Equal(names.Length * 10 + 15, snapshot.GetProperty("facts").GetProperty("rows").GetInt64());
        var artifacts = snapshot.GetProperty("artifacts").EnumerateArray().Select(a => a.GetProperty("name").GetString()!).ToList();
        Assert.Equal(names.Select(n => Backstop.Core.Text.SafeNames.Encode(n) + ".sql").Order(StringComparer.Ordinal), artifacts.Order(StringComparer.Ordinal));
        Assert.All(Directory.GetFiles(_box["backups"], "*", SearchOption.AllDirectories), f => Assert.StartsWith(_box["backups/my/"], f, StringComparison.Ordinal));

        var into = $"--into 'restored' {suffix}";
        var restore = Run("restore", "--source", "my", "--artifact", Backstop.Core.Text.SafeNames.Encode(names[1]) + ".sql",
            "--to", $"mysql://{MariaDbServer.User}@127.0.0.1:{_db.Port}/{Uri.EscapeDataString(into)}");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal("11", _db.RootSql($"SELECT COUNT(*) FROM {Quoted(into)}.t"));
        Assert.Equal(victim, _db.RootSql($"SHOW DATABASES LIKE '{victim}'"));
    }

    [Fact]
    public void Restore_into_a_new_database_gives_the_same_rows_and_refuses_a_full_one()
    {
        var db = CreateShop(6, 40);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        var copy = NewName("restored");
        var to = $"mysql://{MariaDbServer.User}@127.0.0.1:{_db.Port}/{copy}";
        var restore = Run("restore", "--source", "my", "--to", to);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Contains($"tables=6, rows={6 * 40 + 15}, as recorded", restore.Stdout, StringComparison.Ordinal); // exact rows are compared too
        Assert.Equal(Checksum(db, 6), Checksum(copy, 6));

        var again = Run("restore", "--source", "my", "--to", to);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains($"database {copy} at 127.0.0.1:{_db.Port} already holds 6 tables", again.Stderr, StringComparison.Ordinal);
    }

    /// <summary>The restore --explain recipe, with --to filled in, run as printed by a shell: the same rows.</summary>
    [Fact]
    public void The_explain_recipe_run_literally_restores_the_same_rows()
    {
        var db = CreateShop(3, 20);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        var copy = NewName("explained");
        var explain = Run("restore", "--source", "my", "--explain", "--to", $"mysql://{MariaDbServer.User}@127.0.0.1:{_db.Port}/{copy}");
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var recipe = explain.Stdout.Split('\n').Single(l => l.StartsWith("mariadb", StringComparison.Ordinal));
        var r = Sandbox.ExecEnv(_box.Root, new Dictionary<string, string> { ["MYSQL_PWD"] = MariaDbServer.Password }, "/bin/sh", "-c", recipe);
        Assert.True(r.ExitCode == 0, r.ToString() + "\n" + recipe);
        Assert.Equal(Checksum(db, 3), Checksum(copy, 3));
    }
}
