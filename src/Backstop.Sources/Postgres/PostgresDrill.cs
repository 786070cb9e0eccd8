using System.Globalization;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Common;
using Npgsql;

namespace Backstop.Sources.Postgres;

/// <summary>A smoke query: it must run and return a first row whose first column is true or a non-zero number.</summary>
public sealed record SmokeQuery(string? Database, string Sql);

/// <summary>
/// <c>drill:</c> for postgres: <c>server</c> (a drill server, <c>postgresql://user@host:port</c>, where scratch
/// databases are made; by default a throwaway cluster), <c>smoke</c> queries, <c>bin</c> (the folder of the server
/// binaries, default <c>/usr/lib/postgresql/MAJOR/bin</c> for the dump's major version).
/// </summary>
public sealed record PostgresDrillOptions(string? Server, IReadOnlyList<SmokeQuery> Smoke, string? Bin);

public sealed partial class PostgresSourceKind
{
    public override IReadOnlyList<string> DrillKeys { get; } = ["server", "smoke", "bin"];

    public override object? ParseDrillOptions(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var server = map.String("server");
        if (server is not null)
        {
            try
            {
                var d = ServerDestination.Parse(server, new Dictionary<string, int>(StringComparer.Ordinal) { ["postgresql"] = 5432, ["postgres"] = 5432 },
                    "postgresql://user@host:5432", null);
                if (d.Database.Length > 0)
                {
                    throw map.Error("server", "name the server only (postgresql://user@host:port): the drill makes its own scratch databases there");
                }
            }
            catch (ConfigException e) when (e.Location is null)
            {
                throw map.Error("server", e.Message);
            }
        }

        return new PostgresDrillOptions(server, Common.SmokeQueries.Parse(map).Select(q => new SmokeQuery(q.Database, q.Sql)).ToList(), map.PathValue("bin"));
    }
}

/// <summary>
/// A PostgreSQL drill. By default a throwaway cluster: <c>initdb</c> and <c>postgres</c> from the server binaries of
/// the dump's major version (read from the dump's header), on a free loopback port, its data in the drill's scratch
/// folder, run as the <c>postgres</c> user (or nobody) when Backstop runs as root; globals.sql, then every database,
/// are restored into it through <c>restore</c>'s own path. With <c>drill.server</c>, each database is restored into a
/// scratch database with a random name on that server, and dropped afterwards (globals are not applied to a shared
/// server). Tables and rows are compared with the snapshot's, then the smoke queries run.
/// </summary>
internal sealed partial class PostgresSource : IDrillable
{
    /// <summary>The source's <c>drill:</c> options, for sweeping what a killed drill left on its drill server.</summary>
    internal PostgresDrillOptions? DrillOptions { get; init; }

