using System.Globalization;
using Backstop.Core.Plugins;
using Npgsql;

namespace Backstop.Sources.Postgres;

/// <summary>
/// <c>doctor</c> for PostgreSQL: the databases no source covers, and replication. The audit's "cluster" had two
/// servers that were never replicas: pg_stat_replication empty on the primary, and a "replica" that was a primary of
/// its own, another system identifier, with none of the primary's tables. Each of those is named here.
/// </summary>
internal sealed class PostgresHealth(PostgresServer pg, Core.Config.ArchivePolicy? archive, PostgresReceive receive) : IHealthChecked
{
    public SourcePlace Place => new(pg.Options.Host, []);

    public async Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken)
    {
        await using var db = await pg.ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
        var all = await PostgresServer.ListAsync(db, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn AND datname <> 'postgres' ORDER BY 1", cancellationToken)
            .ConfigureAwait(false);
        return new ServerInventory($"postgres {pg.Where}", all, pg.Options.Databases);
    }

    public async Task<IReadOnlyList<Finding>> CheckHealthAsync(CancellationToken cancellationToken) =>
        [.. pg.Options.Physical ? await CheckArchivingAsync(cancellationToken).ConfigureAwait(false) : [], .. await CheckReplicationAsync(cancellationToken).ConfigureAwait(false)];

    /// <summary>
    /// mode: physical: what point-in-time recovery needs of the server: wal_level replica or logical, archive_mode on,
    /// an archive_command that runs backstop wal-push, an archive_timeout that keeps the RPO under wal.max_rpo, and an
    /// archiver that is not failing now (pg_stat_archiver).
    /// </summary>
    private async Task<IReadOnlyList<Finding>> CheckArchivingAsync(CancellationToken cancellationToken)
    {
        var subject = $"source '{pg.Source}' ({pg.Where})";
        var findings = new List<Finding>();
        await using var db = await pg.ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
        async Task<string?> Setting(string setting)
        {
            // Superuser-only settings read as NULL for others (pg_read_all_settings lifts it).
            await using var cmd = new NpgsqlCommand("SELECT CASE WHEN pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) " +
                                                    "THEN current_setting($1) END", db) { Parameters = { new() { Value = setting } } };
            return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
        }

        var level = await Setting("wal_level").ConfigureAwait(false);
        var mode = await Setting("archive_mode").ConfigureAwait(false);
        var command = await Setting("archive_command").ConfigureAwait(false);
        var timeout = await ArchiveTimeoutAsync(db, cancellationToken).ConfigureAwait(false);
        if (level is null)
        {
            return [new Finding("wal archiving", subject, FindingStatus.Fail, $"user '{pg.Options.User}' may not read the server's archiving settings",
                $"GRANT pg_monitor TO \"{pg.Options.User}\" (it holds pg_read_all_settings and pg_read_all_stats)")];
        }

        findings.Add(level is "replica" or "logical"
            ? new Finding("wal archiving", subject, FindingStatus.Ok, $"wal_level is {level}")
            : new Finding("wal archiving", subject, FindingStatus.Fail, $"wal_level is {level}: base backups and archived WAL need replica", "set wal_level = replica and restart the server"));
        if (archive?.Receive == true)
        {
            // serve receives it: the server's own archiving is not what keeps the window, the slot is.
            findings.AddRange(await receive.CheckSlotAsync(db, subject, cancellationToken).ConfigureAwait(false));
            findings.Add(TimeoutFinding(subject, await ArchiveTimeoutAsync(db, cancellationToken).ConfigureAwait(false)));
            return findings;
        }

        findings.Add(mode is "on" or "always"
            ? new Finding("wal archiving", subject, FindingStatus.Ok, $"archive_mode is {mode}")
            : new Finding("wal archiving", subject, FindingStatus.Fail, $"archive_mode is {mode}: no WAL is archived, so no restore reaches past a base backup",
                "set archive_mode = on and restart the server"));
        // The command itself may hold secrets of its own: only whether it runs wal-push is said.
        var otherSource = command is null ? null : System.Text.RegularExpressions.Regex.Match(command, @"--source[= ]+'?([A-Za-z0-9._-]+)") is { Success: true } m && m.Groups[1].Value != pg.Source
            ? m.Groups[1].Value
            : null;
        findings.Add(command is not null && command.Contains("wal-push", StringComparison.Ordinal) && otherSource is null
            ? new Finding("wal archiving", subject, FindingStatus.Ok, "archive_command runs backstop wal-push")
            : otherSource is not null
            ? new Finding("wal archiving", subject, FindingStatus.Fail, $"archive_command pushes into source '{otherSource}', not '{pg.Source}': this source's window gets none of it",
                $"ALTER SYSTEM SET archive_command = 'backstop wal-push --source {pg.Source} %p'; SELECT pg_reload_conf();")
            : new Finding("wal archiving", subject, FindingStatus.Fail,
                string.IsNullOrEmpty(command) ? "archive_command is empty: nothing archives the WAL" : "archive_command does not run backstop wal-push: the WAL goes elsewhere, unproven",
                $"ALTER SYSTEM SET archive_command = 'backstop wal-push --source {pg.Source} %p'; SELECT pg_reload_conf();"));
        findings.Add(TimeoutFinding(subject, timeout));
        await using (var cmd = new NpgsqlCommand(
                         "SELECT failed_count, last_failed_wal, last_failed_time, last_archived_time, last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time) FROM pg_stat_archiver",
                         db))
        await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            if (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var failed = r.GetInt64(0);
                findings.Add(r.GetBoolean(4)
                    ? new Finding("wal archiving", subject, FindingStatus.Fail,
                        $"the archiver is failing now: {failed} failure(s), the last on {Core.Text.ServerText.Printable(r.IsDBNull(1) ? "?" : r.GetString(1))} at " +
                        $"{Core.Text.Json.Time(r.GetFieldValue<DateTimeOffset>(2))}, nothing archived since",
                        "read the server's log for the lines of backstop wal-push; the WAL piles up in pg_wal until it succeeds")
                    : new Finding("wal archiving", subject, FindingStatus.Ok,
                        r.IsDBNull(3) ? "the archiver has archived nothing yet and never failed" : $"the archiver is working (last archived {Core.Text.Json.Time(r.GetFieldValue<DateTimeOffset>(3))}; {failed} failure(s) since the statistics were reset)"));
            }
        }

        return findings;
    }

    /// <summary>archive_timeout in seconds, whatever unit it was set in (current_setting says "1min").</summary>
    private static async Task<string?> ArchiveTimeoutAsync(NpgsqlConnection db, CancellationToken ct) =>
        Convert.ToString(await PostgresServer.ScalarAsync(db, "SELECT setting FROM pg_settings WHERE name = 'archive_timeout'", ct).ConfigureAwait(false), CultureInfo.InvariantCulture);

    /// <summary>archive_timeout against wal.max_rpo: a quiet server switches segments only this often, so its last writes reach the archive no sooner.</summary>
    private Finding TimeoutFinding(string subject, string? timeout)
    {
        var maxRpo = archive?.MaxRpo ?? Core.Config.ArchivePolicy.DefaultMaxRpo;
        var seconds = int.TryParse(timeout, NumberStyles.Integer, CultureInfo.InvariantCulture, out var t) ? t : 0;
        return seconds > 0 && seconds < maxRpo.TotalSeconds
            ? new Finding("wal archiving", subject, FindingStatus.Ok, $"archive_timeout is {seconds}s, under wal.max_rpo {Core.Config.Quantities.FormatDuration(maxRpo)}")
            : new Finding("wal archiving", subject, FindingStatus.Fail,
                seconds == 0 ? $"archive_timeout is 0: a quiet server keeps its last writes in an unarchived segment for hours, past wal.max_rpo {Core.Config.Quantities.FormatDuration(maxRpo)}"
                    : $"archive_timeout is {seconds}s, not under wal.max_rpo {Core.Config.Quantities.FormatDuration(maxRpo)}: the RPO goal cannot hold",
                $"ALTER SYSTEM SET archive_timeout = '{Math.Max(1, (int)(maxRpo.TotalSeconds / 5))}s'; SELECT pg_reload_conf();");
    }

    private async Task<IReadOnlyList<Finding>> CheckReplicationAsync(CancellationToken cancellationToken)
    {
        if (pg.Options.Replication is not { } want)
        {
            return [];
        }

        var findings = new List<Finding>();
        var subject = $"source '{pg.Source}' ({pg.Where})";
        await using var primary = await pg.ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
        // Without pg_read_all_stats (pg_monitor) the replication views show their rows with every detail NULL: the
        // replicas would look stopped. That is said as what it is.
        if (await PostgresServer.ScalarAsync(primary, "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') FROM pg_roles WHERE rolname = current_user",
                cancellationToken).ConfigureAwait(false) is not true)
        {
            return [new Finding("replication", subject, FindingStatus.Fail,
                $"user '{pg.Options.User}' may not read the replication statistics (pg_stat_replication shows no state without pg_read_all_stats)",
                $"GRANT pg_monitor TO \"{pg.Options.User}\" on the primary and the replicas")];
        }

        var rows = new List<(string App, string Addr, string State, double? Lag)>();
        await using (var cmd = new NpgsqlCommand(
                         "SELECT coalesce(application_name, ''), coalesce(client_addr::text, 'local'), coalesce(state, 'unknown'), EXTRACT(EPOCH FROM replay_lag)::float8 FROM pg_stat_replication",
                         primary))
        await using (var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await r.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                rows.Add((r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetDouble(3)));
            }
        }

        var streaming = rows.Where(x => x.State == "streaming").ToList();
        var described = string.Join(", ", rows.Select(x => $"{(x.App.Length > 0 ? x.App + "@" : "")}{x.Addr} {x.State}" +
                                                           (x.Lag is { } l ? $" (replay lag {l.ToString("0.#", CultureInfo.InvariantCulture)}s)" : "")));
        findings.Add(streaming.Count >= want.MinReplicas
            ? new Finding("replication", subject, FindingStatus.Ok, $"{streaming.Count} replica(s) streaming: {described}")
            : new Finding("replication", subject, FindingStatus.Fail,
                $"{streaming.Count} replica(s) streaming, min_replicas is {want.MinReplicas}; pg_stat_replication has {rows.Count} row(s){(rows.Count > 0 ? ": " + described : "")}",
                "start the replicas, and check their primary_conninfo and this server's pg_hba.conf replication rule"));
        if (want.MaxLag is { } maxLag && streaming.Where(x => x.Lag is { } l && l > maxLag.TotalSeconds).ToList() is { Count: > 0 } behind)
        {
            findings.Add(new Finding("replication", subject, FindingStatus.Fail,
                $"replica(s) behind by more than max_lag {Core.Config.Quantities.FormatDuration(maxLag)}: {string.Join(", ", behind.Select(b => $"{b.Addr} {b.Lag!.Value:0}s"))}",
                "check the replicas' disks and network"));
        }

        if (want.Replicas.Count == 0)
        {
            return findings;
        }

        var systemId = Convert.ToString(await PostgresServer.ScalarAsync(primary, "SELECT system_identifier FROM pg_control_system()", cancellationToken).ConfigureAwait(false),
            CultureInfo.InvariantCulture);
        var databases = await PostgresServer.ListAsync(primary, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY 1", cancellationToken)
            .ConfigureAwait(false);
        var tables = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var database in databases)
        {
            await using var db = await pg.ConnectAsync(database, cancellationToken).ConfigureAwait(false);
            tables[database] = await TableCountAsync(db, cancellationToken).ConfigureAwait(false);
        }

        foreach (var (host, port) in want.Replicas)
        {
            findings.Add(await CheckReplicaAsync(host, port, systemId, tables, cancellationToken).ConfigureAwait(false));
        }

        return findings;
    }

    /// <summary>One listed replica, from its own side: reachable, in recovery, the primary's cluster, streaming, the same tables.</summary>
    private async Task<Finding> CheckReplicaAsync(string host, int port, string? systemId, Dictionary<string, long> tables, CancellationToken ct)
    {
        var subject = $"replica {host}:{port.ToString(CultureInfo.InvariantCulture)} of '{pg.Source}'";
        var replica = new PostgresServer(pg.Source, pg.Options with { Host = host, Port = port });
        var problems = new List<string>();
        try
        {
            await using var db = await replica.ConnectAsync("postgres", ct).ConfigureAwait(false);
            if (await PostgresServer.ScalarAsync(db, "SELECT pg_is_in_recovery()", ct).ConfigureAwait(false) is not true)
            {
                problems.Add("it is not in recovery: it is a primary of its own, not a replica");
            }

            var id = Convert.ToString(await PostgresServer.ScalarAsync(db, "SELECT system_identifier FROM pg_control_system()", ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
            if (id != systemId)
            {
                problems.Add($"its system identifier is {id}, the primary's is {systemId}: it is another cluster, not a copy of this one");
            }

            var receiver = await PostgresServer.ScalarAsync(db, "SELECT status FROM pg_stat_wal_receiver", ct).ConfigureAwait(false) as string;
            if (receiver != "streaming")
            {
                problems.Add(receiver is null ? "it receives no WAL (no row in pg_stat_wal_receiver)" : $"its WAL receiver is {receiver}, not streaming");
            }

            var present = await PostgresServer.ListAsync(db, "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn", ct).ConfigureAwait(false);
            foreach (var (database, count) in tables)
            {
                if (!present.Contains(database))
                {
                    problems.Add($"database {database} ({count} tables on the primary) does not exist there");
                    continue;
                }

                await using var d = await replica.ConnectAsync(database, ct).ConfigureAwait(false);
                var here = await TableCountAsync(d, ct).ConfigureAwait(false);
                if (here != count)
                {
                    problems.Add($"database {database} has {here} tables there, {count} on the primary");
                }
            }
        }
        catch (BackupException e)
        {
            return new Finding("replication", subject, FindingStatus.Fail, $"cannot be checked: {e.Message}", "check that it runs, and that this source's user may connect to it");
        }

        return problems.Count == 0
            ? new Finding("replication", subject, FindingStatus.Ok, $"in recovery, streaming, the same cluster ({systemId}) and the same tables in {tables.Count} database(s)")
            : new Finding("replication", subject, FindingStatus.Fail, string.Join("; ", problems),
                "rebuild it as a replica of the primary (pg_basebackup -R), then check again");
    }

    private static async Task<long> TableCountAsync(NpgsqlConnection db, CancellationToken ct) =>
        Convert.ToInt64(await PostgresServer.ScalarAsync(db,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
}
