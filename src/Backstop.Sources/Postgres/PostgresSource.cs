using Backstop.Core.Util;
using System.Net.Sockets;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Common;
using Npgsql;

namespace Backstop.Sources.Postgres;

public sealed record PostgresOptions(
    string Host,
    int Port,
    string User,
    SecretRef? Password,
    IReadOnlyList<string>? Databases,
    string? SslMode,
    bool ExactRows,
    IReadOnlyDictionary<string, string> Tools,
    TimeSpan Timeout)
{
    /// <summary><c>replication:</c> what <c>doctor</c> requires of the replicas.</summary>
    public Replication? Replication { get; init; }

    /// <summary><c>mode: physical</c>: base backups of the whole cluster (pg_basebackup) instead of a dump per database.</summary>
    public bool Physical { get; init; }
}

/// <summary>
/// A PostgreSQL server: one <c>&lt;db&gt;.dump</c> per database from <c>pg_dump -Fc -Z0</c> (Backstop compresses) and
/// <c>globals.sql</c> from <c>pg_dumpall --globals-only</c>. Facts from the server (tables, rows); each dump is
/// checked with <c>pg_restore --list</c> while it streams. The password only ever travels in the child's
/// environment.
/// </summary>
public sealed partial class PostgresSourceKind : SourceKind<PostgresOptions, PostgresDrillOptions>
{
    public override string Kind => "postgres";

    public override string Summary => "A PostgreSQL server: one `<db>.dump` per database (pg_dump -Fc) and `globals.sql`.";

    public override string RestoreTo => "postgresql://USER@HOST:PORT/DB";

