using Backstop.Core.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Databases;
using Backstop.Sources.Processes;
using Backstop.Sources.Scratch;
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

    /// <summary>Keys of a logical dump that a physical backup (the whole cluster) refuses.</summary>
    private static readonly string[] DumpOnlyKeys = ["databases", "exact_rows"];

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
        foreach (var dumpOnly in DumpOnlyKeys.Where(k => physical && map.Has(k)))
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
            RowCounting.ExactRows(map),
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
            ? new ArchiveRange(PostgresPhysical.TimelineFolder(tli), start, end)
            : null;

    public override IReadOnlyList<ArchiveStretch>? Lineage(IEnumerable<ArchiveFile> files) => PostgresPhysical.TimelineLineage(files);

    public override ISource Create(SourceDefinition definition, PostgresOptions options, PostgresDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var pg = new PostgresServer(definition.Name, options);
        var restore = new PostgresRestore(pg);
        var recovery = new PostgresRecoveryDrill(pg, drill);
        var receive = new PostgresReceive(pg);
        return new PostgresSource(pg, new PostgresPhysical(pg), restore, new PostgresDrill(pg, drill, recovery), new PostgresHealth(pg, definition.Archive, receive), receive, recovery);
    }
}

/// <summary>
/// A postgres source: the dumps (or, in mode: physical, the base backup its <see cref="PostgresPhysical"/> part takes),
/// their format checks and stock recipes; and its parts for the rest — restore, drill, recovery markers, health and WAL
/// receiving — each a type of its own over one <see cref="PostgresServer"/>.
/// </summary>
internal sealed class PostgresSource(PostgresServer pg, PostgresPhysical physical, PostgresRestore restore, PostgresDrill drill, PostgresHealth health,
    PostgresReceive receive, PostgresRecoveryDrill recovery) : ISource
{
    public T? Capability<T>() where T : class =>
        restore as T ?? drill as T ?? health as T ?? physical as T ?? receive as T ?? recovery as T ?? this as T;

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination) => restore.RecipePlaces(destination);

    internal const string GlobalsArtifact = "globals.sql";
    private PostgresTools? _tools;
    private int _serverMajor;

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        if (pg.Options.Physical)
        {
            return await physical.PreflightAsync(cancellationToken).ConfigureAwait(false);
        }

        // The tools and the server are checked at the same time.
        var tools = PostgresTools.ResolveAsync(pg.Source, pg.Options.Tools, cancellationToken);
        var connect = pg.ConnectAsync("postgres", cancellationToken);
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
        _serverMajor = (int)(Convert.ToInt64(await PostgresServer.ScalarAsync(db, "SHOW server_version_num", cancellationToken).ConfigureAwait(false),
            System.Globalization.CultureInfo.InvariantCulture) / 10000);
        if (_tools.Major < _serverMajor)
        {
            throw new BackupException(
                $"source '{pg.Source}': the server at {pg.Where} is PostgreSQL {_serverMajor}, newer than {_tools.PgDump} ({_tools.Version}); pg_dump must be at least the server's version: install postgresql-client-{_serverMajor} or set tools.pg_dump");
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
        if (pg.Options.Physical)
        {
            await physical.CaptureAsync(sink, cancellationToken).ConfigureAwait(false);
            return;
        }

        var tools = _tools ?? throw new InvalidOperationException("preflight first");
        var env = pg.Environment();
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
                if (pg.Options.Databases is { } configured)
                {
                    databases = configured;
                }
                else
                {
                    await using var db = await pg.ConnectAsync("postgres", capture.Token).ConfigureAwait(false);
                    databases = await PostgresServer.ListAsync(db,
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
        await using (var db = await pg.ConnectAsync("postgres", ct).ConfigureAwait(false))
        {
            roles = Convert.ToInt64(await PostgresServer.ScalarAsync(db, "SELECT count(*) FROM pg_roles WHERE rolname !~ '^pg_'", ct).ConfigureAwait(false),
                System.Globalization.CultureInfo.InvariantCulture);
        }

        await using var output = new FileStream(spool, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        await ChildProcess.RunToStreamAsync(tools.PgDumpAll,
            ["--globals-only", "--no-password", "-d", Conninfo.Of(pg.Options.Host, pg.Options.Port, pg.Options.User, null)],
            env, "/", output, pg.Options.Timeout, $"source '{pg.Source}': pg_dumpall --globals-only at {pg.Where}", ct).ConfigureAwait(false);
        return roles;
    }

    public IArtifactValidator? ValidatorFor(string artifactName) =>
        artifactName == GlobalsArtifact ? new GlobalsValidator()
        : artifactName == PostgresPhysical.BaseArtifact && pg.Options.Physical ? new BaseBackupValidator()
        : new DumpValidator();

    public string RestoreRecipe(string artifactName, string storedFile) =>
        artifactName == PostgresPhysical.BaseArtifact && pg.Options.Physical
            // The data folder, owned by the server's user, 0700; it starts once the WAL from its start to its end LSN is supplied.
            ? $"mkdir -p DEST && chmod 700 DEST && zstd -dc {storedFile} | tar -x -C DEST"
        : artifactName == GlobalsArtifact
            ? $"zstd -dc {storedFile} | psql -h HOST -p PORT -U USER -d postgres"
            // DB_CONNINFO is dbname='DB' quoted for libpq: a bare name holding '=' would be read as a connection string
            // (another server, with PGPASSWORD); inside a quoted value it is only ever a name.
            : $"createdb -h HOST -p PORT -U USER DB && zstd -dc {storedFile} | pg_restore -h HOST -p PORT -U USER -d DB_CONNINFO --no-owner --exit-on-error --single-transaction";

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
        List<string> args = ["-Fc", "-Z0", "--no-password", "-d", Conninfo.Of(pg.Options.Host, pg.Options.Port, pg.Options.User, database)];
        var what = $"source '{pg.Source}': pg_dump of database {database} at {pg.Where}";
        if (!pg.Options.ExactRows)
        {
            // The facts are read from the server while pg_dump runs: the dump does not wait for them.
            var estimated = Task.Run(() => pg.FactsAsync(database, ct), ct); // never holds up pg_dump's start (Npgsql's open is partly synchronous)
            try
            {
                await ChildProcess.RunToStreamAsync(tools.PgDump, args, env, "/", output, pg.Options.Timeout, what, ct).ConfigureAwait(false);
            }
            finally
            {
                // Never leave the facts query running behind a failed dump; its own error, if any, comes second.
                await Task.WhenAny(estimated).ConfigureAwait(false);
            }

            return await estimated.ConfigureAwait(false);
        }

        await using var db = await pg.ConnectAsync(database, ct).ConfigureAwait(false);
        await using var tx = await db.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct).ConfigureAwait(false);
        await PostgresServer.ScalarAsync(db, "SET TRANSACTION READ ONLY", ct).ConfigureAwait(false);
        var snapshot = (string)(await PostgresServer.ScalarAsync(db, "SELECT pg_export_snapshot()", ct).ConfigureAwait(false))!;
        args.Add("--snapshot=" + snapshot);
        using var dumping = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var dump = ChildProcess.RunToStreamAsync(tools.PgDump, args, env, "/", output, pg.Options.Timeout, what, dumping.Token);
        Dictionary<string, long> facts;
        try
        {
            facts = await PostgresServer.CountAsync(db, PostgresServer.RowCount.None, ct).ConfigureAwait(false); // the rows: from the dump itself
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            // A count that fails stops the dump at once (never hours later), and says why.
            await dumping.CancelAsync().ConfigureAwait(false);
            await Task.WhenAny(dump).ConfigureAwait(false);
            throw new BackupException($"source '{pg.Source}': counting the rows of database {database} at {pg.Where} in the dump's snapshot failed: {e.Message}");
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


}
