using System.Globalization;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Scratch;
using Npgsql;

namespace Backstop.Sources.Postgres;

/// <summary>A smoke query: it must run and return a first row whose first column is true or a non-zero number.</summary>
public sealed record SmokeQuery(string? Database, string Sql);

/// <summary>
/// <c>drill:</c> for postgres: <c>server</c> (a drill server, <c>postgresql://user@host:port</c>, where scratch
/// databases are made; by default a throwaway cluster) and its <c>password</c>, <c>smoke</c> queries, <c>bin</c> (the
/// folder of the server binaries, default <c>/usr/lib/postgresql/MAJOR/bin</c> for the dump's major version), and
/// <c>extensions</c>: those the throwaway cluster's superuser may create for a dump (default: the trusted contrib ones).
/// </summary>
public sealed record PostgresDrillOptions(string? Server, IReadOnlyList<SmokeQuery> Smoke, string? Bin)
{
    /// <summary>PostgreSQL's contrib extensions marked trusted (any database owner may create them): the default allow-list.</summary>
    public static IReadOnlyList<string> TrustedExtensions { get; } =
    [
        "plpgsql", "btree_gin", "btree_gist", "citext", "cube", "dict_int", "fuzzystrmatch", "hstore", "intarray", "isn", "lo", "ltree",
        "pg_trgm", "pgcrypto", "seg", "tablefunc", "tcn", "tsm_system_rows", "tsm_system_time", "unaccent", "uuid-ossp",
    ];

    public IReadOnlyList<string> Extensions { get; init; } = TrustedExtensions;

    public Core.Config.SecretRef? Password { get; init; }

    /// <summary>mode: physical: the database serve writes <c>backstop_pitr_marker</c> rows into (null: none), and how often.</summary>
    public string? MarkerDatabase { get; init; }

    public TimeSpan MarkerEvery { get; init; } = TimeSpan.FromMinutes(1);
}

public sealed partial class PostgresSourceKind
{
    public override PostgresDrillOptions? ParseDrill(ConfigMap map)
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

        return new PostgresDrillOptions(server, SmokeQueries.Parse(map).Select(q => new SmokeQuery(q.Database, q.Sql)).ToList(), map.PathValue("bin"))
        {
            Extensions = map.StringList("extensions") ?? PostgresDrillOptions.TrustedExtensions,
            Password = map.Secret("password"),
            MarkerDatabase = map.String("marker_database"),
            MarkerEvery = map.DurationOr("marker_every", TimeSpan.FromMinutes(1)) is { } every && every >= TimeSpan.FromSeconds(1) ? every
                : throw map.Error("marker_every", "must be at least 1s"),
        };
    }
}

/// <summary>
/// A PostgreSQL drill. By default a throwaway cluster: <c>initdb</c> and <c>postgres</c> from the server binaries of
/// the dump's major version (read from the dump's header), on a free loopback port, its data in the drill's scratch
/// folder, run as the dedicated OS user <c>backstop-drill</c> when Backstop runs as root. What is restored is hostile
/// until proven otherwise (a role that could create objects in a backed-up database could have left a CHECK or index
/// function that runs <c>COPY … TO PROGRAM</c> for a superuser), so nothing of it runs with privileges: globals.sql is
/// applied by the superuser as bare roles only (no SUPERUSER, REPLICATION, BYPASSRLS, CREATEROLE, password or
/// per-role settings, nothing but CREATE and ALTER ROLE); each database is created by the superuser, owned by
/// <c>backstop_owner</c>, a role that is not a superuser, with the extensions its dump needs created first from an
/// allow-list (<c>drill.extensions</c>); then the dump is restored by <c>backstop_owner</c> itself (pg_restore -L
/// leaves out what only a superuser may run), which also counts the rows and runs the smoke queries. With
/// <c>drill.server</c>, each database is restored into a scratch database with a random name on that server, as
/// <c>drill.server</c>'s user with <c>drill.password</c>, and dropped afterwards (globals are not applied to a shared
/// server). Tables and rows are compared with the snapshot's, then the smoke queries run.
/// </summary>
internal sealed class PostgresDrill(PostgresServer pg, PostgresDrillOptions? drillOptions, PostgresRecoveryDrill recovery) : IDrillable
{
    public string? ThrowawayServer => drillOptions?.Server is null ? "a throwaway PostgreSQL cluster" : null;