    public override string? RestoreToExample => "postgresql://postgres@127.0.0.1:5432/shop_copy";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("mode", "physical", "dump: pg_dump of each database (and the globals); physical: a base backup of the whole cluster (pg_basebackup, with its manifest), for point-in-time recovery with the WAL (see wal)"),
        new("host", "db.internal", "The server's host name or address (or a Unix socket folder)"),
        new("port", "5432", "Its port"),
        new("user", "backup", "The role that dumps (pg_dump needs to read every table)"),
        new("password", "env:PGPASSWORD", "Its password; only ever in pg_dump's environment") { Default = "none (.pgpass, peer or trust)" },
        new("databases", "all", "mode: dump: the databases to dump: all (every one that takes connections, but template0), or a list") { Instead = "mode", Without = ["wal"] },
        new("sslmode", "prefer", "libpq's sslmode") { Type = "one of disable, allow, prefer, require, verify-ca, verify-full", Default = "libpq's (prefer)" },
        new("exact_rows", "true", "mode: dump: a dump's rows are always counted exactly from its own COPY data; false records the planner's estimate (rows_estimated) besides, and does not count a restored database row by row (very large databases)") { Instead = "mode", Without = ["wal"] },
        new("timeout", "6h", "The most a whole dump may take"),
        new("tools.pg_dump", "/usr/lib/postgresql/16/bin/pg_dump", "The pg_dump to use") { Default = "the newest installed, at least the server's major version" },
        new("tools.pg_dumpall", "/usr/lib/postgresql/16/bin/pg_dumpall", "The pg_dumpall to use (globals.sql)") { Default = "beside pg_dump" },
        new("tools.pg_restore", "/usr/lib/postgresql/16/bin/pg_restore", "The pg_restore that lists each dump while it streams") { Default = "beside pg_dump" },
        new("tools.pg_basebackup", "/usr/lib/postgresql/16/bin/pg_basebackup", "mode: physical: the pg_basebackup to use") { Default = "the newest installed, at least the server's major version" },
        new("tools.pg_receivewal", "/usr/lib/postgresql/16/bin/pg_receivewal", "wal: {receive: true}: the pg_receivewal serve runs") { Default = "the newest installed" },
        .. Replication.Keys,
        new("drill.server", "postgresql://drill@10.0.0.9:5432", "Restore into scratch databases on this server instead of a throwaway cluster") { Default = "a throwaway cluster (initdb)" },
        new("drill.password", "env:DRILL_PGPASSWORD", "The drill server user's password (the source's password never goes to a drill server)") { Default = "none (.pgpass, peer or trust)" },
        new("drill.bin", "/usr/lib/postgresql/16/bin", "The folder of initdb and postgres for the throwaway cluster") { Default = "/usr/lib/postgresql/MAJOR/bin of the dump's version" },
        new("drill.extensions", "[pgcrypto, hstore, postgis]",
            "The extensions a drill's superuser may create in the throwaway cluster before the dump is restored (their install scripts run as superuser; the dump itself is restored by a role that is not one)")
            { Default = "PostgreSQL's trusted contrib extensions (" + string.Join(", ", PostgresDrillOptions.TrustedExtensions) + ")" },
        .. SmokeQueries.Keys,
        new("drill.marker_database", "postgres",
            "mode: physical: serve writes a row into backstop_pitr_marker in this database every marker_every (the backup user creates the table, or is granted INSERT on it); a drill recovers to the position right after a random one and finds exactly the markers up to it") { Default = "none (drills recover to the end of the archive)" },
        new("drill.marker_every", "1m", "mode: physical: how often serve writes a marker (with archive_timeout, it also keeps a quiet server's RPO measured)"),
    ];

    public override IReadOnlyList<string> Facts { get; } = ["databases", "tables", "rows", "roles", "files", "bytes", "timeline", "start_lsn", "end_lsn"];

    public override IReadOnlyList<string> CountFacts { get; } = ["databases", "tables", "rows"];

    public override PostgresOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var databases = map.AllOrList("databases");
        if (databases is not null)
        {
            if (databases.Count == 0)
            {
                throw map.Error("databases", "name the databases to back up, or say 'all'");
            }

            foreach (var d in databases.Where(d => d.Length == 0 || d.Contains('\0', StringComparison.Ordinal)))
            {
                throw map.Error("databases", "a database name cannot be empty or hold a NUL character");
            }
        }

        var tools = new Dictionary<string, string>(StringComparer.Ordinal);
        if (map.Map("tools") is { } t)
        {
            foreach (var name in new[] { "pg_dump", "pg_dumpall", "pg_restore", "pg_basebackup", "pg_receivewal" })
            {
                if (t.PathValue(name) is { } p)
                {
                    tools[name] = p;
                }
            }

            t.EnsureAllKeysKnown("tools are pg_dump, pg_dumpall, pg_restore, pg_basebackup, pg_receivewal");
        }

        string[] sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];
        var sslMode = map.String("sslmode");
        if (sslMode is not null && !sslModes.Contains(sslMode, StringComparer.Ordinal))
        {
            throw map.Error("sslmode", $"'{sslMode}' is not one of: {string.Join(", ", sslModes)}");
        }
        var timeout = map.Timeout("timeout", TimeSpan.FromHours(6));
        var physical = map.EnumOr("mode", false, ("dump", false), ("physical", true));
        foreach (var dumpOnly in new[] { "databases", "exact_rows" }.Where(k => physical && map.Has(k)))
        {
            throw map.Error(dumpOnly, "applies to mode: dump; a physical backup takes the whole cluster, every database");
        }

        return new PostgresOptions(
            map.StringOr("host", "127.0.0.1"),
            map.IntOr("port", 5432, 1, 65535),
            map.StringOr("user", "postgres"),
            map.Secret("password"),
            databases,
            sslMode,
            Common.RowCounting.ExactRows(map),
            tools,
            timeout)
        {
            Replication = Replication.Parse(map),
            Physical = physical,
        };
    }

    public override bool KeepsArchive(object options) => options is PostgresOptions { Physical: true };

    public override bool CanKeepArchive => true;

    /// <summary>A base backup replays from its start LSN on its timeline and is consistent at its end LSN (its manifest's WAL range).</summary>
    public override ArchiveRange? BaseRange(IReadOnlyDictionary<string, long> facts) =>
        facts is not null && facts.TryGetValue("timeline", out var tli) && facts.TryGetValue("start_lsn", out var start) && facts.TryGetValue("end_lsn", out var end)
            ? new ArchiveRange(PostgresSource.TimelineFolder(tli), start, end)
            : null;

    public override IReadOnlyList<ArchiveStretch>? Lineage(IEnumerable<ArchiveFile> files) => PostgresSource.TimelineLineage(files);

    public override ISource Create(SourceDefinition definition, PostgresOptions options, PostgresDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new PostgresSource(definition.Name, options) { DrillOptions = drill, Archive = definition.Archive };
    }
}

