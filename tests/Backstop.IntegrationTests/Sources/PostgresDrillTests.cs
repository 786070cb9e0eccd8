using System.Globalization;
using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Backstop.Sources.Postgres;
using PostgresServer = Backstop.IntegrationTests.Support.PostgresServer;
using Backstop.IntegrationTests.Drill;

namespace Backstop.IntegrationTests.Sources;

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
        // Only PostgreSQL's ("-postgres"): other test classes running alongside kill drills on purpose and leave theirs
        // for their own sweep tests.
        Assert.DoesNotContain(Directory.GetDirectories("/var/tmp", ".backstop-drill-*-postgres"),
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
        Config(db, $", drill: {{ server: \"postgresql://postgres@127.0.0.1:{_pg.Port}\", password: \"env:PG_TEST_PASSWORD\", smoke: [\"SELECT count(*) FROM customers\"] }}");
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
        Assert.Equal(major, CustomDumpHeader.ServerMajor(File.ReadAllBytes(file).AsSpan(0, 8192)));
    }

    [Fact]
    public void The_table_of_contents_reader_lists_what_pg_restore_lists_in_a_real_dump()
    {
        var db = NewName("toc");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE EXTENSION pgcrypto; CREATE SCHEMA app; CREATE TABLE app.t (id uuid DEFAULT gen_random_uuid(), v text); INSERT INTO app.t (v) VALUES ('x');" +
                    "COMMENT ON TABLE app.t IS 'a table'; CREATE INDEX ON app.t (v);");
        var file = _box["toc.dump"];
        var env = new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password };
        var dump = Sandbox.ExecEnv(null, env, Path.Combine(_pg.Bin, "pg_dump"),
            ["-Fc", "-h", "127.0.0.1", "-p", _pg.Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-f", file, db]);
        Assert.True(dump.ExitCode == 0, dump.ToString());
        var list = Sandbox.ExecEnv(null, env, Path.Combine(_pg.Bin, "pg_restore"), ["-l", file]);
        var expected = list.Stdout.Split('\n').Where(l => l.Length > 0 && !l.StartsWith(';'))
            .Select(l => int.Parse(l[..l.IndexOf(';', StringComparison.Ordinal)], CultureInfo.InvariantCulture)).ToList();
        var bytes = File.ReadAllBytes(file);
        Assert.Equal(CustomDumpHeader.Outcome.Read, CustomDumpHeader.TryRead(bytes, out var toc));
        // pg_restore -l lists every entry but the ones it applies by itself (the encoding, standard strings, search path)
        // and the database's own (restored only with --create).
        Assert.Equal(expected.Order(), toc!.Entries.Where(e => e.Desc is not ("ENCODING" or "STDSTRINGS" or "SEARCHPATH" or "DATABASE")).Select(e => e.DumpId).Order());
        Assert.Equal([("pgcrypto", (string?)"public")], toc.Extensions);
        Assert.Contains(toc.Entries, e => e.Desc == "COMMENT" && e.Tag == "EXTENSION pgcrypto");
        Assert.Contains(toc.Entries, e => e.Desc == "TABLE" && e.Tag == "t" && e.Namespace == "app");
        // Every cut-short head asks for more, and never throws.
        for (var n = 0; n < toc.Length; n += 7)
        {
            Assert.Equal(CustomDumpHeader.Outcome.NeedMore, CustomDumpHeader.TryRead(bytes.AsSpan(0, n), out _));
        }
    }

    [Fact]
    public void A_hostile_function_in_a_dump_runs_without_privilege_in_the_drill_and_roles_come_back_bare()
    {
        // A role that could create objects in a backed-up database leaves a CHECK constraint whose function runs COPY … TO
        // PROGRAM when the session is a superuser (and only away from the source's own port, so that the backup itself is
        // clean). Restored by a superuser, it would run as the scratch server's OS user during the drill.
        var db = NewName("hostile");
        var marker = Path.Combine("/tmp", "backstop-pwned-" + Guid.NewGuid().ToString("N"));
        var evil = NewName("evil");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql("postgres", $"CREATE ROLE {evil} SUPERUSER REPLICATION BYPASSRLS CREATEROLE LOGIN PASSWORD 'not-for-drills'; ALTER ROLE {evil} SET log_statement = 'all'");
        _pg.Sql(db, "CREATE EXTENSION pgcrypto;" +
                    "CREATE FUNCTION public.audit(v int) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN " +
                    $"IF inet_server_port() <> {_pg.Port} AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN " +
                    $"EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {marker}'''; END IF; RETURN true; END $f$;" +
                    "CREATE TABLE accounts (id int PRIMARY KEY CHECK (public.audit(id)), secret bytea DEFAULT gen_random_bytes(8));" +
                    "INSERT INTO accounts (id) SELECT g FROM generate_series(1, 25) g;" +
                    $"GRANT SELECT ON accounts TO {evil};");
        Config(db, ", drill: { smoke: [\"SELECT current_user = 'backstop_owner' AND NOT rolsuper FROM pg_roles WHERE rolname = current_user\", " +
                   $"\"SELECT NOT rolsuper AND NOT rolreplication AND NOT rolbypassrls AND NOT rolcreaterole AND rolconfig IS NULL FROM pg_roles WHERE rolname = '{evil}'\", " +
                   "\"SELECT count(*) = 25 FROM accounts\"] }");
        try
        {
            Assert.Equal(0, Run("run").ExitCode);
            Assert.False(File.Exists(marker), "the backup itself ran the function");
            var d = Drill();
            Assert.True(d.GetProperty("passed").GetBoolean(), d.ToString());
            Assert.False(File.Exists(marker), "the drill ran the dump's function as a superuser");
            Assert.Contains("not a superuser", d.GetProperty("scratch").GetString(), StringComparison.Ordinal);
            DrillTests.AssertScratchRanUnprivileged(d, "postgres");
            var checks = d.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!, c => c);
            Assert.All(checks.Where(c => c.Key.StartsWith("smoke:", StringComparison.Ordinal)), c => Assert.True(c.Value.GetProperty("passed").GetBoolean(), c.Value.ToString()));
            Assert.True(checks["globals.sql: roles"].GetProperty("passed").GetBoolean(), checks["globals.sql: roles"].ToString());
            AssertNothingLeft();
        }
        finally
        {
            File.Delete(marker);
            _pg.Sql("postgres", $"DROP DATABASE {db}");
            _pg.Sql("postgres", $"DROP ROLE {evil}");
        }
    }

    [Fact]
    public void An_extension_outside_the_drill_allow_list_fails_the_drill_before_anything_runs()
    {
        var db = NewName("ext");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE EXTENSION pgcrypto; CREATE TABLE t (v text); INSERT INTO t VALUES ('x');");
        Config(db, ", drill: { extensions: [hstore] }");
        Assert.Equal(0, Run("run").ExitCode);
        var r = Run("drill");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("pgcrypto", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("drill.extensions", r.Stdout, StringComparison.Ordinal);
        AssertNothingLeft();
    }
}
