using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Catalog;

/// <summary>A fleet's catalog on a real PostgreSQL: moving an embedded history into it, and the verbs on it.</summary>
public sealed class FleetCatalogTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly PostgresServer _pg;
    private readonly Sandbox _box = new();
    private readonly Dictionary<string, string> _env = new() { ["PGPASSWORD"] = PostgresServer.Password };

    public FleetCatalogTests(PostgresServer pg) => _pg = pg;

    public void Dispose() => _box.Dispose();

    private string NewDatabase()
    {
        var name = "fleet_" + Guid.NewGuid().ToString("N")[..10];
        _pg.Sql("postgres", $"CREATE DATABASE {name}");
        return name;
    }

    private string Url(string database) => $"postgresql://postgres@127.0.0.1:{_pg.Port}/{database}";

    private static string Config(string catalog) =>
        catalog + "\nmachine: m1\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n" +
        "  - { name: local, kind: local, machine: m1, path: ./backups }\n" +
        "sources:\n  - { name: files, kind: files, paths: [./data] }\n" + Yaml.Command("app", "echo ledger");

    private static string Normalize(string json) => JsonSerializer.Serialize(JsonDocument.Parse(json).RootElement);

    /// <summary>A shared catalog's status without what only a fleet has: the machine of each source, and the machines.</summary>
    private static string WithoutFleet(string json)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        Assert.NotNull(node["machines"]);
        node.Remove("machines");
        foreach (var source in node["sources"]!.AsArray())
        {
            Assert.NotNull(source!["machine"]);
            source.AsObject().Remove("machine");
        }

        return Normalize(node.ToJsonString());
    }

    [Fact]
    public void Migrate_copies_the_whole_history_and_every_verb_then_answers_the_same_from_postgresql()
    {
        _box.Write("data/a.txt", "alpha");
        _box.WriteConfig(Config("catalog: ./state/catalog.db"));
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(0, _box.Run("run").ExitCode);
            Thread.Sleep(1100);
        }

        var drill = _box.Run("drill", "--source", "files");
        Assert.True(drill.ExitCode == 0, drill.ToString());
        var list = Normalize(_box.Run("list", "--json").Stdout);
        var status = _box.Run("status", "--json").Stdout;
        var show = _box.Run("show", "latest", "--source", "files", "--json").Stdout;
        var database = NewDatabase();

        var inline = _box.Run("catalog", "migrate", "--to", Url(database), "--password", PostgresServer.Password);
        Assert.Equal(2, inline.ExitCode);
        Assert.Contains("never the password itself", inline.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(PostgresServer.Password, inline.All, StringComparison.Ordinal);

        var migrate = _box.Run(["catalog", "migrate", "--to", Url(database)], _env);
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        Assert.Contains("snapshots               4 row(s)", migrate.Stdout, StringComparison.Ordinal);
        Assert.Contains("every table counted on both sides", migrate.Stdout, StringComparison.Ordinal);
        Assert.Equal("4", _pg.Scalar(database, "SELECT count(*) FROM snapshots"));
        Assert.Equal("1", _pg.Scalar(database, "SELECT count(*) FROM drills"));

        var again = _box.Run(["catalog", "migrate", "--to", Url(database)], _env);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("is not empty (2 row(s) in sources, 4 row(s) in snapshots", again.Stderr, StringComparison.Ordinal);

        _box.WriteConfig(Config($"catalog: {{url: \"{Url(database)}\", password: env:PGPASSWORD}}"));
        File.Move(_box["state/catalog.db"], _box["state/catalog.db.migrated"]); // the file is no longer read
        Assert.Equal(list, Normalize(_box.Run(["list", "--json"], _env).Stdout));
        Assert.Equal(Normalize(status), WithoutFleet(_box.Run(["status", "--json"], _env).Stdout)); // the same, plus each source's machine and the machines
        Assert.Equal(show, _box.Run(["show", "latest", "--source", "files", "--json"], _env).Stdout);

        // It goes on from there: a run, a drill (ids after the copied ones), a verify, a restore.
        _box.Write("data/b.txt", "beta");
        Assert.Equal(0, _box.Run(["run"], _env).ExitCode);
        Assert.Equal(0, _box.Run(["drill", "--source", "files"], _env).ExitCode);
        Assert.Equal("1,2", _pg.Scalar(database, "SELECT string_agg(id::text, ',' ORDER BY id) FROM drills"));
        Assert.Equal(0, _box.Run(["verify", "--deep"], _env).ExitCode);
        var restore = _box.Run(["restore", "--source", "files", "--to", _box["out"]], _env);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal("beta", File.ReadAllText(Directory.GetFiles(_box["out"], "b.txt", SearchOption.AllDirectories).Single()));
        Assert.Equal("6", _pg.Scalar(database, "SELECT count(*) FROM snapshots WHERE state = 'committed'"));
        Assert.False(File.Exists(_box["state/catalog.db"]));
    }

    [Fact]
    public void A_catalog_server_that_refuses_or_is_gone_is_a_loud_failure_naming_the_fix()
    {
        _box.Write("data/a.txt", "alpha");
        _box.WriteConfig(Config($"catalog: {{url: \"{Url("missing_db")}\", password: env:PGPASSWORD}}"));
        var run = _box.Run(["run"], _env);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"catalog postgresql://postgres@127.0.0.1:{_pg.Port}/missing_db cannot be reached", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("createdb", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(PostgresServer.Password, run.All, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Stderr, StringComparison.Ordinal);

        var status = _box.Run(["status"], new Dictionary<string, string> { ["PGPASSWORD"] = "wrong-one" });
        Assert.NotEqual(0, status.ExitCode);
        Assert.Contains("check catalog.password for user postgres", status.Stderr, StringComparison.Ordinal);
    }
}