    /// <summary>The throwaway cluster's bootstrap superuser (not a name a dump's globals would create).</summary>
    private const string DrillSuperuser = "backstop_drill";

    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var drill = scope.Options as PostgresDrillOptions ?? new PostgresDrillOptions(null, [], null);
        var tools = await PostgresTools.ResolveAsync(name, options.Tools, cancellationToken).ConfigureAwait(false);
        var databases = scope.Artifacts.Where(a => a.Name != GlobalsArtifact)
            .ToDictionary(a => a.Name, a => Uri.UnescapeDataString(a.Name[..^".dump".Length]), StringComparer.Ordinal);
        return drill.Server is { } server
            ? await OpenOnServerAsync(scope, drill, server, databases, tools, cancellationToken).ConfigureAwait(false)
            : await OpenClusterAsync(scope, drill, databases, tools, cancellationToken).ConfigureAwait(false);
    }

    private async Task<IDrillScratch> OpenClusterAsync(DrillScope scope, PostgresDrillOptions drill, Dictionary<string, string> databases, PostgresTools tools,
        CancellationToken ct)
    {
        int? dumpMajor = null;
        if (databases.Count > 0)
        {
            var header = await scope.PeekAsync(databases.Keys.First(), 8192, ct).ConfigureAwait(false);
            dumpMajor = CustomDumpHeader.ServerMajor(header);
        }

        var (bin, major) = ServerBinaries(drill.Bin, dumpMajor, scope);
        var user = ScratchServer.UnprivilegedUser("postgres");
        var root = Common.ScratchFolders.ReachableBy(scope, user, "postgres");
        var data = Path.Combine(root, "data");
        var run = user is { } u ? (Program: ChildProcess.ResolveTool("setpriv"), Prefix: new[] { $"--reuid={u.Uid}", $"--regid={u.Gid}", "--clear-groups", "--" })
            : (Program: (string?)null, Prefix: Array.Empty<string>());
        var initdb = Path.Combine(bin, "initdb");
        // The cluster listens on loopback, where every local user can reach it while the drill runs: its superuser has a
        // random password of its own. initdb reads it from a file of the server's user; the restore from one of ours,
        // named in the destination (password_file=), so it never travels in argv or the environment of a child it does not need.
        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        var initArgs = new List<string> { "-D", data, "-U", DrillSuperuser, "-E", "UTF8", "--locale=C", "--no-sync", "--auth=scram-sha-256" };
        var pwfile = Path.Combine(root, "pwfile");
        ScratchFolders.WriteSecret(pwfile, password);
        ScratchServer.GiveTo(user, pwfile);
        initArgs.Add("--pwfile=" + pwfile);
        var restorePassword = Path.Combine(scope.Folder, "restore-password");
        ScratchFolders.WriteSecret(restorePassword, password);

        var log = new MemoryStream();
        try
        {
            await ChildProcess.RunCleanToStreamAsync(run.Program ?? initdb, run.Program is null ? initArgs : [.. run.Prefix, initdb, .. initArgs],
                new Dictionary<string, string>(), "/", log, TimeSpan.FromMinutes(10), $"initdb of the drill's throwaway cluster{(user is { } v ? $" (as {v.Name})" : "")}",
                ct).ConfigureAwait(false);
        }
        catch (BackupException e)
        {
            throw new BackupException($"source '{name}': {e.Message}");
        }
        finally
        {
            File.Delete(pwfile);
        }

        var port = ScratchServer.FreePort();
        var postgres = await ScratchServer.StartAsync(scope, "postgres", Path.Combine(bin, "postgres"),
            ["-D", data, "-p", port.ToString(CultureInfo.InvariantCulture), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
             "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
            user, async c =>
            {
                try
                {
                    await using var db = await At("127.0.0.1", port, DrillSuperuser, password, throwaway: true).ConnectAsync("postgres", c).ConfigureAwait(false);
                    return true;
                }
                catch (Exception e) when (e is BackupException or NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
                {
                    return false; // not listening yet, or starting up (57P03)
                }
            }, TimeSpan.FromMinutes(2), ct, stopSignal: 2).ConfigureAwait(false);
        if (dumpMajor is { } m && m != major)
        {
            scope.Note($"the dumps come from PostgreSQL {m}; no server binaries of that version are installed, so the throwaway cluster is PostgreSQL {major}");
        }

        var version = await ToolVersionAsync(Path.Combine(bin, "postgres"), ct).ConfigureAwait(false);
        return new Scratch(this, $"a throwaway PostgreSQL {major} cluster on 127.0.0.1:{port}", postgres, "127.0.0.1", port, DrillSuperuser, password,
            $"?sslmode=disable&tablespaces=skip&password_file={Uri.EscapeDataString(restorePassword)}",
            databases, databases.ToDictionary(d => d.Value, d => d.Value, StringComparer.Ordinal), drill.Smoke, includeGlobals: true,
            new Dictionary<string, string>
            {
                ["postgres"] = $"{Path.Combine(bin, "postgres")} {version}",
                ["pg_restore"] = $"{tools.PgRestore} {tools.Version}",
            }, drop: []);
    }

    private async Task<IDrillScratch> OpenOnServerAsync(DrillScope scope, PostgresDrillOptions drill, string server, Dictionary<string, string> databases,
        PostgresTools tools, CancellationToken ct)
    {
        var d = ServerDestination.Parse(server, new Dictionary<string, int>(StringComparer.Ordinal) { ["postgresql"] = 5432, ["postgres"] = 5432 },
            "postgresql://user@host:5432", options.User);
        var scratchNames = new Dictionary<string, string>(StringComparer.Ordinal);
        var i = 0;
        await using (var admin = await OnServer(d).ConnectAsync("postgres", ct).ConfigureAwait(false))
        {
            foreach (var (_, database) in databases)
            {
                var scratch = $"backstop_drill_{scope.Token}_{i++}";
                if (await ScalarAsync(admin, "SELECT count(*) FROM pg_database WHERE datname = $1", ct, scratch).ConfigureAwait(false) is long n && n > 0)
                {
                    throw new BackupException($"source '{name}': the drill server {d.Host}:{d.Port} already has a database named {scratch}; drill again");
                }

                scratchNames[database] = scratch;
                scope.Leave($"db:{scratch}"); // before it exists: a drill killed from here on has it dropped by the next one
            }
        }

        if (scope.Artifacts.Any(a => a.Name == GlobalsArtifact))
        {
            scope.Note($"globals.sql (roles) is not applied to the drill server {d.Host}:{d.Port}: roles are shared by every database there; " +
                       "a throwaway cluster (no drill.server) restores them too");
        }

        var version = await ToolVersionAsync(tools.PgRestore, ct).ConfigureAwait(false);
        return new Scratch(this, $"scratch databases backstop_drill_{scope.Token}_* on the drill server {d.Host}:{d.Port}", null, d.Host, d.Port, d.User,
            System.Environment.GetEnvironmentVariable("PGPASSWORD") is { Length: > 0 } pw ? pw : options.Password?.Resolve(), "?tablespaces=skip",
            databases, scratchNames, drill.Smoke, includeGlobals: false,
            new Dictionary<string, string> { ["pg_restore"] = $"{tools.PgRestore} {version}" }, drop: scratchNames.Values.ToList());
    }

    /// <summary>Drops a scratch database a killed drill left on the drill server.</summary>
    public async Task<string?> SweepAsync(string leftover, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leftover);
        var database = leftover[3..];
        if (!database.StartsWith("backstop_drill_", StringComparison.Ordinal))
        {
            return $"a killed drill of '{name}' recorded {database}, which is not a drill's scratch database; left alone";
        }

        var drill = DrillOptions?.Server ?? throw new BackupException($"source '{name}' has no drill.server any more; drop database {database} by hand");
        var d = ServerDestination.Parse(drill, new Dictionary<string, int>(StringComparer.Ordinal) { ["postgresql"] = 5432, ["postgres"] = 5432 },
            "postgresql://user@host:5432", options.User);
        await using var admin = await OnServer(d).ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
        await ScalarAsync(admin, await DropSqlAsync(admin, database, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        return null;
    }

    /// <summary>DROP DATABASE for a scratch database: WITH (FORCE) (closing what still uses it) on PostgreSQL 13 and later, which have it.</summary>
    private static async Task<string> DropSqlAsync(NpgsqlConnection admin, string database, CancellationToken ct)
    {
        var version = Convert.ToInt64(await ScalarAsync(admin, "SHOW server_version_num", ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
        return $"DROP DATABASE IF EXISTS \"{database}\"{(version >= 130000 ? " WITH (FORCE)" : "")}";
    }

    /// <summary>This source's settings pointed at the throwaway cluster or a drill server, with the password the restore uses there.</summary>
    private PostgresSource At(string host, int port, string user, string? password, bool throwaway) =>
        new(name, options with
        {
            Host = host, Port = port, User = user, Password = password is null ? null : new SecretRef(password, default),
            SslMode = throwaway ? "disable" : options.SslMode,
        });

    private PostgresSource OnServer(ServerDestination d) =>
        new(name, options with { Host = d.Host, Port = d.Port, User = d.User });

    /// <summary>
    /// The folder of the server binaries: <c>drill.bin</c>, else <c>/usr/lib/postgresql/MAJOR/bin</c> for the dump's
    /// major version, else the newest installed that is not older than it.
    /// </summary>
    private (string Bin, int Major) ServerBinaries(string? configured, int? dumpMajor, DrillScope scope)
    {
        static bool Has(string bin) => File.Exists(Path.Combine(bin, "initdb")) && File.Exists(Path.Combine(bin, "postgres"));
        if (configured is not null)
        {
            return Has(configured)
                ? (configured, int.TryParse(Path.GetFileName(Path.GetDirectoryName(configured)), NumberStyles.None, CultureInfo.InvariantCulture, out var m) ? m : dumpMajor ?? 0)
                : throw new BackupException($"source '{name}': drill.bin {configured} has no initdb and postgres; name the folder of the PostgreSQL server binaries");
        }

        var installed = Directory.Exists(PostgresTools.ClusterDir)
            ? Directory.GetDirectories(PostgresTools.ClusterDir)
                .Select(d => (Bin: Path.Combine(d, "bin"), Major: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1))
                .Where(d => d.Major > 0 && Has(d.Bin)).OrderBy(d => d.Major).ToList()
            : [];
        var exact = installed.FirstOrDefault(i => i.Major == dumpMajor);
        if (exact.Bin is not null)
        {
            return exact;
        }

        var newer = installed.LastOrDefault(i => dumpMajor is null || i.Major > dumpMajor);
        return newer.Bin is not null
            ? newer
            : throw new BackupException(
                $"source '{name}': the drill needs PostgreSQL server binaries (initdb, postgres){(dumpMajor is { } dm ? $" of version {dm} or newer" : "")} for its throwaway cluster, " +
                $"and {PostgresTools.ClusterDir}/*/bin has none: install postgresql{(dumpMajor is { } dm2 ? $"-{dm2}" : "")}, set drill.bin, or set drill.server to a server for scratch databases");
    }

    private static async Task<string> ToolVersionAsync(string tool, CancellationToken ct)
    {
        var output = new MemoryStream();
        await ChildProcess.RunToStreamAsync(tool, ["--version"], new Dictionary<string, string>(), "/", output, TimeSpan.FromSeconds(30), $"{tool} --version", ct)
            .ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(output.ToArray()).Trim();
    }

    /// <summary>The throwaway cluster, or the scratch databases on a drill server.</summary>
    private sealed class Scratch(PostgresSource source, string description, ScratchServer? server, string host, int port, string user, string? password, string query,
        Dictionary<string, string> databases, Dictionary<string, string> restoredAs, IReadOnlyList<SmokeQuery> smoke, bool includeGlobals,
        IReadOnlyDictionary<string, string> tools, List<string> drop) : IDrillScratch
    {
        public string Description => description;

        public IReadOnlyDictionary<string, string> Tools => tools;

        public IReadOnlyList<string> Order(IReadOnlyList<string> artifacts) =>
            [.. artifacts.Where(a => a == GlobalsArtifact && includeGlobals), .. artifacts.Where(a => a != GlobalsArtifact)];

        public string Destination(string artifact) =>
            $"postgresql://{Uri.EscapeDataString(user)}@{host}:{port.ToString(CultureInfo.InvariantCulture)}/" +
            Uri.EscapeDataString(artifact == GlobalsArtifact ? "postgres" : restoredAs[databases[artifact]]) + query;

        public async Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken)
        {
            var checks = new List<DrillCheck>();
            foreach (var q in smoke)
            {
                var database = q.Database ?? (databases.Count == 1 ? databases.Values.Single() : null);
                var label = $"smoke: {q.Sql}" + (q.Database is null ? "" : $" (in {q.Database})");
                if (database is null || !restoredAs.TryGetValue(database, out var restored))
                {
                    checks.Add(new DrillCheck(label, "a first column that is true or a non-zero number",
                        database is null
                            ? $"not run: the snapshot has {databases.Count} databases ({string.Join(", ", databases.Values)}); say which with {{database: NAME, sql: …}}"
                            : $"not run: the snapshot has no database {database}", false));
                    continue;
                }

                checks.Add(await SmokeAsync(label, restored, q.Sql, cancellationToken).ConfigureAwait(false));
            }

            return checks;
        }

        private async Task<DrillCheck> SmokeAsync(string label, string database, string sql, CancellationToken ct)
        {
            const string Expected = "a first column that is true or a non-zero number";
            try
            {
                await using var db = await source.At(host, port, user, password, throwaway: server is not null).ConnectAsync(database, ct).ConfigureAwait(false);
                await using var cmd = new NpgsqlCommand(sql, db) { CommandTimeout = 0 };
                await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (!await r.ReadAsync(ct).ConfigureAwait(false) || r.FieldCount == 0)
                {
                    return new DrillCheck(label, Expected, "no row", false);
                }

                var value = r.IsDBNull(0) ? null : r.GetValue(0);
                return new DrillCheck(label, Expected, value is null ? "NULL" : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "", Common.SmokeQueries.Passes(value));
            }
            catch (PostgresException e)
            {
                return new DrillCheck(label, Expected, $"error: {e.MessageText} ({e.SqlState})", false);
            }
        }

        public async ValueTask DisposeAsync()
        {
            var problems = new List<string>();
            if (drop.Count > 0)
            {
                try
                {
                    await using var admin = await source.At(host, port, user, password, throwaway: server is not null).ConnectAsync("postgres", CancellationToken.None).ConfigureAwait(false);
                    foreach (var database in drop)
                    {
                        await ScalarAsync(admin, await DropSqlAsync(admin, database, CancellationToken.None).ConfigureAwait(false), CancellationToken.None).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (e is BackupException or NpgsqlException)
                {
                    problems.Add($"the scratch databases {string.Join(", ", drop)} on {host}:{port} could not be dropped: {e.Message}; drop them by hand");
                }
            }

            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }

            if (problems.Count > 0)
            {
                throw new BackupException(string.Join("; ", problems));
            }
        }
    }
}