internal sealed partial class PostgresSource(string name, PostgresOptions options) : ISource
{
    /// <summary>mode: physical: the source's wal: block (its RPO goal).</summary>
    internal Core.Config.ArchivePolicy? Archive { get; init; }

    internal const string GlobalsArtifact = "globals.sql";
    private PostgresTools? _tools;
    private int _serverMajor;

    private string Where => $"{options.Host}:{options.Port}";

    private string? _basebackup;

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        if (options.Physical)
        {
            return await PreflightPhysicalAsync(cancellationToken).ConfigureAwait(false);
        }

        // The tools and the server are checked at the same time.
        var tools = PostgresTools.ResolveAsync(name, options.Tools, cancellationToken);
        var connect = ConnectAsync("postgres", cancellationToken);
        try
        {
            _tools = await tools.ConfigureAwait(false);
        }
        catch
        {
            await Task.WhenAny(connect).ConfigureAwait(false);
            if (connect.IsCompletedSuccessfully)
            {
                await (await connect.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }

        await using var db = await connect.ConfigureAwait(false);
        _serverMajor = (int)(Convert.ToInt64(await ScalarAsync(db, "SHOW server_version_num", cancellationToken).ConfigureAwait(false),
            System.Globalization.CultureInfo.InvariantCulture) / 10000);
        if (_tools.Major < _serverMajor)
        {
            throw new BackupException(
                $"source '{name}': the server at {Where} is PostgreSQL {_serverMajor}, newer than {_tools.PgDump} ({_tools.Version}); pg_dump must be at least the server's version: install postgresql-client-{_serverMajor} or set tools.pg_dump");
        }

        return new SourcePreflight(new Dictionary<string, string>
        {
            ["pg_dump"] = $"{_tools.PgDump} {_tools.Version}",
            ["postgresql-server"] = _serverMajor.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, 0);
    }

    /// <summary>
    /// Every database's dump, then <c>globals.sql</c>. The globals (the roles counted, then <c>pg_dumpall
    /// --globals-only</c> into a file of the snapshot's private staging folder) are taken while the first dump runs, so
    /// their fixed cost (a connection, a process) overlaps the dump's; a globals failure stops the dumps at once and is
    /// the error reported.
    /// </summary>
    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (options.Physical)
        {
            await CapturePhysicalAsync(sink, cancellationToken).ConfigureAwait(false);
            return;
        }

        var tools = _tools ?? throw new InvalidOperationException("preflight first");
        var env = Environment();
        var spool = Path.Combine(sink.StagingDirectory, $"globals-{Guid.NewGuid():N}.sql");
        using var capture = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var globals = Task.Run(() => SpoolGlobalsAsync(tools, env, spool, capture.Token), capture.Token);
        _ = globals.ContinueWith(_ => CancelQuietly(capture), CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            try
            {
                IReadOnlyList<string> databases;
                if (options.Databases is { } configured)
                {
                    databases = configured;
                }
                else
                {
                    await using var db = await ConnectAsync("postgres", capture.Token).ConfigureAwait(false);
                    databases = await ListAsync(db,
                        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname", capture.Token).ConfigureAwait(false);
                }

                foreach (var database in databases)
                {
                    await using var artifact = await sink.BeginArtifactAsync(SafeNames.Encode(database) + ".dump", capture.Token).ConfigureAwait(false);
                    var facts = await DumpAsync(tools, database, env, artifact.Content, capture.Token).ConfigureAwait(false);
                    await artifact.CompleteAsync(facts, capture.Token).ConfigureAwait(false);
                }
            }
            catch when (globals.IsFaulted)
            {
                await globals.ConfigureAwait(false); // the cause: the dumps were stopped because the globals failed
                throw;
            }
            catch
            {
                await capture.CancelAsync().ConfigureAwait(false);
                await Task.WhenAny(globals).ConfigureAwait(false);
                throw;
            }

            var roles = await globals.ConfigureAwait(false);
            await using var artifactOfGlobals = await sink.BeginArtifactAsync(GlobalsArtifact, cancellationToken).ConfigureAwait(false);
            await using (var spooled = new FileStream(spool, FileMode.Open, FileAccess.Read, FileShare.None, 1 << 16, FileOptions.SequentialScan))
            {
                await spooled.CopyToAsync(artifactOfGlobals.Content, cancellationToken).ConfigureAwait(false);
            }

            await artifactOfGlobals.CompleteAsync(new Dictionary<string, long> { ["roles"] = roles }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(spool);
        }
    }

    /// <summary>Stops the dumps; a capture already over (its source disposed) has nothing left to stop.</summary>
    private static void CancelQuietly(CancellationTokenSource capture)
    {
        try
        {
            capture.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>The roles counted, then <c>pg_dumpall --globals-only</c> written to <paramref name="spool"/> (created new, owner only).</summary>
    private async Task<long> SpoolGlobalsAsync(PostgresTools tools, Dictionary<string, string> env, string spool, CancellationToken ct)
    {
        long roles;
        await using (var db = await ConnectAsync("postgres", ct).ConfigureAwait(false))
        {
            roles = Convert.ToInt64(await ScalarAsync(db, "SELECT count(*) FROM pg_roles WHERE rolname !~ '^pg_'", ct).ConfigureAwait(false),
                System.Globalization.CultureInfo.InvariantCulture);
        }

        await using var output = new FileStream(spool, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        await ChildProcess.RunToStreamAsync(tools.PgDumpAll,
            ["--globals-only", "--no-password", "-d", Conninfo.Of(options.Host, options.Port, options.User, null)],
            env, "/", output, options.Timeout, $"source '{name}': pg_dumpall --globals-only at {Where}", ct).ConfigureAwait(false);
        return roles;
    }

    public IArtifactValidator? ValidatorFor(string artifactName) =>
        artifactName == GlobalsArtifact ? new GlobalsValidator()
        : artifactName == BaseArtifact && options.Physical ? new BaseBackupValidator()
        : new DumpValidator();

    public string RestoreRecipe(string artifactName, string storedFile) =>
        artifactName == BaseArtifact && options.Physical
            // The data folder, owned by the server's user, 0700; it starts once the WAL from its start to its end LSN is supplied.
            ? $"mkdir -p DEST && chmod 700 DEST && zstd -dc {storedFile} | tar -x -C DEST"
        : artifactName == GlobalsArtifact
            ? $"zstd -dc {storedFile} | psql -h HOST -p PORT -U USER -d postgres"
            // DB_CONNINFO is dbname='DB' quoted for libpq: a bare name holding '=' would be read as a connection string
            // (another server, with PGPASSWORD); inside a quoted value it is only ever a name.
            : $"createdb -h HOST -p PORT -U USER DB && zstd -dc {storedFile} | pg_restore -h HOST -p PORT -U USER -d DB_CONNINFO --no-owner --exit-on-error --single-transaction";

    private string Port => options.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The child's environment: the password, never argv.</summary>
    private Dictionary<string, string> Environment()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal) { ["PGCONNECT_TIMEOUT"] = "30" };
        if (options.Password is { } p)
        {
            env["PGPASSWORD"] = p.Resolve();
        }
        else
        {
            // No password configured: libpq's own variables, as Npgsql (preflight, counts) reads them too. Children do
            // not inherit secret-named variables, so they are handed on here, to pg_dump of this source only.
            foreach (var inherited in new[] { "PGPASSWORD", "PGPASSFILE" })
            {
                if (System.Environment.GetEnvironmentVariable(inherited) is { Length: > 0 } value)
                {
                    env[inherited] = value;
                }
            }
        }

        if (options.SslMode is { } ssl)
        {
            env["PGSSLMODE"] = ssl;
        }

        return env;
    }

    /// <summary>
    /// One database's dump and its facts. The rows are counted from the dump's own COPY data by its format check while
    /// it streams (<see cref="CustomDumpData"/>): exact, and no second pass over the tables on the server. Exact (the
    /// default): a REPEATABLE READ transaction exports its snapshot, pg_dump runs with <c>--snapshot</c> of it, and the
    /// tables are listed in that same transaction, so the dump's table of contents must hold exactly those. Estimated:
    /// the planner's figures besides, as rows_estimated.
    /// </summary>
    private async Task<Dictionary<string, long>> DumpAsync(PostgresTools tools, string database, Dictionary<string, string> env, Stream output,
        CancellationToken ct)
    {
        List<string> args = ["-Fc", "-Z0", "--no-password", "-d", Conninfo.Of(options.Host, options.Port, options.User, database)];
        var what = $"source '{name}': pg_dump of database {database} at {Where}";
        if (!options.ExactRows)
        {
            // The facts are read from the server while pg_dump runs: the dump does not wait for them.
            var estimated = Task.Run(() => FactsAsync(database, ct), ct); // never holds up pg_dump's start (Npgsql's open is partly synchronous)
            try
            {
                await ChildProcess.RunToStreamAsync(tools.PgDump, args, env, "/", output, options.Timeout, what, ct).ConfigureAwait(false);
            }
            finally
            {
                // Never leave the facts query running behind a failed dump; its own error, if any, comes second.
                await Task.WhenAny(estimated).ConfigureAwait(false);
            }

            return await estimated.ConfigureAwait(false);
        }

        await using var db = await ConnectAsync(database, ct).ConfigureAwait(false);
        await using var tx = await db.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct).ConfigureAwait(false);
        await ScalarAsync(db, "SET TRANSACTION READ ONLY", ct).ConfigureAwait(false);
        var snapshot = (string)(await ScalarAsync(db, "SELECT pg_export_snapshot()", ct).ConfigureAwait(false))!;
        args.Add("--snapshot=" + snapshot);
        using var dumping = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var dump = ChildProcess.RunToStreamAsync(tools.PgDump, args, env, "/", output, options.Timeout, what, dumping.Token);
        Dictionary<string, long> facts;
        try
        {
            facts = await CountAsync(db, RowCount.None, ct).ConfigureAwait(false); // the rows: from the dump itself
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            // A count that fails stops the dump at once (never hours later), and says why.
            await dumping.CancelAsync().ConfigureAwait(false);
            await Task.WhenAny(dump).ConfigureAwait(false);
            throw new BackupException($"source '{name}': counting the rows of database {database} at {Where} in the dump's snapshot failed: {e.Message}");
        }
        catch
        {
            await dumping.CancelAsync().ConfigureAwait(false);
            await Task.WhenAny(dump).ConfigureAwait(false);
            throw;
        }

        // The exporting transaction stays open until pg_dump is done with its snapshot.
        await dump.ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return facts;
    }

    private async Task<Dictionary<string, long>> FactsAsync(string database, CancellationToken ct)
    {
        await using var db = await ConnectAsync(database, ct).ConfigureAwait(false);
        return await CountAsync(db, options.ExactRows ? RowCount.Exact : RowCount.Estimated, ct).ConfigureAwait(false);
    }

    private enum RowCount
    {
        /// <summary>Tables only (a dump's rows are counted from its COPY data).</summary>
        None,

        /// <summary>Every table's rows, counted (a restored database's, compared with the snapshot's).</summary>
        Exact,

        /// <summary>The planner's estimate, recorded as rows_estimated, never as rows.</summary>
        Estimated,
    }

    /// <summary>Tables, and rows counted (exact), the planner's estimate, or none.</summary>
    private static async Task<Dictionary<string, long>> CountAsync(NpgsqlConnection db, RowCount rowCount, CancellationToken ct)
    {
        const string userTables = """
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
            """;
        var tables = await ListAsync(db, $"SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) {userTables} ORDER BY 1", ct).ConfigureAwait(false);
        if (rowCount == RowCount.None)
        {
            return new Dictionary<string, long> { ["databases"] = 1, ["tables"] = tables.Count };
        }

        if (rowCount == RowCount.Estimated)
        {
            var estimate = Convert.ToInt64(await ScalarAsync(db, $"SELECT COALESCE(SUM(GREATEST(c.reltuples, 0)), 0)::bigint {userTables} AND c.relkind = 'r'", ct)
                .ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            return new Dictionary<string, long> { ["databases"] = 1, ["tables"] = tables.Count, ["rows_estimated"] = estimate };
        }

        long rows = 0;
        foreach (var t in tables)
        {
            // Partitioned parents count their partitions' rows; ONLY keeps each row counted once.
            rows += Convert.ToInt64(await ScalarAsync(db, $"SELECT count(*) FROM ONLY {t}", ct).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
        }

        return new Dictionary<string, long> { ["databases"] = 1, ["tables"] = tables.Count, ["rows"] = rows };
    }

    private async Task<NpgsqlConnection> ConnectAsync(string database, CancellationToken ct)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = options.Host,
            Port = options.Port,
            Username = options.User,
            Database = database,
            Timeout = 15,
            Pooling = false,
            ApplicationName = "backstop",
        };
        if (options.Password is { } p)
        {
            builder.Password = p.Resolve();
        }

        if (options.SslMode is { } ssl)
        {
            builder.SslMode = Enum.Parse<SslMode>(ssl.Replace("-", "", StringComparison.Ordinal), ignoreCase: true);
        }

        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            return connection;
        }
        catch (Exception e) when (e is NpgsqlException or SocketException or TimeoutException)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw new BackupException($"source '{name}': {Explain(e, database)}");
        }
    }

    private string Explain(Exception e, string database)
    {
        if (e is PostgresException pg)
        {
            return pg.SqlState switch
            {
                "28P01" => $"password authentication failed for user '{options.User}' at {Where}; check 'password'",
                "28000" => $"the server at {Where} refused user '{options.User}' (pg_hba.conf): {pg.MessageText}",
                "3D000" => $"database '{database}' does not exist at {Where}",
                "57P03" => $"the server at {Where} is starting up or shutting down; try again",
                _ => $"PostgreSQL at {Where}: {pg.MessageText} ({pg.SqlState})",
            };
        }

        var socket = e as SocketException ?? e.InnerException as SocketException;
        return socket?.SocketErrorCode switch
        {
            SocketError.ConnectionRefused => $"connection to PostgreSQL at {Where} refused: is the server running and listening there?",
            SocketError.HostNotFound or SocketError.NoData => $"host '{options.Host}' not found (DNS); check 'host'",
            SocketError.TimedOut => $"connection to PostgreSQL at {Where} timed out: check the address and the firewall",
            _ => $"cannot connect to PostgreSQL at {Where}: {e.Message}",
        };
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection db, string sql, CancellationToken ct, params object[] parameters)
    {
        // No command timeout of its own (Npgsql's default, 30 s, would fail a count(*) over a large table); Ctrl-C and
        // SIGTERM stop it through the token.
        await using var cmd = new NpgsqlCommand(sql, db) { CommandTimeout = 0 };
        foreach (var p in parameters)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
    }

    private static async Task<List<string>> ListAsync(NpgsqlConnection db, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, db);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<string>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(r.GetString(0));
        }

        return list;
    }
}
