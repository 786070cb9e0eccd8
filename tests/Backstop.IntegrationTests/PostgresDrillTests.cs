using System.Globalization;
using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

/// <summary>PostgreSQL drills against a real server: a throwaway cluster, a drill server, smoke queries, a dump that does not restore.</summary>
public sealed class PostgresDrillTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly PostgresServer _pg;
    private readonly Sandbox _box = new();
    private readonly Dictionary<string, string> _env = new() { ["PG_TEST_PASSWORD"] = PostgresServer.Password };

    public PostgresDrillTests(PostgresServer pg) => _pg = pg;

    public void Dispose() => _box.Dispose();

    private static string NewName(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8];

    private void Config(string databases, string extra = "") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\", databases: [{databases}]{extra} }}\n");

    private CliResult Run(params string[] args) => _box.Run(args, _env);

    private JsonElement Drill()
    {
        var r = Run("drill", "--json");
        return JsonDocument.Parse(r.Stdout).RootElement.GetProperty("drills").EnumerateArray().Single();
    }

    private string Shop()
    {
        var db = NewName("shop");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2)); INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 1234) g;" +
                    "CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 56) g;");
        return db;
    }

    /// <summary>No scratch folder, no /var/tmp folder, no server process of the drill, and (on a drill server) no scratch database.</summary>
    private void AssertNothingLeft()
    {
        var staging = _box["state/staging"];
        Assert.Empty(Directory.Exists(staging) ? Directory.GetDirectories(staging, ".backstop-drill-*") : []);
        // A drill's folder under /var/tmp is named after its backstop process: one whose process is gone was left behind.
        Assert.DoesNotContain(Directory.GetDirectories("/var/tmp", ".backstop-drill-*"),
            d => int.TryParse(Path.GetFileName(d)[".backstop-drill-".Length..].Split('-')[0], out var pid) && !Directory.Exists($"/proc/{pid}"));
        Assert.Equal("0", _pg.Scalar("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop_drill_%'"));
        Assert.Empty(DrillTests.ProcessesNaming(_box.Root));
    }


    [Fact]
    public void A_throwaway_cluster_takes_the_globals_and_every_database_and_the_tables_rows_and_smoke_queries_pass()
    {
        var db = Shop();
        var role = NewName("reporting");
        _pg.Sql("postgres", $"CREATE ROLE {role} LOGIN");
        Config(db, ", drill: { smoke: [\"SELECT count(*) = 1234 FROM orders\", \"SELECT sum(amount) FROM orders\"] }");
        Assert.Equal(0, Run("run").ExitCode);
        var d = Drill();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        Assert.Contains("throwaway PostgreSQL", d.GetProperty("scratch").GetString(), StringComparison.Ordinal);
        var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
        Assert.Equal("2", checks[$"{db}.dump: tables"].GetProperty("found").GetString());
        Assert.Equal("1290", checks[$"{db}.dump: rows"].GetProperty("found").GetString());
        Assert.True(checks["globals.sql: roles"].GetProperty("passed").GetBoolean());
        Assert.Equal("True", checks["smoke: SELECT count(*) = 1234 FROM orders"].GetProperty("found").GetString());
        Assert.True(checks["smoke: SELECT sum(amount) FROM orders"].GetProperty("passed").GetBoolean());
        Assert.True(d.GetProperty("phases").GetProperty("setup").GetDouble() > 0);
        Assert.True(d.GetProperty("tools").TryGetProperty("postgres", out _));
        AssertNothingLeft();
    }

    [Fact]
    public void A_failing_smoke_query_fails_the_drill_and_is_named_and_so_is_one_that_errors()
    {
        var db = Shop();
        Config(db, ", drill: { smoke: [\"SELECT count(*) FROM orders WHERE id < 0\", { database: " + db + ", sql: \"SELECT no_such_column FROM orders\" }] }");
        Assert.Equal(0, Run("run").ExitCode);
        // A staging folder the postgres user cannot reach (as root): the throwaway cluster's data goes to a private
        // folder under /var/tmp instead, and is removed all the same.
        File.SetUnixFileMode(_box["state"], UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var r = Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("SELECT count(*) FROM orders WHERE id < 0", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("found 0", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("no_such_column", r.Stdout, StringComparison.Ordinal);
        if (Environment.UserName == "root")
        {
            Assert.Contains("cannot reach the staging folder", r.Stdout, StringComparison.Ordinal);
        }

        AssertNothingLeft();
    }

    [Fact]
    public void On_a_drill_server_each_database_goes_into_a_scratch_database_that_is_dropped_afterwards()
    {
        var db = Shop();
        Config(db, $", drill: {{ server: \"postgresql://postgres@127.0.0.1:{_pg.Port}\", smoke: [\"SELECT count(*) FROM customers\"] }}");
        Assert.Equal(0, Run("run").ExitCode);
        var d = Drill();
        Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
        Assert.Contains("drill server 127.0.0.1:" + _pg.Port.ToString(CultureInfo.InvariantCulture), d.GetProperty("scratch").GetString(), StringComparison.Ordinal);
        Assert.Contains(d.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("globals.sql (roles) is not applied", StringComparison.Ordinal));
        Assert.Equal("1290", d.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == $"{db}.dump: rows").GetProperty("found").GetString());
        AssertNothingLeft();
    }

    [Fact]
    public void A_dump_whose_hash_matches_but_that_does_not_restore_fails_its_drill_with_pg_restores_reason()
    {
        // The classic: a CHECK constraint calling a function that reads another table. pg_dump loads a_orders before
        // z_allowed, so the check fails during the restore, while the backup itself was complete and checked.
        var db = NewName("broken");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE TABLE z_allowed (code text PRIMARY KEY); INSERT INTO z_allowed VALUES ('a');" +
                    "CREATE FUNCTION is_allowed(c text) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM public.z_allowed WHERE code = c) $$;" +
                    "CREATE TABLE a_orders (id int, code text CHECK (public.is_allowed(code))); INSERT INTO a_orders VALUES (1, 'a');");
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        Assert.Equal(0, Run("verify", "--deep").ExitCode);
        var r = Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("pg_restore", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("a_orders", r.Stdout, StringComparison.Ordinal);
        AssertNothingLeft();
    }

    [Fact]
    public void The_dump_header_reader_finds_the_server_version_in_a_real_pg_dump()
    {
        var db = Shop();
        var file = _box["shop.dump"];
        var dump = Sandbox.ExecEnv(null, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password }, Path.Combine(_pg.Bin, "pg_dump"),
            ["-Fc", "-h", "127.0.0.1", "-p", _pg.Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-f", file, db]);
        Assert.True(dump.ExitCode == 0, dump.ToString());
        var major = int.Parse(_pg.Scalar("postgres", "SHOW server_version_num"), CultureInfo.InvariantCulture) / 10000;
        Assert.Equal(major, Backstop.Sources.Postgres.CustomDumpHeader.ServerMajor(File.ReadAllBytes(file).AsSpan(0, 8192)));
    }
}
