using System.Text.Json;
using System.Globalization;
using System.Text;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>PostgreSQL with a real server: the audit's lost database, its 20-byte dump and its cron PATH.</summary>
public sealed class PostgresSourceTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly PostgresServer _pg;
    private readonly Sandbox _box = new();
    private readonly Dictionary<string, string> _env = new() { ["PG_TEST_PASSWORD"] = PostgresServer.Password };

    public PostgresSourceTests(PostgresServer pg) => _pg = pg;

    public void Dispose() => _box.Dispose();

    private static string NewName(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8];

    private string Port => _pg.Port.ToString(CultureInfo.InvariantCulture);

    private void Config(string database, string extra = "", int? port = null, string password = "env:PG_TEST_PASSWORD") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {port ?? _pg.Port}, user: postgres, password: \"{password}\", databases: [{database}]{extra} }}\n");

    private CliResult Run(params string[] args) => _box.Run(args, _env);

    private string CreateShop(int tables, int rowsPerTable)
    {
        var db = NewName("shop");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        var sql = new StringBuilder();
        for (var i = 0; i < tables; i++)
        {
            sql.Append(CultureInfo.InvariantCulture, $"CREATE TABLE t{i:00} (id bigint PRIMARY KEY, name text, amount numeric(12,2));");
            sql.Append(CultureInfo.InvariantCulture, $"INSERT INTO t{i:00} SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, {rowsPerTable + i}) g;");
        }

        sql.Append("ANALYZE;");
        _pg.Sql(db, sql.ToString());
        return db;
    }

    private string Facts(string db) =>
        _pg.Scalar(db, "SELECT count(*) || ' tables, ' || (SELECT sum(n_live_tup) FROM pg_stat_user_tables) || ' rows' FROM pg_tables WHERE schemaname = 'public'");

    private string Stored(string file) => Directory.GetFiles(_box["backups/pg"], file, SearchOption.AllDirectories).Single();

    [Fact]
    public void A_restore_that_fails_after_an_artifact_is_in_place_never_falls_back_and_names_what_was_restored()
    {
        var db = CreateShop(2, 5);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        Assert.Equal(0, Run("run").ExitCode);
        var newest = _box.Snapshots().Last().GetProperty("snapshot").GetString()!;
        var dump = Directory.GetFiles(_box[$"backups/pg/{newest}"], "*.dump.zst").Single();
        var bytes = File.ReadAllBytes(dump);
        bytes[bytes.Length / 2] ^= 0x55;
        File.WriteAllBytes(dump, bytes); // the only copy of the newest dump is corrupt; globals.sql is fine

        var restored = NewName("restored");
        var r = Run("restore", "--source", "pg", "--to", $"postgresql://postgres@127.0.0.1:{Port}/{restored}");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"globals.sql of snapshot {newest} was already restored", r.All, StringComparison.Ordinal);
        Assert.Contains("restore an older one with --snapshot into a new destination", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("restoring 2", r.Stdout, StringComparison.Ordinal); // no fallback to the older snapshot
        Assert.Equal("0", _pg.Scalar("postgres", $"SELECT count(*) FROM pg_database WHERE datname = '{restored}'"));
    }

    [Fact]
    public void A_38_table_database_round_trips_through_stock_pg_restore_with_the_same_tables_and_rows()
    {
        var db = CreateShop(38, 100);
        Config(db, ", exact_rows: true, expect: { min_tables: 30, min_rows: 3800 }");
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var snapshot = _box.Snapshots()[0];
        Assert.Equal(38, snapshot.GetProperty("facts").GetProperty("tables").GetInt64());
        Assert.Equal(38 * 100 + 37 * 38 / 2, snapshot.GetProperty("facts").GetProperty("rows").GetInt64());
        Assert.Contains(snapshot.GetProperty("artifacts").EnumerateArray(), a => a.GetProperty("name").GetString() == "globals.sql");

        // Stock tools alone: zstd and pg_restore, into a new database.
        var copy = NewName("restored");
        _pg.Sql("postgres", $"CREATE DATABASE {copy}");
        var restore = Sandbox.ExecEnv(_box.Root, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password }, "/bin/sh", "-c",
            $"zstd -dc '{Stored(db + ".dump.zst")}' | {_pg.Bin}/pg_restore -h 127.0.0.1 -p {Port} -U postgres -d {copy} --no-owner --exit-on-error");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        _pg.Sql(copy, "ANALYZE");
        Assert.Equal(Facts(db), Facts(copy));
        Assert.Equal(_pg.Scalar(db, "SELECT sum(amount) FROM t37"), _pg.Scalar(copy, "SELECT sum(amount) FROM t37"));
    }

    [Fact]
    public void A_closed_port_fails_the_run_naming_host_and_port_and_no_snapshot_counts()
    {
        var closed = PostgresServer.FreePort();
        Config("postgres", port: closed);
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"connection to PostgreSQL at 127.0.0.1:{closed} refused", run.All, StringComparison.Ordinal);
        var status = _box.Json("status").GetProperty("sources")[0];
        Assert.Equal("never", status.GetProperty("state").GetString());
        Assert.Contains("refused", status.GetProperty("last_run").GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void A_wrong_password_fails_saying_so()
    {
        Config("postgres", password: "wrong-password");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("password authentication failed for user 'postgres' at 127.0.0.1:", run.All, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-password", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_database_fails_min_tables()
    {
        var db = NewName("empty");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        Config(db, ", expect: { min_tables: 30 }");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("the source reported 0 tables, fewer than expect.min_tables 30", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void Without_pg_dump_on_PATH_the_server_packages_tools_are_found()
    {
        var db = CreateShop(2, 10);
        Config(db);
        var run = _box.Run(["run"], new Dictionary<string, string>(_env) { ["PATH"] = "/nonexistent" });
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("/usr/lib/postgresql/", File.ReadAllText(Directory.GetFiles(_box["backups/pg"], "MANIFEST.json", SearchOption.AllDirectories).Single()),
            StringComparison.Ordinal);
    }

    [Fact]
    public void A_configured_tool_that_does_not_exist_fails_preflight_naming_it()
    {
        Config("postgres", ", tools: { pg_dump: /nonexistent/pg_dump }");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("tools.pg_dump: program /nonexistent/pg_dump does not exist", run.All, StringComparison.Ordinal);
    }

    private string FakeTools(string body)
    {
        foreach (var tool in new[] { "pg_dump", "pg_dumpall", "pg_restore" })
        {
            var path = _box.Write($"fake/{tool}", $"#!/bin/sh\nREAL={_pg.Bin}/{tool}\n{body}\n");
            File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        }

        return $", tools: {{ pg_dump: ./fake/pg_dump, pg_dumpall: ./fake/pg_dumpall, pg_restore: ./fake/pg_restore }}";
    }

    [Fact]
    public void A_server_newer_than_the_tools_fails_preflight()
    {
        Config("postgres", FakeTools("if [ \"$1\" = --version ]; then echo \"$(basename $0) (PostgreSQL) 9.6.24\"; exit 0; fi; exec $REAL \"$@\""));
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("is PostgreSQL 15, newer than", run.All.Replace("PostgreSQL 16", "PostgreSQL 15", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("(9.6); pg_dump must be at least the server's version", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dump_killed_mid_way_fails_the_snapshot()
    {
        var db = CreateShop(3, 600_000);
        Config(db, FakeTools("if [ \"$1\" = --version ]; then exec $REAL --version; fi; $REAL \"$@\" & pid=$!; sleep 0.1; kill -9 $pid; wait $pid"));
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.True(run.All.Contains("was killed by signal 9", StringComparison.Ordinal), run.ToString());
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void Without_a_configured_password_an_inherited_PGPASSWORD_reaches_pg_dump()
    {
        // Children never inherit secret-named variables; a source with no password: key hands libpq's on to pg_dump.
        var db = CreateShop(1, 10);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {_pg.Port}, user: postgres, databases: [{db}] }}\n");
        var run = _box.Run(["run"], new Dictionary<string, string>(_env) { ["PGPASSWORD"] = PostgresServer.Password });
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.DoesNotContain(PostgresServer.Password, run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void A_globals_failure_while_the_first_dump_runs_stops_it_at_once_and_is_the_error_reported()
    {
        // The globals are taken while the first dump runs. Here pg_dump would hang for a minute and pg_dumpall fails:
        // the run must end at once with pg_dumpall's error (not the dump's cancellation), store nothing, leave nothing.
        Config("postgres", FakeTools(
            "if [ \"$1\" = --version ]; then exec $REAL --version; fi\n" +
            "case \"$(basename $0)\" in pg_dump) exec sleep 60 ;; pg_dumpall) sleep 0.3; echo 'pg_dumpall: error: query failed: permission denied for table pg_authid' >&2; exit 1 ;; esac\n" +
            "exec $REAL \"$@\""));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var run = Run("run");
        clock.Stop();
        Assert.Equal(1, run.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the run took {clock.Elapsed}: the hanging dump was not stopped");
        Assert.Contains("pg_dumpall --globals-only at 127.0.0.1:", run.All, StringComparison.Ordinal);
        Assert.Contains("exited with code 1", run.All, StringComparison.Ordinal);
        Assert.Contains("permission denied for table pg_authid", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
        Assert.Empty(Directory.GetFileSystemEntries(_box["state/staging"]));
    }

    [Fact]
    public void The_password_never_appears_in_any_command_line_output_manifest_or_catalog()
    {
        var db = CreateShop(4, 300_000);
        Config(db);
        var seenPgDump = false;
        var leaks = new List<string>();
        using (var run = _box.Start(["run"], _env))
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(60))
            {
                foreach (var dir in Directory.GetDirectories("/proc").Where(d => char.IsAsciiDigit(Path.GetFileName(d)[0])))
                {
                    string cmdline;
                    try
                    {
                        cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                    }
                    catch (IOException)
                    {
                        continue;
                    }
                    catch (UnauthorizedAccessException)
                    {
                        continue;
                    }

                    seenPgDump |= cmdline.Contains("pg_dump", StringComparison.Ordinal) && cmdline.Contains(db, StringComparison.Ordinal);
                    if (cmdline.Contains(PostgresServer.Password, StringComparison.Ordinal))
                    {
                        leaks.Add(cmdline);
                    }
                }

                if (run.HasExited)
                {
                    break;
                }
            }

            var result = run.Wait();
            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.DoesNotContain(PostgresServer.Password, result.All, StringComparison.Ordinal);
        }

        Assert.True(seenPgDump, "the scan never overlapped pg_dump: it proves nothing");
        Assert.Empty(leaks);
        foreach (var file in Sandbox.FilesUnder(_box.Root))
        {
            var bytes = File.ReadAllBytes(_box[file]);
            Assert.False(bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(PostgresServer.Password)) >= 0, $"{file} holds the password");
        }
    }

    [Fact]
    public void Rows_are_exact_in_the_dumps_own_snapshot_without_analyze_and_estimates_are_labelled()
    {
        // Freshly loaded, never analysed: the planner thinks the table is empty (the issue's rows=0 for 10,700 rows).
        var db = NewName("fresh");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10700);");
        Config(db, ", expect: { min_rows: 10000 }");
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(10700, _box.Snapshots().Last().GetProperty("facts").GetProperty("rows").GetInt64());

        // The dump itself gives both: its table of contents the tables, its COPY data the rows (no second pass over the
        // tables on the server); neither is only the server's word.
        var dump = _box.Snapshots().Last().GetProperty("artifacts").EnumerateArray().First(a => a.GetProperty("name").GetString() == db + ".dump");
        var reported = dump.GetProperty("reported").EnumerateArray().Select(r => r.GetString()).ToList();
        Assert.DoesNotContain("rows", reported);
        Assert.DoesNotContain("tables", reported);
        Assert.Contains("rows=10700", Run("show", _box.Snapshots().Last().GetProperty("snapshot").GetString()!).Stdout, StringComparison.Ordinal);

        // exact_rows: false adds the planner's estimate, labelled; the rows are still the dump's, exact.
        Config(db, ", exact_rows: false");
        var estimated = Run("run");
        Assert.True(estimated.ExitCode == 0, estimated.ToString());
        var facts = _box.Snapshots().Last().GetProperty("facts");
        Assert.Equal(10700, facts.GetProperty("rows").GetInt64());
        Assert.True(facts.TryGetProperty("rows_estimated", out _));
    }

    [Fact]
    public void A_globals_restore_never_changes_a_live_servers_roles_without_force_and_compares_them_after()
    {
        var role = NewName("app_role");
        _pg.Sql("postgres", $"CREATE ROLE {role} LOGIN PASSWORD 'first-pass'");
        var db = CreateShop(2, 5);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        var hash = $"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'";
        var original = _pg.Scalar("postgres", hash);

        // The same roles as the file has them: nothing to change, restored and compared.
        var to = $"postgresql://postgres@127.0.0.1:{Port}/{db}";
        var same = Run("restore", "--source", "pg", "--artifact", "globals.sql", "--to", to);
        Assert.True(same.ExitCode == 0, same.ToString());
        Assert.Contains("roles=", same.Stdout, StringComparison.Ordinal);
        Assert.Contains("as recorded", same.Stdout, StringComparison.Ordinal);

        // The live server's role changed since: refused, and its password left as it is.
        _pg.Sql("postgres", $"ALTER ROLE {role} PASSWORD 'second-pass'");
        var changed = _pg.Scalar("postgres", hash);
        var refused = Run("restore", "--source", "pg", "--artifact", "globals.sql", "--to", to);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"already has role(s) {role} with other attributes or another password", refused.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("SCRAM", refused.All, StringComparison.Ordinal);
        Assert.Equal(changed, _pg.Scalar("postgres", hash));

        var forced = Run("restore", "--source", "pg", "--artifact", "globals.sql", "--to", to, "--force");
        Assert.True(forced.ExitCode == 0, forced.ToString());
        Assert.Equal(original, _pg.Scalar("postgres", hash));
        _pg.Sql("postgres", $"DROP ROLE {role}");
    }

    [Fact]
    public void A_restore_that_fails_midway_leaves_no_database_it_created_and_no_half_filled_one()
    {
        var ghost = NewName("ghost");
        var db = CreateShop(3, 5);
        _pg.Sql("postgres", $"CREATE ROLE {ghost}");
        _pg.Sql(db, $"GRANT SELECT ON t02 TO {ghost}");
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        _pg.Sql(db, $"REVOKE SELECT ON t02 FROM {ghost}");
        _pg.Sql("postgres", $"DROP ROLE {ghost}"); // the dump's GRANT now fails after its tables were created

        var fresh = NewName("fresh");
        var failed = Run("restore", "--source", "pg", "--artifact", db + ".dump", "--to", $"postgresql://postgres@127.0.0.1:{Port}/{fresh}");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains(ghost, failed.All, StringComparison.Ordinal);
        Assert.Equal("0", _pg.Scalar("postgres", $"SELECT count(*) FROM pg_database WHERE datname = '{fresh}'"));

        var empty = NewName("empty");
        _pg.Sql("postgres", $"CREATE DATABASE {empty}");
        Assert.Equal(1, Run("restore", "--source", "pg", "--artifact", db + ".dump", "--to", $"postgresql://postgres@127.0.0.1:{Port}/{empty}").ExitCode);
        Assert.Equal("0", _pg.Scalar(empty, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));
    }

    private static string Conninfo(string database) => "dbname='" + database.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";

    private static string YamlString(string s) =>
        "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "\"";

    [Fact]
    public void Hostile_database_names_are_data_never_code_backed_up_and_restored_under_their_own_name()
    {
        // A listener where a name read as a connection string would send pg_dump, with PGPASSWORD.
        using var decoy = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        decoy.Start();
        var decoyPort = ((System.Net.IPEndPoint)decoy.LocalEndpoint).Port;
        var contacted = 0;
        _ = Task.Run(async () =>
        {
            while (true)
            {
                using var c = await decoy.AcceptTcpClientAsync();
                Interlocked.Increment(ref contacted);
            }
        });

        var suffix = Guid.NewGuid().ToString("N")[..6];
        var names = new[]
        {
            $"host=127.0.0.1 port={decoyPort} dbname=evil{suffix}",
            $"--result-file=/tmp/x{suffix}",
            $"a\\'; DROP DATABASE y; --{suffix}",
            $"quote\"d 'name' {suffix}",
            $"new\nline{suffix}",
            $"../../x{suffix}",
            $"café ✓{suffix}",
        };
        foreach (var (n, i) in names.Select((n, i) => (n, i)))
        {
            _pg.Sql("postgres", $"CREATE DATABASE \"{n.Replace("\"", "\"\"", StringComparison.Ordinal)}\"");
            _pg.Sql(Conninfo(n), $"CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, {10 + i});");
        }

        Config(string.Join(", ", names.Select(YamlString)), ", exact_rows: true");
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(0, contacted);
        Assert.False(File.Exists($"/tmp/x{suffix}"));
        var artifacts = _box.Snapshots().Single().GetProperty("artifacts").EnumerateArray().Select(a => a.GetProperty("name").GetString()!).ToList();
        foreach (var n in names)
        {
            Assert.Contains(Backstop.Core.Text.SafeNames.Encode(n) + ".dump", artifacts);
        }

        Assert.All(Directory.GetFiles(_box["backups"], "*", SearchOption.AllDirectories), f => Assert.StartsWith(_box["backups/pg/"], f, StringComparison.Ordinal));

        // Restored under a hostile name of its own: the same rows, and nothing else contacted.
        var into = $"host=127.0.0.1 port={decoyPort} dbname=restored{suffix}";
        var restore = Run("restore", "--source", "pg", "--artifact", Backstop.Core.Text.SafeNames.Encode(names[0]) + ".dump",
            "--to", $"postgresql://postgres@127.0.0.1:{Port}/{Uri.EscapeDataString(into)}");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal("10", _pg.Scalar(Conninfo(into), "SELECT count(*) FROM t"));
        Assert.Equal(0, contacted);

        // The stock recipe, run literally, does the same: the name is never read as a connection string.
        var explainedInto = $"host=127.0.0.1 port={decoyPort} dbname=explained{suffix}";
        var explain = Run("restore", "--source", "pg", "--explain", "--artifact", Backstop.Core.Text.SafeNames.Encode(names[0]) + ".dump",
            "--to", $"postgresql://postgres@127.0.0.1:{Port}/{Uri.EscapeDataString(explainedInto)}");
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var script = string.Join("\n", explain.Stdout.Split('\n').Where(l => !l.StartsWith('#')));
        var ran = Sandbox.ExecEnv(_box.Root, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password, ["PATH"] = $"{_pg.Bin}:/usr/bin:/bin" },
            "bash", "-e", "-c", script);
        Assert.True(ran.ExitCode == 0, ran + "\n" + script);
        Assert.Equal("10", _pg.Scalar(Conninfo(explainedInto), "SELECT count(*) FROM t"));
        Assert.Equal(0, contacted);
        decoy.Stop();
    }

    [Fact]
    public void A_recipe_for_a_database_named_with_a_command_substitution_pasted_with_its_placeholders_filled_creates_nothing()
    {
        var db = "x$(touch${IFS}pwned)" + Guid.NewGuid().ToString("N")[..6];
        _pg.Sql("postgres", $"CREATE DATABASE \"{db}\"");
        _pg.Sql(Conninfo(db), "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 7);");
        Config(YamlString(db));
        Assert.Equal(0, Run("run").ExitCode);
        var folder = Directory.GetDirectories(_box["backups/pg"]).Single();
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "MANIFEST.json"))).RootElement;
        var artifact = manifest.GetProperty("artifacts").EnumerateArray().Single(a => a.GetProperty("name").GetString()!.StartsWith("x$", StringComparison.Ordinal));
        var recipe = artifact.GetProperty("restore").GetString()!;
        Assert.Contains("'" + artifact.GetProperty("file").GetString() + "'", recipe, StringComparison.Ordinal); // one quoted word

        // Pasted as a person would, in the snapshot's folder, with the placeholders filled in.
        var target = NewName("pasted");
        var filled = recipe.Replace("DB_CONNINFO", $"dbname={target}", StringComparison.Ordinal).Replace("HOST", "127.0.0.1", StringComparison.Ordinal)
            .Replace("PORT", Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal).Replace("USER", "postgres", StringComparison.Ordinal)
            .Replace(" DB ", $" {target} ", StringComparison.Ordinal);
        var ran = Sandbox.ExecEnv(folder, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password, ["PATH"] = $"{_pg.Bin}:/usr/bin:/bin" },
            "bash", "-e", "-c", filled);
        Assert.True(ran.ExitCode == 0, ran + "\n" + filled);
        Assert.False(File.Exists(Path.Combine(folder, "pwned")), "the pasted recipe ran the name's command substitution");
        Assert.Equal("7", _pg.Scalar(target, "SELECT count(*) FROM t"));

        // restore --explain quotes it the same way, filled in or not; DB and DB_CONNINFO are said to be the same database.
        var explain = Run("restore", "--source", "pg", "--explain", "--artifact", artifact.GetProperty("name").GetString()!);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        Assert.Contains("DB = the name of the database to create; DB_CONNINFO = that same name written as dbname='NAME'", explain.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(" " + artifact.GetProperty("file").GetString() + " ", explain.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Restore_into_a_new_database_gives_the_same_tables_and_rows_and_refuses_a_full_one()
    {
        var db = CreateShop(38, 50);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        var copy = NewName("restored");
        var to = $"postgresql://postgres@127.0.0.1:{Port}/{copy}";
        var restore = Run("restore", "--source", "pg", "--artifact", db + ".dump", "--to", to);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Matches("tables=38, rows=[0-9]+, as recorded", restore.Stdout); // rows compared too: counted exactly at backup
        _pg.Sql(copy, "ANALYZE");
        Assert.Equal(Facts(db), Facts(copy));

        var again = Run("restore", "--source", "pg", "--artifact", db + ".dump", "--to", to);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains($"database {copy} at 127.0.0.1:{Port} already holds 38 tables", again.Stderr, StringComparison.Ordinal);

        var withPassword = Run("restore", "--source", "pg", "--to", $"postgresql://postgres:secret@127.0.0.1:{Port}/x");
        Assert.Equal(2, withPassword.ExitCode);
        Assert.Contains("leave the password out of the URI", withPassword.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_restore_from_s3_downloads_the_dump_once_through_a_spool_and_leaves_none()
    {
        using var s3 = new S3Server();
        using var proxy = new FaultProxy(s3.Port, budget: long.MaxValue / 2); // never faults: counts what S3 sends
        var db = NewName("blob");
        _pg.Sql("postgres", $"CREATE DATABASE {db}");
        _pg.Sql(db, "CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 150000) g; ANALYZE;");
        _box.WriteConfig("catalog: ./state/catalog.db\nstaging: ./state/staging\ntargets:\n" +
                         $"  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{proxy.Port}\", bucket: {s3.Bucket}, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\" }}\n" +
                         $"sources:\n  - {{ name: pg, kind: postgres, host: 127.0.0.1, port: {Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\", databases: [{db}] }}\n");
        var env = new Dictionary<string, string>(_env);
        foreach (var (k, v) in S3Server.Env)
        {
            env[k] = v;
        }

        var run = _box.Run(["run"], env);
        Assert.True(run.ExitCode == 0, run.ToString());
        var dump = new FileInfo(Directory.GetFiles(Path.Combine(s3.Root, s3.Bucket), $"{db}.dump.zst._S3rver_object", SearchOption.AllDirectories).Single()).Length;
        Assert.True(dump > 2_000_000, $"the dump is {dump} bytes: too small to tell one download from two");

        var before = proxy.Forwarded;
        var copy = NewName("restored");
        var restore = _box.Run(["restore", "--source", "pg", "--artifact", db + ".dump", "--to", $"postgresql://postgres@127.0.0.1:{Port}/{copy}"], env);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        var downloaded = proxy.Forwarded - before;
        Assert.InRange(downloaded, dump, dump + dump / 4); // once (it was twice: a full check, then the restore's read)
        _pg.Sql(copy, "ANALYZE");
        Assert.Equal(Facts(db), Facts(copy));
        Assert.Empty(Directory.GetFiles(_box["state/staging"], ".backstop-spool-*"));
    }

    [Fact]
    public void A_stored_dump_longer_than_recorded_is_never_spooled_past_its_size_and_nothing_is_sent()
    {
        var db = CreateShop(3, 50);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        using (var f = new FileStream(Stored(db + ".dump.zst"), FileMode.Append))
        {
            f.Write(new byte[3 << 20]); // the wrong object, 3 MB too long
        }

        var copy = NewName("restored");
        var restore = Run("restore", "--source", "pg", "--artifact", db + ".dump", "--to", $"postgresql://postgres@127.0.0.1:{Port}/{copy}");
        Assert.Equal(1, restore.ExitCode);
        Assert.Contains("bytes stored", restore.Stderr, StringComparison.Ordinal);
        Assert.Contains("has more than the", restore.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_box["state/staging"], ".backstop-spool-*"));
        Assert.Equal("0", _pg.Scalar("postgres", $"SELECT count(*) FROM pg_database WHERE datname = '{copy}'")); // nothing sent
    }

    [Fact]
    public void Without_room_for_a_spool_the_copy_is_checked_whole_then_read_again_and_said_so()
    {
        var db = CreateShop(3, 50);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        _box.Tmpfs("state/staging", "1m"); // less than the copy plus its margin
        var copy = NewName("restored");
        var restore = Run("restore", "--source", "pg", "--artifact", db + ".dump", "--to", $"postgresql://postgres@127.0.0.1:{Port}/{copy}");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Contains("note: staging", restore.Stderr, StringComparison.Ordinal);
        Assert.Contains("spool of " + db + ".dump.zst: the copy is checked whole, then read again", restore.Stderr, StringComparison.Ordinal);
        _pg.Sql(copy, "ANALYZE");
        Assert.Equal(Facts(db), Facts(copy));
    }

    /// <summary>The restore --explain recipe, with --to filled in, run as printed by a shell: the same tables and rows.</summary>
    [Fact]
    public void The_explain_recipe_run_literally_restores_the_same_tables_and_rows()
    {
        var db = CreateShop(5, 20);
        Config(db);
        Assert.Equal(0, Run("run").ExitCode);
        var copy = NewName("explained");
        var explain = Run("restore", "--source", "pg", "--artifact", db + ".dump", "--explain", "--to", $"postgresql://postgres@127.0.0.1:{Port}/{copy}");
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var recipe = explain.Stdout.Split('\n').Single(l => l.StartsWith("createdb", StringComparison.Ordinal));
        var check = explain.Stdout.Split('\n').Single(l => l.Contains("sha256sum -c", StringComparison.Ordinal));
        var r = Sandbox.ExecEnv(_box.Root, new Dictionary<string, string> { ["PGPASSWORD"] = PostgresServer.Password, ["PATH"] = $"{_pg.Bin}:/usr/bin:/bin" },
            "/bin/sh", "-c", $"set -e; {check}; {recipe}");
        Assert.True(r.ExitCode == 0, r.ToString() + "\n" + recipe);
        _pg.Sql(copy, "ANALYZE");
        Assert.Equal(Facts(db), Facts(copy));
    }
}
