using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Backstop.IntegrationTests.Drill;

namespace Backstop.IntegrationTests.Sources;

/// <summary>MariaDB drills against a real server: a throwaway mariadbd, a drill server, smoke queries, a dump that does not restore.</summary>
public sealed class MySqlDrillTests : IClassFixture<MariaDbServer>, IDisposable
{
    private readonly MariaDbServer _db;
    private readonly Sandbox _box = new();
    private readonly Dictionary<string, string> _env = new() { ["MY_TEST_PASSWORD"] = MariaDbServer.Password };

    public MySqlDrillTests(MariaDbServer db) => _db = db;

    public void Dispose() => _box.Dispose();

    private static string NewName(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8];

    private void Config(string databases, string extra = "") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: my, kind: mysql, host: 127.0.0.1, port: {_db.Port}, user: {MariaDbServer.User}, password: \"env:MY_TEST_PASSWORD\", databases: [{databases}]{extra} }}\n");

    private CliResult Run(params string[] args) => _box.Run(args, _env);

    private JsonElement Drill() =>
        JsonDocument.Parse(Run("drill", "--json").Stdout).RootElement.GetProperty("drills").EnumerateArray().Single();

    private string Shop()
    {
        var db = NewName("shop");
        _db.RootSql($"CREATE DATABASE {db}; USE {db}; CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(10,2)); INSERT INTO orders SELECT seq, seq * 1.5 FROM seq_1_to_321;" +
                    "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); INSERT INTO notes SELECT seq, CONCAT('n', seq) FROM seq_1_to_9;");
        return db;
    }

    private void AssertNothingLeft()
    {
        var staging = _box["state/staging"];
        Assert.Empty(Directory.Exists(staging) ? Directory.GetDirectories(staging, ".backstop-drill-*") : []);
        Assert.Empty(DrillTests.ProcessesNaming(_box.Root));
        Assert.Equal("", _db.RootSql("SHOW DATABASES LIKE 'backstop\\_drill\\_%'"));
    }

    [Fact]
    public void A_throwaway_mariadbd_takes_the_dump_and_the_tables_rows_and_smoke_queries_pass()
    {
        var db = Shop();
        Config(db, ", drill: { smoke: [\"SELECT COUNT(*) = 321 FROM orders\"] }");
        Assert.Equal(0, Run("run").ExitCode);
        var d = Drill();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        Assert.Contains("throwaway", d.GetProperty("scratch").GetString(), StringComparison.Ordinal);
        DrillTests.AssertScratchRanUnprivileged(d, "mariadbd");
        var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal("2", checks[$"{db}.sql: tables"].GetProperty("found").GetString());
        Assert.Equal("330", checks[$"{db}.sql: rows"].GetProperty("found").GetString());
        Assert.Equal("1", checks["smoke: SELECT COUNT(*) = 321 FROM orders"].GetProperty("found").GetString());
        // The dump's "-- Server version" header is this very server's: nothing to say about versions.
        Assert.DoesNotContain(d.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("the dumps come from", StringComparison.Ordinal));
        AssertNothingLeft();
    }

    [Fact]
    public void A_failing_smoke_query_fails_the_drill_and_is_named()
    {
        var db = Shop();
        Config(db, ", drill: { smoke: [\"SELECT COUNT(*) FROM orders WHERE id < 0\"] }");
        Assert.Equal(0, Run("run").ExitCode);
        var r = Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("smoke: SELECT COUNT(*) FROM orders WHERE id < 0", r.Stdout, StringComparison.Ordinal);
        AssertNothingLeft();
    }

    [Fact]
    public void On_a_drill_server_the_dump_goes_into_a_scratch_database_that_is_dropped_afterwards()
    {
        var db = Shop();
        Config(db, $", drill: {{ server: \"mysql://{MariaDbServer.User}@127.0.0.1:{_db.Port}\", password: \"env:MY_TEST_PASSWORD\", smoke: [\"SELECT COUNT(*) FROM notes\"] }}");
        Assert.Equal(0, Run("run").ExitCode);
        var d = Drill();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        Assert.Contains("on the drill server", d.GetProperty("scratch").GetString(), StringComparison.Ordinal);
        AssertNothingLeft();
    }

    [Fact]
    public void A_dump_whose_hash_matches_but_that_does_not_restore_fails_its_drill_naming_the_cause()
    {
        // A view over another database's table: the dump is whole and checked, and a server without that database
        // refuses it.
        var other = NewName("other");
        var db = NewName("views");
        _db.RootSql($"CREATE DATABASE {other}; CREATE TABLE {other}.prices (id INT PRIMARY KEY); INSERT INTO {other}.prices VALUES (1);" +
                    $"CREATE DATABASE {db}; CREATE TABLE {db}.t (id INT); INSERT INTO {db}.t VALUES (1); CREATE VIEW {db}.v AS SELECT id FROM {other}.prices;");
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        var r = Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains(other, r.Stdout, StringComparison.Ordinal);
        AssertNothingLeft();
    }

    [Fact]
    public void A_view_with_a_root_definer_reads_no_file_in_the_drill()
    {
        // A view whose DEFINER is root and that reads a file of the server's host with LOAD_FILE: restored as written,
        // by a user with SUPER and FILE, it reads as root of the scratch server. The drill strips the DEFINER and its
        // user has no FILE privilege (and secure_file_priv is an empty folder): the view reads nothing.
        var db = NewName("definer");
        _db.RootSql($"CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);" +
                    "CREATE DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW peek AS SELECT LOAD_FILE('/etc/hostname') AS f;" +
                    "CREATE DEFINER=`root`@`localhost` PROCEDURE leak() SQL SECURITY DEFINER SELECT LOAD_FILE('/etc/hostname');");
        Config(db, ", drill: { smoke: [\"SELECT f IS NULL FROM peek\", \"SELECT COUNT(*) = 0 FROM information_schema.routines WHERE definer LIKE 'root@%'\"] }");
        Assert.Equal(0, Run("run").ExitCode);
        var d = Drill();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal("1", checks["smoke: SELECT f IS NULL FROM peek"].GetProperty("found").GetString());
        AssertNothingLeft();
    }
}
