using Backstop.Core.Plugins;
using Backstop.Sources.Processes;

namespace Backstop.Sources.Postgres;

/// <summary>
/// <c>wal: {receive: true}</c>: for a server whose archive_command cannot be set (a managed server, a container image
/// one may not change), serve streams its WAL with <c>pg_receivewal</c> on a physical replication slot of its own
/// (<c>backstop_NAME</c>, created when missing), so the server keeps every segment until it is received, even while
/// serve is down. pg_receivewal writes the segment in progress as <c>NAME.partial</c> and renames it when complete;
/// serve pushes only complete files. The password travels in the child's environment only.
/// </summary>
internal sealed class PostgresReceive(PostgresServer pg) : IArchiveReceiver
{
    /// <summary>The replication slot serve receives on: <c>backstop_</c> and the source's name, lowercase, other characters '_'.</summary>
    internal string SlotName => Slot(pg.Source);

    internal static string Slot(string source)
    {
        var chars = ("backstop_" + source).ToLowerInvariant().Select(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_' ? c : '_').ToArray();
        return new string(chars)[..Math.Min(chars.Length, 63)];
    }

    public bool IsComplete(string fileName) =>
        !fileName.EndsWith(".partial", StringComparison.Ordinal) && PostgresPhysical.WalName().IsMatch(fileName);

    public async Task ReceiveAsync(string spool, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spool);
        var (tool, _, version) = await PostgresTools.ResolveOneAsync(pg.Source, "pg_receivewal", pg.Options.Tools, cancellationToken).ConfigureAwait(false);
        var conninfo = Conninfo.Of(pg.Options.Host, pg.Options.Port, pg.Options.User, null);
        await ChildProcess.RunToStreamAsync(tool, ["--create-slot", "--if-not-exists", "--slot", SlotName, "--no-password", "-d", conninfo], pg.Environment(), "/",
            Stream.Null, TimeSpan.FromMinutes(1), $"source '{pg.Source}': pg_receivewal --create-slot {SlotName} at {pg.Where} ({version})", cancellationToken).ConfigureAwait(false);

        // --no-loop: a lost connection ends it, and serve starts it again (saying so), rather than it retrying unseen.
        await ChildProcess.RunToStreamAsync(tool, ["-D", spool, "--slot", SlotName, "--no-loop", "--no-password", "-d", conninfo], pg.Environment(), "/",
            Stream.Null, Timeout.InfiniteTimeSpan, $"source '{pg.Source}': pg_receivewal at {pg.Where}", cancellationToken).ConfigureAwait(false);
        throw new BackupException($"source '{pg.Source}': pg_receivewal at {pg.Where} ended (the server closed the stream)");
    }

    /// <summary>The slot's standing for doctor: it exists, is in use, and how much WAL it holds the server to.</summary>
    internal async Task<IReadOnlyList<Finding>> CheckSlotAsync(Npgsql.NpgsqlConnection db, string subject, CancellationToken ct)
    {
        await using var cmd = new Npgsql.NpgsqlCommand(
            "SELECT active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, current_setting('max_slot_wal_keep_size') FROM pg_replication_slots WHERE slot_name = $1",
            db) { Parameters = { new() { Value = SlotName } } };
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            return [new Finding("wal archiving", subject, FindingStatus.Fail, $"the replication slot {SlotName} does not exist: serve creates it when it starts receiving",
                "start backstop serve (wal: {receive: true}), and check that the backup user has REPLICATION")];
        }

        var active = r.GetBoolean(0);
        var retained = r.IsDBNull(1) ? 0 : r.GetInt64(1);
        var keep = r.GetString(2);
        var findings = new List<Finding>
        {
            active
                ? new Finding("wal archiving", subject, FindingStatus.Ok, $"serve receives the WAL on slot {SlotName} ({Core.Config.Quantities.FormatSize(retained)} held back)")
                : new Finding("wal archiving", subject, FindingStatus.Fail,
                    $"nothing receives on slot {SlotName}: the server holds {Core.Config.Quantities.FormatSize(retained)} of WAL for it, growing until serve is back",
                    "start backstop serve; if this source is gone for good, SELECT pg_drop_replication_slot('" + SlotName + "')"),
        };
        if (keep == "-1")
        {
            findings.Add(new Finding("wal archiving", subject, FindingStatus.Warn,
                "max_slot_wal_keep_size is unlimited: a serve that stays down fills the server's disk with WAL for the slot",
                "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB' (a broken window past it, never a stopped database); SELECT pg_reload_conf();"));
        }

        return findings;
    }
}
