using System.Globalization;
using Backstop.IntegrationTests.Support;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;

namespace Backstop.IntegrationTests.Sources;

/// <summary>
/// The source conformance suite, run against every kind with the real program and real servers: data whose names are
/// hostile (newlines, quotes, '../', a leading '-', non-ASCII) is captured, the format check's facts agree with the
/// source's (or are marked reported), each artifact restores into a fresh place with the same facts, and the restored
/// data, read with the kind's own client, holds those names as they were. Nothing is written outside the sandbox. And a
/// source that refuses (nothing listens, nothing is there) fails its run with a cause in words, leaves nothing that
/// counts as a backup, and doctor names it. All ten kinds run it; a new kind adds a subclass here.
/// </summary>
public abstract class SourceConformance : IDisposable
{
    protected Sandbox Box { get; } = new();

    protected virtual IDictionary<string, string>? Env => null;

    /// <summary>The hostile names every kind stores where it can.</summary>
    protected static readonly string[] Hostile = ["new\nline", "quote'\"d", "../../escape", "-rf --result-file=x", "back\\slash", "日本 ✓"];

    /// <summary>Puts data holding the hostile names into the source; returns its configuration (one list item).</summary>
    protected abstract string Fill();

    /// <summary>A fresh place for one artifact.</summary>
    protected abstract string DestinationFor(string artifact);

    /// <summary>Reads what was restored with the kind's own tools and checks the hostile names and their values.</summary>
    protected abstract void CheckRestored(string artifact, string destination);

    /// <summary>The source's configuration (one list item named s) where what it reads from refuses: nothing listens, or nothing is there.</summary>
    protected abstract string Refusing();

    public virtual void Dispose()
    {
        Box.Dispose();
        GC.SuppressFinalize(this);
    }

    [Fact]
    public void Hostile_names_are_captured_checked_and_restored_into_a_fresh_place_with_the_same_facts()
    {
        Box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Fill());
        var run = Box.Run(["run"], Env);
        Assert.True(run.ExitCode == 0, run.ToString());
        var snapshot = Box.Snapshots().Single();
        foreach (var artifact in snapshot.GetProperty("artifacts").EnumerateArray())
        {
            var name = artifact.GetProperty("name").GetString()!;
            var facts = artifact.GetProperty("facts").EnumerateObject().Select(f => f.Name).ToList();
            Assert.All(artifact.GetProperty("reported").EnumerateArray(), r => Assert.Contains(r.GetString(), facts));
            if (name.EndsWith(".listing", StringComparison.Ordinal))
            {
                continue; // a chain's listing, for the next level: nothing to restore (restore refuses it by name)
            }

            var destination = DestinationFor(name);
            var restore = Box.Run(["restore", "--source", "s", "--artifact", name, "--to", destination], Env);
            Assert.True(restore.ExitCode == 0, restore.ToString());
            Assert.DoesNotContain("not as recorded", restore.All, StringComparison.Ordinal);
            CheckRestored(name, destination);
        }

        // Nothing outside the sandbox's own folders.
        string[] ours = ["backstop.yaml", "backups", "state", "data", "app.db", "out"];
        Assert.All(Directory.GetFileSystemEntries(Box.Root), e => Assert.Contains(Path.GetFileName(e), ours));
    }

    [Fact]
    public void A_source_that_refuses_fails_its_run_and_doctor_says_why_and_nothing_counts_as_a_backup()
    {
        Box.WriteConfig(Yaml.LocalTarget() + "doctor: { crontabs: [], systemd: [] }\n" + "sources:\n" + Refusing());
        var run = Box.Run(["run"], Env);
        Assert.True(run.ExitCode == 1, run.ToString());
        var failed = System.Text.RegularExpressions.Regex.Match(run.All, "^\\S+ s: snapshot \\S+ FAILED: (.+)$", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.True(failed.Success, run.ToString());
        Assert.DoesNotContain("Exception", run.All, StringComparison.Ordinal); // a cause in words, no stack trace
        Assert.All(Box.Snapshots(), snapshot => Assert.False(snapshot.GetProperty("valid").GetBoolean(), snapshot.ToString()));
        Assert.Empty(Directory.Exists(Box["backups"]) ? Directory.GetFiles(Box["backups"], Backstop.Core.Storage.Layout.ManifestName, SearchOption.AllDirectories) : []);

        var doctor = Box.Run(["doctor", "--json"], Env);
        Assert.True(doctor.ExitCode == 1, doctor.ToString());
        var checks = System.Text.Json.JsonDocument.Parse(doctor.Stdout).RootElement.GetProperty("checks").EnumerateArray().ToList();
        Assert.Contains(checks, c => c.GetProperty("subject").GetString()!.StartsWith("source 's'", StringComparison.Ordinal)
                                     && c.GetProperty("status").GetString() == "fail" && c.GetProperty("message").GetString()!.Length > 0);
    }
}

