using System.Globalization;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Scratch;
using Npgsql;

namespace Backstop.Sources.Postgres;

/// <summary>
/// mode: physical: the drill recovers a throwaway server from a base backup and the archived WAL to a point of the
/// window (a recovery marker chosen at random by the runner, else the end), and checks that it promoted there and holds
/// exactly the markers up to the chosen one. The recovered data folder is the source's own, so nothing of its
/// configuration is trusted: the server reads an empty configuration file of ours (the folder's postgresql.conf is
/// never read), its preload libraries, SSL and archiving are turned off on the command line (which overrides
/// postgresql.auto.conf), it listens on a Unix socket in the scratch folder only, with an hba file of ours, and runs as
/// backstop-drill. The checks read pg_catalog and a plain table (relkind checked first), with search_path pg_catalog:
/// no function of the restored cluster runs.
/// </summary>
internal sealed class PostgresRecoveryDrill(PostgresServer pg, PostgresDrillOptions? drillOptions) : IRecoveryMarked
{
    /// <summary>The marker table, created by the marker writer where it is missing.</summary>
    internal const string MarkerTable = "backstop_pitr_marker";

    public TimeSpan? MarkerEvery => pg.Options.Physical && drillOptions?.MarkerDatabase is not null ? drillOptions.MarkerEvery : null;