    /// <summary>The throwaway cluster's bootstrap superuser (not a name a dump's globals would create).</summary>
    private const string DrillSuperuser = "backstop_drill";

    /// <summary>The throwaway cluster's role that owns the scratch databases and restores into them: not a superuser.</summary>
    internal const string DrillOwner = "backstop_owner";

    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var drill = drillOptions ?? new PostgresDrillOptions(null, [], null);
        if (pg.Options.Physical)
        {
            return await recovery.OpenAsync(scope, drill, cancellationToken).ConfigureAwait(false);
        }

        var tools = await PostgresTools.ResolveAsync(pg.Source, pg.Options.Tools, cancellationToken).ConfigureAwait(false);
        var databases = scope.Artifacts.Where(a => a.Name != PostgresSource.GlobalsArtifact)
            .ToDictionary(a => a.Name, a => Uri.UnescapeDataString(a.Name[..^".dump".Length]), StringComparer.Ordinal);
        return drill.Server is { } server
            ? await OpenOnServerAsync(scope, drill, server, databases, tools, cancellationToken).ConfigureAwait(false)
            : await OpenClusterAsync(scope, drill, databases, tools, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The table of contents of a dump, read from the first bytes of a copy (more of them until it is whole), or null
    /// when the artifact is not a custom-format dump this reads.
    /// </summary>
    private async Task<DumpToc?> PeekTocAsync(DrillScope scope, string artifact, CancellationToken ct)
    {
        for (var bytes = 1 << 20; ; bytes = (int)Math.Min((long)bytes * 4, CustomDumpHeader.MaxLength))
        {
            var head = await scope.PeekAsync(artifact, bytes, ct).ConfigureAwait(false);
            switch (CustomDumpHeader.TryRead(head, out var toc))
            {
                case CustomDumpHeader.Outcome.Read:
                    return toc;
                case CustomDumpHeader.Outcome.NeedMore when head.Length == bytes && bytes < CustomDumpHeader.MaxLength:
                    continue;
                case CustomDumpHeader.Outcome.NeedMore when head.Length == bytes:
                    throw new BackupException($"source '{pg.Source}': the table of contents of {artifact} is larger than {CustomDumpHeader.MaxLength >> 20} MiB");
                default:
                    return null; // pg_restore says what is wrong with it
            }
        }
    }

    private async Task<IDrillScratch> OpenClusterAsync(DrillScope scope, PostgresDrillOptions drill, Dictionary<string, string> databases, PostgresTools tools,
        CancellationToken ct)
    {
        var tocs = new Dictionary<string, DumpToc?>(StringComparer.Ordinal);
        foreach (var artifact in databases.Keys)
        {
            tocs[artifact] = await PeekTocAsync(scope, artifact, ct).ConfigureAwait(false);
        }

        // Refused before anything starts: an extension outside the allow-list would have its install script run as superuser.
        var refused = tocs.Values.OfType<DumpToc>().SelectMany(t => t.Extensions).Select(e => e.Name)
            .Where(e => !drill.Extensions.Contains(e, StringComparer.Ordinal)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (refused.Count > 0)
        {
            throw new BackupException(
                $"source '{pg.Source}': the dumps need the extension(s) {string.Join(", ", refused)}, which drill.extensions does not allow " +
                $"({string.Join(", ", drill.Extensions)}); the drill's superuser runs an extension's install script, so add one to drill.extensions only if you trust it");
        }

        var dumpMajor = tocs.Values.OfType<DumpToc>().Select(t => t.ServerMajor).FirstOrDefault(m => m is not null);
        var (bin, major) = PostgresTools.ServerBinaries(pg.Source, drill.Bin, dumpMajor);
        var user = await ScratchServer.DrillUserAsync(ct).ConfigureAwait(false);
        var root = ScratchFolders.ReachableBy(scope, user, "postgres");
        var data = Path.Combine(root, "data");
        var run = user is { } u ? (Program: ChildProcess.ResolveTool("setpriv"), Prefix: new[] { $"--reuid={u.Uid}", $"--regid={u.Gid}", "--clear-groups", "--" })
            : (Program: (string?)null, Prefix: Array.Empty<string>());
        var initdb = Path.Combine(bin, "initdb");
        // The cluster listens on loopback, where every local user can reach it while the drill runs: its superuser and
        // the owner role have random passwords of their own. initdb reads the superuser's from a file of the server's
        // user; the restores read theirs from files of ours, named in the destination (password_file=), so they never
        // travel in argv or the environment of a child that does not need them.
        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        var ownerPassword = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        var initArgs = new List<string> { "-D", data, "-U", DrillSuperuser, "-E", "UTF8", "--locale=C", "--no-sync", "--auth=scram-sha-256" };
        var pwfile = Path.Combine(root, "pwfile");
        ScratchFolders.WriteSecret(pwfile, password);
        ScratchServer.GiveTo(user, pwfile);
        initArgs.Add("--pwfile=" + pwfile);
        var superPassword = Path.Combine(scope.Folder, "superuser-password");
        ScratchFolders.WriteSecret(superPassword, password);
        var restorePassword = Path.Combine(scope.Folder, "owner-password");
        ScratchFolders.WriteSecret(restorePassword, ownerPassword);

        var log = new MemoryStream();
        try
        {
            await ChildProcess.RunCleanToStreamAsync(run.Program ?? initdb, run.Program is null ? initArgs : [.. run.Prefix, initdb, .. initArgs],
                new Dictionary<string, string>(), "/", log, TimeSpan.FromMinutes(10), $"initdb of the drill's throwaway cluster{(user is { } v ? $" (as {v.Name})" : "")}",
                ct).ConfigureAwait(false);
        }
        catch (BackupException e)
        {
            throw new BackupException($"source '{pg.Source}': {e.Message}");
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
                    await using var db = await pg.At("127.0.0.1", port, DrillSuperuser, password, throwaway: true).ConnectAsync("postgres", c).ConfigureAwait(false);
                    return true;
                }
                catch (Exception e) when (e is BackupException or NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
                {
                    return false; // not listening yet, or starting up (57P03)
                }
            }, TimeSpan.FromMinutes(2), ct, stopSignal: 2).ConfigureAwait(false);
        try
        {
            await PrepareOwnerAsync(port, password, ownerPassword, databases, tocs, ct).ConfigureAwait(false);
        }
        catch
        {
            await postgres.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        if (dumpMajor is { } m && m != major)
        {
            scope.Note($"the dumps come from PostgreSQL {m}; no server binaries of that version are installed, so the throwaway cluster is PostgreSQL {major}");
        }

        if (user is null)
        {
            scope.Note("the throwaway cluster runs as Backstop's own OS user (Backstop is not root): only the owner role, which is not a superuser, stands between a restored function and that user's files");
        }

        var version = await ScratchServerDrill.VersionAsync(Path.Combine(bin, "postgres"), ct).ConfigureAwait(false);
        var cluster = new Login("127.0.0.1", port, DrillOwner, ownerPassword, $"?sslmode=disable&tablespaces=skip&password_file={Uri.EscapeDataString(restorePassword)}");
        return new Scratch(pg, $"a throwaway PostgreSQL {major} cluster on 127.0.0.1:{port} (restored by {DrillOwner}, not a superuser)", postgres, cluster,
            cluster with { User = DrillSuperuser, Password = password, Query = $"?sslmode=disable&tablespaces=skip&roles=unprivileged&password_file={Uri.EscapeDataString(superPassword)}" },
            databases, databases.ToDictionary(d => d.Value, d => d.Value, StringComparer.Ordinal), drill.Smoke,
            new Dictionary<string, string>
            {
                ["postgres"] = $"{Path.Combine(bin, "postgres")} {version}",
                ["pg_restore"] = $"{tools.PgRestore} {tools.Version}",
            }, drop: []);
    }

    /// <summary>
    /// As the throwaway cluster's superuser: the owner role, each database owned by it, and the extensions each dump
    /// needs (already checked against the allow-list) in the schema the dump had them in.
    /// </summary>
    private async Task PrepareOwnerAsync(int port, string password, string ownerPassword, Dictionary<string, string> databases,
        Dictionary<string, DumpToc?> tocs, CancellationToken ct)
    {
        var superuser = pg.At("127.0.0.1", port, DrillSuperuser, password, throwaway: true);
        await using (var admin = await superuser.ConnectAsync("postgres", ct).ConfigureAwait(false))
        {
            await PostgresServer.ScalarAsync(admin, $"CREATE ROLE {DrillOwner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS PASSWORD '{ownerPassword}'", ct)
                .ConfigureAwait(false);
            foreach (var database in databases.Values.Distinct(StringComparer.Ordinal))
            {
                var exists = await PostgresServer.ScalarAsync(admin, "SELECT count(*) FROM pg_database WHERE datname = $1", ct, database).ConfigureAwait(false) is long n && n > 0;
                await PostgresServer.ScalarAsync(admin, exists ? $"ALTER DATABASE {Ident(database)} OWNER TO {DrillOwner}" : $"CREATE DATABASE {Ident(database)} OWNER {DrillOwner}", ct)
                    .ConfigureAwait(false);
            }
        }

        foreach (var (artifact, database) in databases)
        {
            if (tocs[artifact] is not { Extensions.Count: > 0 } toc)
            {
                continue;
            }

            await using var db = await superuser.ConnectAsync(database, ct).ConfigureAwait(false);
            foreach (var (extension, schema) in toc.Extensions)
            {
                var inSchema = "";
                if (schema is { Length: > 0 } s && s != "pg_catalog")
                {
                    await PostgresServer.ScalarAsync(db, $"CREATE SCHEMA IF NOT EXISTS {Ident(s)} AUTHORIZATION {DrillOwner}", ct).ConfigureAwait(false);
                    inSchema = " SCHEMA " + Ident(s);
                }

                try
                {
                    await PostgresServer.ScalarAsync(db, $"CREATE EXTENSION IF NOT EXISTS {Ident(extension)}{inSchema}", ct).ConfigureAwait(false);
                }
                catch (PostgresException e)
                {
                    throw new BackupException($"source '{pg.Source}': the throwaway cluster cannot create the extension {extension} that {artifact} needs: {e.MessageText}; " +
                                              "install the package that provides it on this host (or set drill.server)");
                }
            }
        }
    }

    /// <summary>An identifier quoted as PostgreSQL's quote_ident always may: in double quotes, inner ones doubled.</summary>
    internal static string Ident(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private async Task<IDrillScratch> OpenOnServerAsync(DrillScope scope, PostgresDrillOptions drill, string server, Dictionary<string, string> databases,
        PostgresTools tools, CancellationToken ct)
    {
        var d = ServerDestination.Parse(server, new Dictionary<string, int>(StringComparer.Ordinal) { ["postgresql"] = 5432, ["postgres"] = 5432 },
            "postgresql://user@host:5432", pg.Options.User);
        var scratchNames = new Dictionary<string, string>(StringComparer.Ordinal);
        var i = 0;
        await using (var admin = await pg.OnServer(d, drill.Password).ConnectAsync("postgres", ct).ConfigureAwait(false))
        {
            if (await PostgresServer.ScalarAsync(admin, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", ct).ConfigureAwait(false) is true)
            {
                scope.Note($"the drill server's user {d.User} is a superuser: a function in a restored dump runs with its rights there; " +
                           "give drill.server a role with CREATEDB and nothing more");
            }

            foreach (var (_, database) in databases)
            {
                var scratch = $"backstop_drill_{scope.Token}_{i++}";
                if (await PostgresServer.ScalarAsync(admin, "SELECT count(*) FROM pg_database WHERE datname = $1", ct, scratch).ConfigureAwait(false) is long n && n > 0)
                {
                    throw new BackupException($"source '{pg.Source}': the drill server {d.Host}:{d.Port} already has a database named {scratch}; drill again");
                }

                scratchNames[database] = scratch;
                scope.Leave($"db:{scratch}"); // before it exists: a drill killed from here on has it dropped by the next one
            }
        }

        if (scope.Artifacts.Any(a => a.Name == PostgresSource.GlobalsArtifact))
        {
            scope.Note($"globals.sql (roles) is not applied to the drill server {d.Host}:{d.Port}: roles are shared by every database there; " +
                       "a throwaway cluster (no drill.server) restores them too");
        }

        // drill.password, never the source's: it goes to the drill server only, from a file the restore reads (empty: none).
        var password = drill.Password?.Resolve();
        var passwordFile = Path.Combine(scope.Folder, "server-password");
        ScratchFolders.WriteSecret(passwordFile, password ?? "");
        var version = await ScratchServerDrill.VersionAsync(tools.PgRestore, ct).ConfigureAwait(false);
        var login = new Login(d.Host, d.Port, d.User, password, $"?tablespaces=skip&password_file={Uri.EscapeDataString(passwordFile)}");
        return new Scratch(pg, $"scratch databases backstop_drill_{scope.Token}_* on the drill server {d.Host}:{d.Port}", null, login, null,
            databases, scratchNames, drill.Smoke,
            new Dictionary<string, string> { ["pg_restore"] = $"{tools.PgRestore} {version}" }, drop: scratchNames.Values.ToList());
    }

    /// <summary>Drops a scratch database a killed drill left on the drill server.</summary>
    public async Task<string?> SweepAsync(string leftover, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leftover);
        if (ScratchNames.ScratchDatabase(leftover) is not { } database)
        {
            return ScratchNames.NotOurs(pg.Source, leftover);
        }

        var drill = drillOptions is { Server: { } server } o ? (Server: server, Options: o)
            : throw new BackupException($"source '{pg.Source}' has no drill.server any more; drop database {database} by hand");
        var d = ServerDestination.Parse(drill.Server, new Dictionary<string, int>(StringComparer.Ordinal) { ["postgresql"] = 5432, ["postgres"] = 5432 },
            "postgresql://user@host:5432", pg.Options.User);
        await using var admin = await pg.OnServer(d, drill.Options.Password).ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
        await PostgresServer.ScalarAsync(admin, await DropSqlAsync(admin, database, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        return null;
    }

    /// <summary>DROP DATABASE for a scratch database: WITH (FORCE) (closing what still uses it) on PostgreSQL 13 and later, which have it.</summary>
    private static async Task<string> DropSqlAsync(NpgsqlConnection admin, string database, CancellationToken ct)
    {
        var version = Convert.ToInt64(await PostgresServer.ScalarAsync(admin, "SHOW server_version_num", ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
        return $"DROP DATABASE IF EXISTS \"{database}\"{(version >= 130000 ? " WITH (FORCE)" : "")}";
    }

    /// <summary>A role on the scratch server, with the destination query the restore reads its password file from.</summary>
    private sealed record Login(string Host, int Port, string User, string? Password, string Query)
    {
        public string Destination(string database) =>
            $"postgresql://{Uri.EscapeDataString(User)}@{Host}:{Port.ToString(CultureInfo.InvariantCulture)}/{Uri.EscapeDataString(database)}{Query}";
    }

    /// <summary>
    /// The throwaway cluster, or the scratch databases on a drill server. <paramref name="restorer"/> restores the dumps,
    /// counts them and runs the smoke queries; <paramref name="globals"/> (the throwaway cluster's superuser, bare roles
    /// only) applies globals.sql, or is null where globals are not applied.
    /// </summary>
    private sealed class Scratch(PostgresServer source, string description, ScratchServer? server, Login restorer, Login? globals,
        Dictionary<string, string> databases, Dictionary<string, string> restoredAs, IReadOnlyList<SmokeQuery> smoke,
        IReadOnlyDictionary<string, string> tools, List<string> drop) : IDrillScratch
    {
        public string Description => description;

        public IReadOnlyDictionary<string, string> Tools => tools;

        public IReadOnlyList<string> Order(IReadOnlyList<string> artifacts) =>
            [.. artifacts.Where(a => a == PostgresSource.GlobalsArtifact && globals is not null), .. artifacts.Where(a => a != PostgresSource.GlobalsArtifact)];

        public string Destination(string artifact) =>
            artifact == PostgresSource.GlobalsArtifact ? globals!.Destination("postgres") : restorer.Destination(restoredAs[databases[artifact]]);
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
                await using var db = await source.At(restorer.Host, restorer.Port, restorer.User, restorer.Password, throwaway: server is not null)
                    .ConnectAsync(database, ct).ConfigureAwait(false);
                await using var cmd = new NpgsqlCommand(sql, db) { CommandTimeout = 0 };
                await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (!await r.ReadAsync(ct).ConfigureAwait(false) || r.FieldCount == 0)
                {
                    return new DrillCheck(label, Expected, "no row", false);
                }

                var value = r.IsDBNull(0) ? null : r.GetValue(0);
                return new DrillCheck(label, Expected, value is null ? "NULL" : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "", SmokeQueries.Passes(value));
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
                    await using var admin = await source.At(restorer.Host, restorer.Port, restorer.User, restorer.Password, throwaway: server is not null)
                        .ConnectAsync("postgres", CancellationToken.None).ConfigureAwait(false);
                    foreach (var database in drop)
                    {
                        await PostgresServer.ScalarAsync(admin, await DropSqlAsync(admin, database, CancellationToken.None).ConfigureAwait(false), CancellationToken.None).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (e is BackupException or NpgsqlException)
                {
                    problems.Add($"the scratch databases {string.Join(", ", drop)} on {restorer.Host}:{restorer.Port} could not be dropped: {e.Message}; drop them by hand");
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