public sealed class FilesSourceConformance : SourceConformance
{
    protected override string Fill()
    {
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Box.Write("data/" + n.Replace("/", "∕", StringComparison.Ordinal), $"content {i}");
        }

        return "  - { name: s, kind: files, paths: [./data] }\n";
    }

    protected override string Refusing() => "  - { name: s, kind: files, paths: [./data-unmounted] }\n";

    protected override string DestinationFor(string artifact) => Box["out/files"];

    protected override void CheckRestored(string artifact, string destination)
    {
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Assert.Equal($"content {i}", File.ReadAllText(Path.Combine(destination, Box["data"].TrimStart('/'), n.Replace("/", "∕", StringComparison.Ordinal))));
        }
    }
}

public sealed class SqliteSourceConformance : SourceConformance
{
    public SqliteSourceConformance() => SQLitePCL.Batteries_V2.Init();

    private static string Quoted(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    protected override string Fill()
    {
        using (var c = new SqliteConnection($"Data Source={Box["app.db"]};Pooling=False"))
        {
            c.Open();
            foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
            {
                using var cmd = c.CreateCommand();
                cmd.CommandText = $"CREATE TABLE {Quoted(n)} (v TEXT); INSERT INTO {Quoted(n)} VALUES ('{i}');";
                cmd.ExecuteNonQuery();
            }
        }

        return "  - { name: s, kind: sqlite, path: ./app.db }\n";
    }

    protected override string Refusing() => "  - { name: s, kind: sqlite, path: ./data/gone.db }\n";

    protected override string DestinationFor(string artifact) => Box["out/restored.db"];

    protected override void CheckRestored(string artifact, string destination)
    {
        using var c = new SqliteConnection($"Data Source={destination};Mode=ReadOnly;Pooling=False");
        c.Open();
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT v FROM {Quoted(n)}";
            Assert.Equal(i.ToString(CultureInfo.InvariantCulture), cmd.ExecuteScalar());
        }
    }
}

public sealed class CommandSourceConformance : SourceConformance
{
    protected override string Fill()
    {
        // Every byte value, a line that looks like a path, a NUL: a command's output is data, stored as it is.
        Box.Shell("mkdir -p data && printf '../../escape\\n' > data/raw.bin && head -c 256 /dev/zero | tr '\\0' '\\377' >> data/raw.bin && printf '\\000end' >> data/raw.bin");
        return Yaml.Command("s", "cat data/raw.bin");
    }

    protected override string Refusing() => "  - { name: s, kind: command, command: [no-such-dump-tool, --all], artifact: dump.out }\n";

    protected override string DestinationFor(string artifact) => Box["out/"];

    protected override void CheckRestored(string artifact, string destination) =>
        Assert.Equal(File.ReadAllBytes(Box["data/raw.bin"]), File.ReadAllBytes(Path.Combine(destination, artifact)));