    /// <summary>One marker row, committed, then the insert position right after its commit (what a drill recovers to).</summary>
    public async Task<RecoveryMarker> WriteMarkerAsync(CancellationToken cancellationToken)
    {
        var database = drillOptions?.MarkerDatabase ?? throw new InvalidOperationException("no marker database");
        await using var db = await pg.ConnectAsync(database, cancellationToken).ConfigureAwait(false);
        await PostgresServer.ScalarAsync(db, "SET statement_timeout = '30s'", cancellationToken).ConfigureAwait(false); // a lock or a missing sync standby never hangs serve
        // Created only when missing: CREATE … IF NOT EXISTS needs CREATE on public (not granted by default since 15) even when the table exists.
        if (await PostgresServer.ScalarAsync(db, $"SELECT to_regclass('public.{MarkerTable}') IS NULL", cancellationToken).ConfigureAwait(false) is true)
        {
            await PostgresServer.ScalarAsync(db, $"CREATE TABLE IF NOT EXISTS public.{MarkerTable} (seq bigint PRIMARY KEY, lsn pg_lsn NOT NULL, at timestamptz NOT NULL DEFAULT now())",
                cancellationToken).ConfigureAwait(false);
        }

        // Its time is the server's now() (the transaction's start: its commit comes later), on the clock commit times use.
        var row = Convert.ToString(await PostgresServer.ScalarAsync(db,
            $"INSERT INTO public.{MarkerTable} (seq, lsn) SELECT coalesce(max(seq), 0) + 1, pg_current_wal_insert_lsn() FROM public.{MarkerTable} " +
            "RETURNING seq || ' ' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture)!.Split(' ');
        var after = Convert.ToString(await PostgresServer.ScalarAsync(db, "SELECT pg_current_wal_insert_lsn()::text", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture)!;
        return new RecoveryMarker(long.Parse(row[0], CultureInfo.InvariantCulture), PostgresPhysical.ParseLsn(after), after,
            DateTimeOffset.Parse(row[1], CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal));
    }

    internal async Task<IDrillScratch> OpenAsync(DrillScope scope, PostgresDrillOptions drill, CancellationToken ct)
    {
        var user = await ScratchServer.DrillUserAsync(ct).ConfigureAwait(false);
        var root = ScratchFolders.ReachableBy(scope, user, "pg", maxLength: 100);
        return new RecoveryScratch(pg, scope, drill, user, root);
    }

    /// <summary>The settings a recovering server must have at least the primary's values of, read by pg_controldata from the restored pg_control.</summary>
    private static readonly (string Label, string Setting)[] ControlSettings =
    [
        ("max_connections setting", "max_connections"),
        ("max_worker_processes setting", "max_worker_processes"),
        ("max_wal_senders setting", "max_wal_senders"),
        ("max_prepared_xacts setting", "max_prepared_transactions"),
        ("max_locks_per_xact setting", "max_locks_per_transaction"),
    ];

    private sealed class RecoveryScratch(PostgresServer source, DrillScope scope, PostgresDrillOptions drill, (string Name, int Uid, int Gid)? user, string root)
        : IDrillScratch
    {
        private readonly string _data = Path.Combine(root, "data");
        private readonly Dictionary<string, string> _tools = new(StringComparer.Ordinal);
        private ScratchServer? _server;
        private int _port;
        private string _superuser = "postgres";

        public string Description { get; private set; } = $"a throwaway PostgreSQL recovered to {scope.Point ?? RestorePoint.End}";

        public IReadOnlyDictionary<string, string> Tools => _tools;

        public string Destination(string artifact) => _data;

        public async Task LoadAsync(CancellationToken cancellationToken)
        {
            // PG_VERSION is the restored folder's (hostile until proven otherwise): a number, or nothing starts.
            var text = (await File.ReadAllTextAsync(Path.Combine(_data, "PG_VERSION"), cancellationToken).ConfigureAwait(false)).Trim();
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var major) || major is < 10 or > 99)
            {
                throw new BackupException($"the restored PG_VERSION says '{Core.Text.ServerText.Printable(text)}', which is no PostgreSQL major version");
            }

            var (bin, found) = PostgresTools.ServerBinaries(source.Source, drill.Bin, major);
            if (found != major)
            {
                throw new BackupException($"source '{source.Source}': the base backup is PostgreSQL {major}, and a recovery needs the same major version's server: install postgresql-{major} or set drill.bin");
            }

            var settings = await ControlDataAsync(bin, cancellationToken).ConfigureAwait(false);
            var config = Path.Combine(root, "backstop-drill.conf");
            var hba = Path.Combine(root, "hba.conf");
            var ident = Path.Combine(root, "ident.conf");
            await File.WriteAllTextAsync(config, "# The drill's own configuration: the restored postgresql.conf is never read.\n", cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(hba, "local all all trust\n", cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(ident, "", cancellationToken).ConfigureAwait(false);
            ScratchServer.GiveTo(user, root);
            _port = ScratchServer.FreePort();
            var arguments = new List<string>
            {
                "-D", _data, "-p", _port.ToString(CultureInfo.InvariantCulture),
                "-c", $"config_file={config}", "-c", $"hba_file={hba}", "-c", $"ident_file={ident}",
                "-c", "listen_addresses=", "-c", $"unix_socket_directories={root}",
                "-c", "shared_preload_libraries=", "-c", "session_preload_libraries=", "-c", "local_preload_libraries=",
                "-c", "ssl=off", "-c", "archive_mode=off", "-c", "archive_command=", "-c", "logging_collector=off", "-c", "log_destination=stderr",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "hot_standby=on",
                // Commands and connections the backed-up postgresql.auto.conf may name run nowhere here.
                "-c", "recovery_end_command=", "-c", "archive_cleanup_command=", "-c", "primary_conninfo=", "-c", "primary_slot_name=",
            };
            File.Delete(Path.Combine(_data, "standby.signal")); // recovered to the point and promoted, never a standby of anything
            foreach (var (setting, value) in settings)
            {
                arguments.AddRange(["-c", $"{setting}={value}"]);
            }

            _server = await ScratchServer.StartAsync(scope, "postgres", Path.Combine(bin, "postgres"), arguments, user, async c =>
            {
                try
                {
                    await using var db = await source.At(root, _port, source.Options.User, null, throwaway: true).ConnectAsync("postgres", c).ConfigureAwait(false);
                    return true;
                }
                catch (PostgresException e) when (e.SqlState is "28000" or "3D000")
                {
                    return true; // it answers: a role or database of the source's that is not in this cluster
                }
                catch (Exception e) when (e is BackupException or NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
                {
                    return false; // not listening yet, or replaying (57P03) until consistent
                }
            }, source.Options.Timeout, cancellationToken, stopSignal: 2).ConfigureAwait(false);
            _tools["postgres"] = $"{Path.Combine(bin, "postgres")} {await ScratchServerDrill.VersionAsync(Path.Combine(bin, "postgres"), cancellationToken).ConfigureAwait(false)}";

            // The bootstrap superuser's name (OID 10): the checks read as it, so that no row or table is hidden from them.
            try
            {
                await using var any = await source.At(root, _port, source.Options.User, null, throwaway: true).ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
                _superuser = Convert.ToString(await PostgresServer.ScalarAsync(any, "SELECT rolname FROM pg_catalog.pg_roles WHERE oid = 10", cancellationToken).ConfigureAwait(false),
                    CultureInfo.InvariantCulture) ?? _superuser;
            }
            catch (Exception e) when (e is BackupException or NpgsqlException)
            {
                scope.Note($"the backup user '{source.Options.User}' could not sign in to the recovered cluster ({e.Message}); checking as '{_superuser}'");
            }

            // Replayed to the target, then promoted (recovery_target_action = promote): the measured RTO includes it.
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(source.Options.Timeout);
            while (true)
            {
                if (_server.Exited)
                {
                    throw new BackupException($"the recovering server stopped before it reached {scope.Point ?? RestorePoint.End}: {_server.LogTail()}");
                }

                try
                {
                    await using var db = await Superuser().ConnectAsync("postgres", deadline.Token).ConfigureAwait(false);
                    if (await PostgresServer.ScalarAsync(db, "SELECT pg_catalog.pg_is_in_recovery()", deadline.Token).ConfigureAwait(false) is false)
                    {
                        break;
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new BackupException($"the recovery did not finish within {Core.Config.Quantities.FormatDuration(source.Options.Timeout)} (the source's timeout): {_server.LogTail()}");
                }
                catch (Exception e) when (e is BackupException or NpgsqlException)
                {
                    // Restarting into the new timeline, briefly.
                }

                await Task.Delay(200, deadline.Token).ConfigureAwait(false);
            }

            Description = $"a throwaway PostgreSQL {major} recovered to {scope.Point ?? RestorePoint.End} (socket in the scratch folder, run as {user?.Name ?? "this user"})";
        }

        private PostgresServer Superuser() => source.At(root, _port, _superuser, null, throwaway: true);

        /// <summary>pg_controldata of the restored folder: the settings the primary ran with, which a recovery needs at least.</summary>
        private async Task<IReadOnlyList<(string Setting, string Value)>> ControlDataAsync(string bin, CancellationToken ct)
        {
            var output = new MemoryStream();
            await ChildProcess.RunToStreamAsync(Path.Combine(bin, "pg_controldata"), [_data], new Dictionary<string, string> { ["LC_ALL"] = "C" }, "/", output,
                TimeSpan.FromMinutes(1), "pg_controldata of the restored base backup", ct).ConfigureAwait(false);
            var lines = System.Text.Encoding.UTF8.GetString(output.ToArray()).Split('\n');
            var found = new List<(string, string)>();
            foreach (var (label, setting) in ControlSettings)
            {
                var line = lines.FirstOrDefault(l => l.StartsWith(label + ":", StringComparison.Ordinal));
                if (line is not null && long.TryParse(line[(label.Length + 1)..].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value is > 0 and < 1_000_000)
                {
                    found.Add((setting, value.ToString(CultureInfo.InvariantCulture)));
                }
            }

            return found;
        }

        public async Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken)
        {
            var checks = new List<DrillCheck>();
            await using (var db = await Superuser().ConnectAsync("postgres", cancellationToken).ConfigureAwait(false))
            {
                var timeline = Convert.ToInt64(await PostgresServer.ScalarAsync(db, "SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()", cancellationToken).ConfigureAwait(false),
                    CultureInfo.InvariantCulture);
                checks.Add(new DrillCheck("recovery", $"promoted at {scope.Point ?? RestorePoint.End}", $"promoted, on timeline {timeline}", true));
            }

            if (scope.Marker is not { } marker)
            {
                scope.Note("no recovery marker lies in the window (drill.marker_database, written by serve): the drill recovered to the end of the archive and checked that the server promoted there");
                return checks;
            }

            var database = drill.MarkerDatabase ?? "postgres";
            await using var markers = await Superuser().ConnectAsync(database, cancellationToken).ConfigureAwait(false);
            await PostgresServer.ScalarAsync(markers, "SET search_path = pg_catalog", cancellationToken).ConfigureAwait(false);
            var kind = Convert.ToString(await PostgresServer.ScalarAsync(markers,
                "SELECT c.relkind::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = $1",
                cancellationToken, MarkerTable).ConfigureAwait(false), CultureInfo.InvariantCulture);
            if (kind != "r")
            {
                checks.Add(new DrillCheck("markers", $"table public.{MarkerTable} in {database}", kind is null ? "no such table" : $"a relation of kind '{kind}', not a plain table", false));
                return checks;
            }

            var newest = await PostgresServer.ScalarAsync(markers, $"SELECT pg_catalog.max(seq) FROM public.{MarkerTable}", cancellationToken).ConfigureAwait(false);
            var found = newest is long n ? n : 0;
            checks.Add(new DrillCheck("markers", $"markers 1…{marker.Seq} (written {Core.Text.Json.Time(marker.At)}, at {marker.Label}), none after",
                found == 0 ? "no marker" : $"markers up to {found}", found == marker.Seq));
            return checks;
        }

        public async ValueTask DisposeAsync()
        {
            if (_server is not null)
            {
                await _server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