    [Fact]
    public void A_restore_says_which_facts_it_compared()
    {
        Box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Fill());
        Assert.Equal(0, Box.Run("run").ExitCode);
        var r = Box.Run("restore", "--source", "s", "--to", Box["out/"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Matches("restored dump.out of .*: bytes=[0-9]+, as recorded", r.Stdout);
    }
}

public sealed class RedisSourceConformance : SourceConformance
{
    private readonly RedisServer _redis = new(password: false);

    protected override string Fill()
    {
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Assert.Equal("OK", _redis.Cli("SET", n, $"value {i}").Stdout.Trim());
        }

        return $"  - {{ name: s, kind: redis, host: 127.0.0.1, port: {_redis.Port} }}\n";
    }

    protected override string Refusing() => $"  - {{ name: s, kind: redis, host: 127.0.0.1, port: {PostgresServer.FreePort()} }}\n";

    protected override string DestinationFor(string artifact) => Box["out/redis"];

    protected override void CheckRestored(string artifact, string destination)
    {
        using var restored = new RedisServer(destination, password: false);
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Assert.Equal($"value {i}", restored.Cli("GET", n).Stdout.TrimEnd('\n'));
        }
    }

    public override void Dispose()
    {
        _redis.Dispose();
        base.Dispose();
    }
}

public sealed class EtcdSourceConformance : SourceConformance
{
    private readonly EtcdServer _etcd = new();

    protected override string Fill()
    {
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            var put = _etcd.Ctl("put", "--", n, $"value {i}");
            Assert.True(put.ExitCode == 0, put.ToString());
        }

        return $"  - {{ name: s, kind: etcd, endpoints: [{_etcd.Endpoint}] }}\n";
    }

    protected override string Refusing() => $"  - {{ name: s, kind: etcd, endpoints: [http://127.0.0.1:{PostgresServer.FreePort()}] }}\n";

    protected override string DestinationFor(string artifact) => Box["out/etcd"];

    protected override void CheckRestored(string artifact, string destination)
    {
        var data = Box["out/member"];
        var restore = Box.Shell($"ETCDCTL_API=3 etcdctl snapshot restore '{Path.Combine(destination, artifact)}' --data-dir '{data}'");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        using var restored = new EtcdServer(data);
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Assert.Equal($"value {i}", restored.Ctl("get", "--print-value-only", "--", n).Stdout.TrimEnd('\n'));
        }
    }

    public override void Dispose()
    {
        _etcd.Dispose();
        base.Dispose();
    }
}

public sealed class CouchDbSourceConformance : SourceConformance, IClassFixture<CouchServer>
{
    private readonly CouchServer _couch;
    private readonly string _db = "ledger/2024(a)+b-c$" + Guid.NewGuid().ToString("N")[..6];

    public CouchDbSourceConformance(CouchServer couch) => _couch = couch;

    /// <summary>
    /// Without the non-ASCII one: pouchdb-server's _all_docs leaves it out while counting it in doc_count (its bug;
    /// Backstop then refuses the backup, "5 documents were written … the server counted 6").
    /// </summary>
    private static string[] Ids => Hostile.Where(n => n.All(char.IsAscii)).ToArray();

    protected override string Fill()
    {
        _couch.SendAsync(HttpMethod.Put, "/" + Uri.EscapeDataString(_db)).GetAwaiter().GetResult();
        var docs = Ids.Select((n, i) => new Dictionary<string, object> { ["_id"] = n, ["v"] = i }).ToArray();
        _couch.SendAsync(HttpMethod.Post, $"/{Uri.EscapeDataString(_db)}/_bulk_docs", new { docs }).GetAwaiter().GetResult();
        return $"  - {{ name: s, kind: couchdb, url: \"{_couch.Url}\", databases: [\"{_db}\"] }}\n";
    }

    protected override string Refusing() => $"  - {{ name: s, kind: couchdb, url: \"http://127.0.0.1:{PostgresServer.FreePort()}\", databases: [\"{_db}\"] }}\n";

    protected override string DestinationFor(string artifact) => $"{_couch.Url}/{Uri.EscapeDataString("restored/" + _db)}";

    protected override void CheckRestored(string artifact, string destination)
    {
        foreach (var (n, i) in Ids.Select((n, i) => (n, i)))
        {
            var doc = _couch.SendAsync(HttpMethod.Get, $"/{Uri.EscapeDataString("restored/" + _db)}/{Uri.EscapeDataString(n)}").GetAwaiter().GetResult();
            Assert.Equal(i, doc.GetProperty("v").GetInt32());
        }
    }
}

public sealed class PostgresSourceConformance : SourceConformance, IClassFixture<PostgresServer>
{
    private readonly PostgresServer _pg;
    private readonly string _db = "conformance_" + Guid.NewGuid().ToString("N")[..8];

    public PostgresSourceConformance(PostgresServer pg) => _pg = pg;

    protected override IDictionary<string, string>? Env { get; } = new Dictionary<string, string> { ["PG_TEST_PASSWORD"] = PostgresServer.Password };

    private static string Quoted(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private string Source(int port) =>
        $"  - {{ name: s, kind: postgres, host: 127.0.0.1, port: {port}, user: postgres, password: \"env:PG_TEST_PASSWORD\", databases: [{_db}] }}\n";

    /// <summary>Tables named with the hostile names (a database's own hostile names are <c>PostgresSourceTests</c>' job).</summary>
    protected override string Fill()
    {
        _pg.Sql("postgres", $"CREATE DATABASE {_db}");
        _pg.Sql(_db, string.Concat(Hostile.Select((n, i) => $"CREATE TABLE {Quoted(n)} (v text); INSERT INTO {Quoted(n)} VALUES ('value {i}');")));
        return Source(_pg.Port);
    }

    protected override string Refusing() => Source(PostgresServer.FreePort());

    protected override string DestinationFor(string artifact) =>
        $"postgresql://postgres@127.0.0.1:{_pg.Port}/{(artifact == "globals.sql" ? "postgres" : _db + "_restored")}";

    protected override void CheckRestored(string artifact, string destination)
    {
        if (artifact == "globals.sql")
        {
            Assert.Equal("t", _pg.Scalar("postgres", "SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")); // the roles, as they were
            return;
        }

        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Assert.Equal($"value {i}", _pg.Scalar(_db + "_restored", $"SELECT v FROM {Quoted(n)}"));
        }
    }
}

public sealed class MySqlSourceConformance : SourceConformance, IClassFixture<MariaDbServer>
{
    private readonly MariaDbServer _my;
    private readonly string _db = "conformance_" + Guid.NewGuid().ToString("N")[..8];

    public MySqlSourceConformance(MariaDbServer my) => _my = my;

    protected override IDictionary<string, string>? Env { get; } = new Dictionary<string, string> { ["MY_TEST_PASSWORD"] = MariaDbServer.Password };

    private static string Quoted(string name) => "`" + name.Replace("`", "``", StringComparison.Ordinal) + "`";

    private string Source(int port) =>
        $"  - {{ name: s, kind: mysql, host: 127.0.0.1, port: {port}, user: {MariaDbServer.User}, password: \"env:MY_TEST_PASSWORD\", databases: [{_db}] }}\n";

    /// <summary>Tables named with the hostile names (a database's own hostile names are <c>MySqlSourceTests</c>' job).</summary>
    protected override string Fill()
    {
        _my.RootSql($"CREATE DATABASE {_db}; USE {_db}; " +
                    string.Concat(Hostile.Select((n, i) => $"CREATE TABLE {Quoted(n)} (v TEXT); INSERT INTO {Quoted(n)} VALUES ('value {i}');")));
        return Source(_my.Port);
    }

    protected override string Refusing() => Source(PostgresServer.FreePort());

    protected override string DestinationFor(string artifact) => $"mysql://{MariaDbServer.User}@127.0.0.1:{_my.Port}/{_db}_restored";

    protected override void CheckRestored(string artifact, string destination)
    {
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Assert.Equal($"value {i}", _my.RootSql($"SELECT v FROM {_db}_restored.{Quoted(n)}"));
        }
    }
}

public sealed class RegistrySourceConformance : SourceConformance
{
    private readonly RegistryServer _registry = new();
    private readonly RegistryServer _fresh = new();

    /// <summary>A registry takes no hostile name (the distribution spec's grammar); these are at its edges: every separator, nesting, a 128-character tag.</summary>
    private static readonly (string Repository, string Tag)[] Names = [("a/b.c_d-e/f", "v1.0_rc-1"), ("x--y/z__w", new string('t', 128)), ("0/1/2/3", "latest")];

    protected override string Fill()
    {
        foreach (var (repository, tag) in Names)
        {
            var images = new OciImages(Box["data/" + Guid.NewGuid().ToString("N")[..8]]);
            images.Tag(tag, repository.Replace('/', '-'));
            _registry.Push(images.Dir, tag, repository);
        }

        return $"  - {{ name: s, kind: registry, url: \"{_registry.Url}\" }}\n";
    }

    protected override string Refusing() => $"  - {{ name: s, kind: registry, url: \"http://127.0.0.1:{PostgresServer.FreePort()}\" }}\n";

    protected override string DestinationFor(string artifact) => _fresh.Url;

    protected override void CheckRestored(string artifact, string destination)
    {
        var (repository, tag) = Assert.Single(Names, x => Backstop.Sources.Registry.OciLayoutReader.ArtifactName(x.Repository) == artifact);
        Assert.Equal(_registry.Digest(repository, tag), _fresh.Digest(repository, tag));
    }

    public override void Dispose()
    {
        _registry.Dispose();
        _fresh.Dispose();
        base.Dispose();
    }
}

/// <summary>Against the Kubernetes API fixture (no API server can be installed here; see <c>KubeApiServer</c>).</summary>
public sealed class KubernetesSourceConformance : SourceConformance
{
    private readonly KubeApiServer _api = new();
    private readonly KubeApiServer _fresh = new();

    private static JsonObject Obj(string kind, string? ns, string name, JsonObject? data = null)
    {
        var meta = new JsonObject { ["name"] = name };
        if (ns is not null)
        {
            meta["namespace"] = ns;
        }

        var o = new JsonObject { ["apiVersion"] = "v1", ["kind"] = kind, ["metadata"] = meta };
        if (data is not null)
        {
            o["data"] = data;
        }

        return o;
    }

    /// <summary>Object names are DNS labels (the API refuses others); the hostile names are the values of a ConfigMap.</summary>
    protected override string Fill()
    {
        _api.Add(Obj("Namespace", null, "conformance"));
        var data = new JsonObject();
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            data[$"k{i}"] = n;
        }

        _api.Add(Obj("ConfigMap", "conformance", "hostile", data));
        Directory.CreateDirectory(Box["data"]);
        return $"  - {{ name: s, kind: kubernetes, kubeconfig: {_api.WriteKubeconfig(Box["data/kubeconfig"], _fresh)}, exclude_kinds: [Secret] }}\n";
    }

    protected override string Refusing()
    {
        Directory.CreateDirectory(Box["data"]);
        string kubeconfig;
        using (var gone = new KubeApiServer())
        {
            kubeconfig = gone.WriteKubeconfig(Box["data/kubeconfig"]);
        }

        return $"  - {{ name: s, kind: kubernetes, kubeconfig: {kubeconfig}, exclude_kinds: [Secret] }}\n";
    }

    protected override string DestinationFor(string artifact) => "kube://other";

    protected override void CheckRestored(string artifact, string destination)
    {
        var restored = _fresh.Get("", "configmaps", "conformance", "hostile");
        Assert.NotNull(restored);
        foreach (var (n, i) in Hostile.Select((n, i) => (n, i)))
        {
            Assert.Equal(n, restored["data"]![$"k{i}"]!.GetValue<string>());
        }
    }

    public override void Dispose()
    {
        _api.Dispose();
        _fresh.Dispose();
        base.Dispose();
    }
}
