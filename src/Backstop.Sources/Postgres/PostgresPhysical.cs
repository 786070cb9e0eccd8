using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Backstop.Core.Plugins;
using Backstop.Core.Streams;
using Backstop.Sources.Processes;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Postgres;

/// <summary>
/// <c>mode: physical</c>: a base backup of the whole cluster, <c>pg_basebackup -Ft -D - -X none</c> streamed through the
/// pipeline as one artifact (<c>base.tar</c>) with PostgreSQL's backup manifest inside it. A server with tablespaces
/// besides pg_default and pg_global is refused (<c>-D -</c> streams one tar). The WAL is not in it: a base backup
/// becomes a consistent cluster with the segments from its start to its end LSN (continuous archiving).
/// </summary>
internal sealed partial class PostgresPhysical(PostgresServer pg) : IContinuousArchive, IPointInTimeRestorable
{
    /// <summary>The folder of the restored data folder that holds the WAL it replays (restore_command reads it): the folder is self-contained.</summary>
    internal const string WalFolder = "backstop_wal";

    public bool RestoresToPoints => pg.Options.Physical;

    /// <summary>A base backup ends (is consistent) at its end LSN, and at the time its snapshot finished, which is later.</summary>
    public bool Covers(Core.Catalog.SnapshotInfo snapshot, RestorePoint point)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(point);
        var facts = snapshot.Artifacts.FirstOrDefault(a => a.Name == BaseArtifact)?.Facts;
        if (facts is null || !facts.TryGetValue("end_lsn", out var end))
        {
            return false;
        }

        return point.Time is { } t ? snapshot.FinishedAt is { } f && f <= t
            : point.Position is { } p ? end <= ParseLsnOrRefuse(p)
            : true;
    }

    private static long ParseLsnOrRefuse(string lsn)
    {
        try
        {
            return ParseLsn(lsn);
        }
        catch (FormatException)
        {
            throw new Core.Config.ConfigException($"--to-lsn {Core.Text.ServerText.Printable(lsn)}: an LSN is written like 0/16B3748 (hex, a slash, hex)");
        }
    }

    /// <summary>
    /// The base backup into DEST, a new server's data folder (0700; refused when not empty unless --force): tar's paths
    /// held inside it. The facts found are the manifest's, with every file it lists there at its size.
    /// </summary>
    internal static async Task<IReadOnlyDictionary<string, long>> ExtractBaseAsync(Stream content, string destination, bool force, CancellationToken cancellationToken)
    {
        if (destination.Contains("://", StringComparison.Ordinal))
        {
            throw new Core.Config.ConfigException($"--to {destination}: a base backup restores into a folder, the data folder of a new server");
        }

        var folder = Path.GetFullPath(destination);
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any() && !force)
        {
            throw new BackupException($"{folder} is not empty: a base backup restores into an empty folder (or add --force)");
        }

        Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await TarFile.ExtractToDirectoryAsync(new ForwardOnlyStream(content), folder, overwriteFiles: force, cancellationToken).ConfigureAwait(false);
        var (files, ranges) = BaseBackupValidator.Manifest(await File.ReadAllBytesAsync(Path.Combine(folder, "backup_manifest"), cancellationToken).ConfigureAwait(false));
        foreach (var (path, size, _, _) in files)
        {
            var full = Path.Combine(folder, path);
            if (!File.Exists(full) || new FileInfo(full).Length != size)
            {
                throw new BackupException($"{Core.Text.ServerText.Printable(path)} is not in {folder} as the backup manifest lists it ({size} bytes)");
            }
        }

        return new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["files"] = files.Count,
            ["bytes"] = files.Sum(f => f.Size),
            ["timeline"] = ranges[^1].Timeline,
            ["start_lsn"] = ranges[0].Start,
            ["end_lsn"] = ranges[^1].End,
        };
    }

    /// <summary>
    /// The segments from the base backup's start LSN to the point, contiguous, on its timeline and each later one from
    /// where it begins (a promotion; PostgreSQL follows the history files to the latest timeline): for a time, up to the
    /// segment holding the first recovery marker after it (a commit), else all; for an LSN, up to the segment that holds
    /// it; else all. Refused naming
    /// why when the point is past the archive's end, past a gap, or the archive does not reach the backup's end.
    /// </summary>
    public IReadOnlyList<ArchiveFile> Needs(Core.Catalog.SnapshotInfo basis, RestorePoint point, IArchiveReader archive)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(point);
        ArgumentNullException.ThrowIfNull(archive);
        var facts = basis.Artifacts.First(a => a.Name == BaseArtifact).Facts;
        var start = facts["start_lsn"];
        var (segments, gap) = ArchiveChain.Follow(archive.Files, f => (f.Folder, f.Start, f.End), TimelineFolder(facts["timeline"]), start, TimelineLineage(archive.Files));
        var newest = segments.LastOrDefault();
        if (point.Time is { } t && (newest is null || t > newest.At))
        {
            throw new BackupException(gap is not null
                ? $"the WAL archive of '{pg.Source}' has a gap after {newest?.Name ?? $"the base backup's start ({FormatLsn(start)})"} (next: {gap.Name}): a recovery cannot pass it; {point} is out of reach"
                : $"{point} is after the newest archived WAL of '{pg.Source}' ({(newest is null ? "none since the base backup" : $"{newest.Name}, archived {Core.Text.Json.Time(newest.At)}")}): the recovery window ends there");
        }

        // A time target stops at the first commit after it, which PostgreSQL must find (since 13, none is fatal): the
        // segments up to the first recovery marker whose transaction began after it (its commit is later), else all.
        long? position = point.Position is { } p ? ParseLsnOrRefuse(p) : null;
        var commitAfter = point.Time is { } at ? archive.Markers.FirstOrDefault(m => m.At > at)?.Position : null; // the server's now() of its transaction: its commit is later
        var needed = new List<ArchiveFile>();
        foreach (var s in segments)
        {
            if ((position ?? commitAfter) is { } lsn && s.Start > lsn)
            {
                break;
            }

            needed.Add(s);
        }

        if (gap is not null && (point == RestorePoint.End || position is { } beyond && beyond >= (newest?.End ?? start)))
        {
            throw new BackupException($"the WAL archive of '{pg.Source}' has a gap at {FormatLsn(newest?.End ?? start)} (after {newest?.Name ?? "the base backup's start"}, next: {gap.Name}): " +
                                      $"a recovery cannot pass it; {point} is out of reach (a point before it, or a restore from a base backup after it, is)");
        }

        return needed.Count == 0 || needed[^1].End < facts["end_lsn"]
            ? throw new BackupException($"the WAL archive of '{pg.Source}' does not reach the end of base backup {basis.Id} ({FormatLsn(facts["end_lsn"])}): it cannot become consistent; is archive_command set to backstop wal-push?")
            : needed;
    }

    /// <summary>
    /// recovery.signal and, appended to postgresql.auto.conf: a restore_command that reads the folder's own WAL, the
    /// recovery target, promote at the target, and archive_mode off (a promoted copy never archives into the production
    /// archive). Owned by postgres where it exists and this runs as root.
    /// </summary>
    public RecoverySetup Recovery(Core.Catalog.SnapshotInfo basis, RestorePoint point)
    {
        ArgumentNullException.ThrowIfNull(basis);
        ArgumentNullException.ThrowIfNull(point);
        long? position = point.Position is { } p ? ParseLsnOrRefuse(p) : null;
        var target = point.Time is { } at ? $"recovery_target_time = '{at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture)}+00'\n"
            : position is { } l ? $"recovery_target_lsn = '{FormatLsn(l)}'\n"
            : "";
        // Settings the backed-up folder may hold (a restored server's old target, a standby's connection, commands of
        // the source's host) are cleared: later lines win, and only this restore's own stay.
        var text = $"\n# Added by backstop restore of {basis.Id} to {point}: replay the WAL in {WalFolder}/, then promote. A restored copy never archives.\n" +
                   "recovery_target = ''\nrecovery_target_name = ''\nrecovery_target_xid = ''\nrecovery_target_time = ''\nrecovery_target_lsn = ''\n" +
                   "recovery_end_command = ''\narchive_cleanup_command = ''\nprimary_conninfo = ''\nprimary_slot_name = ''\n" +
                   // Replayed to be promoted, not read while it replays: no need for the primary's max_connections and the like.
                   "hot_standby = 'off'\n" +
                   $"restore_command = 'cp {WalFolder}/%f \"%p\"'\n" + target +
                   (target.Length > 0 ? "recovery_target_action = 'promote'\n" : "") +
                   "archive_mode = 'off'\narchive_command = ''\n";
        var owner = System.Environment.UserName == "root" && Core.FileSystem.PosixUsers.Lookup("postgres") is not null ? "postgres" : null;
        // A server that kept its configuration outside its data folder (Debian's /etc/postgresql/…) left none in the
        // backup: without them pg_ctl refuses to start. Written only where missing: local peer, and passwords on loopback.
        return new RecoverySetup(WalFolder, ["recovery.signal"], "postgresql.auto.conf", text, owner, "pg_ctl -D DEST start")
        {
            IfMissing = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["postgresql.conf"] = "# Written at restore: the backed-up data folder had none (its server kept it elsewhere). Defaults apply.\n",
                ["pg_hba.conf"] = "# Written at restore: the backed-up data folder had none. The OS user of the same name on the socket; passwords on loopback.\n" +
                                  "local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n",
                ["pg_ident.conf"] = "# Written at restore: the backed-up data folder had none.\n",
            },
        };
    }

    /// <summary>
    /// The WAL the restored base backup replays, into DEST/backstop_wal (every segment from its start, contiguous, up to
    /// the point, and the timelines' history files), then <see cref="Recovery"/>. A point outside the window, or one
    /// past a gap in the archive, is refused naming it.
    /// </summary>
    public async Task<IReadOnlyList<string>> FinishAsync(string destination, Core.Catalog.SnapshotInfo basis, RestorePoint point, IArchiveReader archive,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(archive);
        var needed = Needs(basis, point, archive);
        var setup = Recovery(basis, point);
        var folder = Path.GetFullPath(destination);
        var wal = Path.Combine(folder, setup.ArchiveFolder);
        Directory.CreateDirectory(wal, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (var f in needed.Concat(archive.Files.Where(f => f.Name.EndsWith(".history", StringComparison.Ordinal))))
        {
            await archive.FetchAsync(f.Name, Path.Combine(wal, f.Name), cancellationToken).ConfigureAwait(false);
        }

        foreach (var empty in setup.EmptyFiles)
        {
            await File.WriteAllTextAsync(Path.Combine(folder, empty), "", cancellationToken).ConfigureAwait(false);
        }

        foreach (var (file, content) in setup.IfMissing.Where(f => !File.Exists(Path.Combine(folder, f.Key))))
        {
            await File.WriteAllTextAsync(Path.Combine(folder, file), content, cancellationToken).ConfigureAwait(false);
        }

        await File.AppendAllTextAsync(Path.Combine(folder, setup.ConfigFile), setup.ConfigText, cancellationToken).ConfigureAwait(false);
        if (setup.Owner is { } owner)
        {
            await ChildProcess.RunToStreamAsync("/bin/chown", ["-R", $"{owner}:{owner}", folder], new Dictionary<string, string>(), "/", Stream.Null,
                TimeSpan.FromMinutes(10), $"chown of {folder}", cancellationToken).ConfigureAwait(false);
        }

        return [$"{needed.Count} WAL segment(s) from {needed[0].Name} to {needed[^1].Name} are in {wal}; the folder is self-contained: " +
                $"start it as {setup.Owner ?? "its owner"} ({setup.Start.Replace("DEST", folder, StringComparison.Ordinal)}) and it replays to {point}{(point.Time is null && point.Position is null ? "" : ", then promotes")}"];
    }

    /// <summary>
    /// pg_ctl start of the restored folder with the server binaries of its PG_VERSION, as postgres when root, on a free
    /// loopback port with its socket in the folder and archiving off; then pg_controldata until the cluster is in
    /// production (replayed and promoted). A server that stops first is an error with the end of its log.
    /// </summary>
    public async Task<string> StartAsync(string destination, CancellationToken cancellationToken)
    {
        var folder = Path.GetFullPath(destination);
        if (folder.IndexOfAny(['"', '$', '`', '\\', '\n']) >= 0)
        {
            throw new Core.Config.ConfigException($"--start: pg_ctl hands the folder to a shell in double quotes, so a folder whose name holds \", $, ` or \\ cannot be started by it: restore into another folder");
        }

        var text = (await File.ReadAllTextAsync(Path.Combine(folder, "PG_VERSION"), cancellationToken).ConfigureAwait(false)).Trim();
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var major))
        {
            throw new BackupException($"{folder}/PG_VERSION says '{Core.Text.ServerText.Printable(text)}', which is no PostgreSQL major version");
        }

        var bin = Path.Combine(PostgresTools.ClusterDir, major.ToString(CultureInfo.InvariantCulture), "bin");
        if (!File.Exists(Path.Combine(bin, "pg_ctl")))
        {
            throw new BackupException($"--start: the base backup is PostgreSQL {major}, whose server is not installed here ({bin}/pg_ctl): install postgresql-{major}, or start the folder yourself");
        }

        int port;
        using (var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        }

        var log = Path.Combine(folder, "backstop-start.log");
        var run = new List<string>();
        var program = Path.Combine(bin, "pg_ctl");
        if (Core.FileSystem.PosixUsers.IsRoot && Core.FileSystem.PosixUsers.Lookup("postgres") is { } ids)
        {
            run.AddRange([$"--reuid={ids.Uid}", $"--regid={ids.Gid}", "--clear-groups", "--", program]);
            program = ChildProcess.ResolveTool("setpriv");
        }

        // pg_ctl hands -o to a shell: the folder is quoted there.
        run.AddRange(["-D", folder, "-l", log, "-W", "start", "-o",
            $"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={Core.Text.ShellWord.Quote(folder)} -c archive_mode=off"]);
        await ChildProcess.RunCleanToStreamAsync(program, run, new Dictionary<string, string>(), "/", Stream.Null, TimeSpan.FromMinutes(1), $"pg_ctl start of {folder}",
            cancellationToken).ConfigureAwait(false);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(pg.Options.Timeout);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var seen = false; // the pid file appears once the postmaster runs: its absence means a stop only after that, or after a grace
        try
        {
            while (true)
            {
                await Task.Delay(300, deadline.Token).ConfigureAwait(false);
                var control = new MemoryStream();
                await ChildProcess.RunToStreamAsync(Path.Combine(bin, "pg_controldata"), [folder], new Dictionary<string, string> { ["LC_ALL"] = "C" }, "/", control,
                    TimeSpan.FromMinutes(1), $"pg_controldata of {folder}", deadline.Token).ConfigureAwait(false);
                if (System.Text.RegularExpressions.Regex.IsMatch(Encoding.UTF8.GetString(control.ToArray()), @"^Database cluster state:\s+in production\s*$",
                        System.Text.RegularExpressions.RegexOptions.Multiline))
                {
                    // The control file says "in production" a moment before the postmaster takes connections: said only once it does.
                    while (!await AcceptsAsync(bin, port, deadline.Token).ConfigureAwait(false))
                    {
                        await Task.Delay(200, deadline.Token).ConfigureAwait(false);
                    }

                    return $"recovered and promoted; running on 127.0.0.1:{port} (socket in {folder}; log {log}; stop it with pg_ctl -D {folder} stop)";
                }

                seen |= File.Exists(Path.Combine(folder, "postmaster.pid"));
                if (!File.Exists(Path.Combine(folder, "postmaster.pid")) && (seen || started.Elapsed > TimeSpan.FromSeconds(30)))
                {
                    var tail = File.Exists(log) ? await File.ReadAllTextAsync(log, cancellationToken).ConfigureAwait(false) : "(no log)";
                    throw new BackupException(tail.Contains("recovery ended before configured recovery target was reached", StringComparison.Ordinal)
                        ? $"the server of {folder} replayed all the WAL and found no commit after the target time (PostgreSQL 13 and later stop there): restore to a time before the last commit, or to the end of the archive (no --to-time)"
                        : $"the server of {folder} stopped before its recovery finished: {tail[Math.Max(0, tail.Length - 1500)..].Trim()}");
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackupException($"the server of {folder} did not finish its recovery within {Core.Config.Quantities.FormatDuration(pg.Options.Timeout)}; it still runs (log {log})");
        }
    }

    /// <summary>Whether the server on the port takes connections (pg_isready: 0), not still starting or gone.</summary>
    private static async Task<bool> AcceptsAsync(string bin, int port, CancellationToken ct)
    {
        using var ready = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(Path.Combine(bin, "pg_isready"),
            ["-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-t", "2"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        })!;
        await ready.WaitForExitAsync(ct).ConfigureAwait(false);
        return ready.ExitCode == 0;
    }

    internal const string BaseArtifact = "base.tar";

    /// <summary>
    /// The newest timeline's lineage, from its history file (<c>TTTTTTTT.history</c>: a line per ancestor, its timeline
    /// and the LSN where the next branched off): each ancestor up to its switch point, then the newest. What PostgreSQL
    /// follows with recovery_target_timeline = latest. Null with no history (one timeline); a line that does not read
    /// as one is skipped (the file comes from the archive: untrusted).
    /// </summary>
    internal static IReadOnlyList<ArchiveStretch>? TimelineLineage(IEnumerable<ArchiveFile> files)
    {
        var newest = files.Where(f => f.Detail is not null && f.Name.EndsWith(".history", StringComparison.Ordinal)).MaxBy(f => f.Name, StringComparer.Ordinal);
        if (newest is null)
        {
            return null;
        }

        // As PostgreSQL reads it: comments and blank lines skipped; each line's timeline above the one before and below
        // the file's own, its switch point not before the one before. Anything else makes the lineage unusable (the
        // chain then goes folder by folder; PostgreSQL itself refuses such a file at recovery).
        var own = uint.Parse(newest.Folder, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var stretches = new List<ArchiveStretch>();
        uint lastTli = 0;
        long lastLsn = 0;
        foreach (var raw in newest.Detail!.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var fields = line.Split('\t', StringSplitOptions.TrimEntries);
            long lsn;
            try
            {
                lsn = fields.Length >= 2 ? ParseLsn(fields[1]) : -1;
            }
            catch (FormatException)
            {
                return null;
            }

            if (!uint.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var tli) || tli <= lastTli || tli >= own || lsn < lastLsn)
            {
                return null;
            }

            stretches.Add(new ArchiveStretch(TimelineFolder(tli), lsn));
            (lastTli, lastLsn) = (tli, lsn);
        }

        stretches.Add(new ArchiveStretch(newest.Folder, long.MaxValue));
        return stretches;
    }

    /// <summary>A timeline's folder in the archive: its number as 8 hex digits, as in segment names.</summary>
    internal static string TimelineFolder(long timeline) => timeline.ToString("X8", CultureInfo.InvariantCulture);

    /// <summary>
    /// A file PostgreSQL hands <c>archive_command</c>: a WAL segment (<c>TTTTTTTTLLLLLLLLSSSSSSSS</c>, its size the
    /// cluster's segment size), a partial segment (<c>….partial</c>, left by a promotion), a timeline history
    /// (<c>TTTTTTTT.history</c>) or a backup history file (<c>….XXXXXXXX.backup</c>). Folder: its timeline. Anything else
    /// is refused: the name becomes a key on the targets.
    /// </summary>
    public ArchiveItem Identify(string fileName, long size)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        if (!pg.Options.Physical)
        {
            throw new Core.Config.ConfigException($"source '{pg.Source}' is mode: dump; a WAL archive belongs to a source with mode: physical");
        }

        var m = WalName().Match(fileName);
        if (!m.Success)
        {
            throw new BackupException($"'{Core.Text.ServerText.Printable(fileName)}' is not a WAL segment, partial segment, history or backup history file name");
        }

        var timeline = m.Groups["tli"].Value;
        if (m.Groups["log"].Success && !m.Groups["backup"].Success)
        {
            // A segment: its size is the cluster's segment size (a power of two, 1 MiB to 1 GiB), which places it.
            var whole = !m.Groups["partial"].Success;
            if (whole && (size < 1 << 20 || size > 1 << 30 || (size & (size - 1)) != 0))
            {
                throw new BackupException($"{fileName} is {size} bytes, which is no WAL segment size (a power of two from 1 MiB to 1 GiB)");
            }

            // A partial segment (the old timeline's last, at a promotion) holds WAL only up to the switch: it places nothing in the chain.
            var segmentSize = whole ? size : 16L << 20;
            var log = long.Parse(m.Groups["log"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var seg = long.Parse(m.Groups["seg"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var start = (log << 32) + seg * segmentSize;
            return new ArchiveItem(timeline, fileName, whole ? start : 0, whole ? start + segmentSize : 0);
        }

        return new ArchiveItem(timeline, fileName, 0, 0);
    }

    [System.Text.RegularExpressions.GeneratedRegex(
        "^(?<tli>[0-9A-F]{8})(?:(?<log>[0-9A-F]{8})(?<seg>[0-9A-F]{8})(?:(?<partial>\\.partial)|(?<backup>\\.[0-9A-F]{8}\\.backup))?|\\.history)$")]
    internal static partial System.Text.RegularExpressions.Regex WalName();

    private int _serverMajor;
    private string? _basebackup;

    /// <summary>pg_basebackup resolved (at least the server's major version), and the server reached.</summary>
    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        var tool = PostgresTools.ResolveOneAsync(pg.Source, "pg_basebackup", pg.Options.Tools, cancellationToken);
        await using var db = await pg.ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
        var (path, major, version) = await tool.ConfigureAwait(false);
        _serverMajor = (int)(Convert.ToInt64(await PostgresServer.ScalarAsync(db, "SHOW server_version_num", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) / 10000);
        if (major < _serverMajor)
        {
            throw new BackupException(
                $"source '{pg.Source}': the server at {pg.Where} is PostgreSQL {_serverMajor}, newer than {path} ({version}); install postgresql-client-{_serverMajor} or set tools.pg_basebackup");
        }

        _basebackup = path;
        return new SourcePreflight(new Dictionary<string, string>
        {
            ["pg_basebackup"] = $"{path} {version}",
            ["postgresql-server"] = _serverMajor.ToString(CultureInfo.InvariantCulture),
        }, 0);
    }

    /// <summary>The base backup, with its manifest checked and its WAL range and facts recorded.</summary>
    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        var basebackup = _basebackup ?? throw new InvalidOperationException("preflight first");
        long databases, tables = 0;
        await using (var db = await pg.ConnectAsync("postgres", cancellationToken).ConfigureAwait(false))
        {
            var walLevel = Convert.ToString(await PostgresServer.ScalarAsync(db, "SHOW wal_level", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            if (walLevel is "minimal")
            {
                throw new BackupException($"source '{pg.Source}': the server at {pg.Where} has wal_level = minimal: a base backup needs replica (set wal_level = replica and restart it)");
            }

            var spaces = await PostgresServer.ListAsync(db, "SELECT spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname", cancellationToken)
                .ConfigureAwait(false);
            if (spaces.Count > 0)
            {
                throw new BackupException(
                    $"source '{pg.Source}': the server at {pg.Where} has tablespace(s) {string.Join(", ", spaces)} besides pg_default: a physical backup streams one tar, " +
                    "so it takes clusters with their data in the data folder only; move them (ALTER TABLE … SET TABLESPACE pg_default) or back this server up with mode: dump");
            }

            var names = await PostgresServer.ListAsync(db, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname", cancellationToken).ConfigureAwait(false);
            databases = names.Count;
            foreach (var database in names)
            {
                await using var each = await pg.ConnectAsync(database, cancellationToken).ConfigureAwait(false);
                tables += Convert.ToInt64(await PostgresServer.ScalarAsync(each,
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') " +
                    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            }
        }

        await using var artifact = await sink.BeginArtifactAsync(BaseArtifact, cancellationToken).ConfigureAwait(false);
        await ChildProcess.RunToStreamAsync(basebackup,
            ["-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "--label=backstop", "--no-password", "-d", Conninfo.Of(pg.Options.Host, pg.Options.Port, pg.Options.User, null)],
            pg.Environment(), "/", artifact.Content, pg.Options.Timeout, $"source '{pg.Source}': pg_basebackup at {pg.Where}", cancellationToken).ConfigureAwait(false);

        // The rest (files, bytes, timeline, start and end LSN) is read by the format check from the manifest inside.
        await artifact.CompleteAsync(new Dictionary<string, long>(StringComparer.Ordinal) { ["databases"] = databases, ["tables"] = tables }, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>An LSN as PostgreSQL writes it (<c>16/B374D848</c>) as one number, and back.</summary>
    internal static long ParseLsn(string lsn)
    {
        var slash = lsn.IndexOf('/', StringComparison.Ordinal);
        return slash > 0 && uint.TryParse(lsn[..slash], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var high)
                         && uint.TryParse(lsn[(slash + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var low)
            ? (long)(((ulong)high << 32) | low)
            : throw new FormatException($"'{Core.Text.ServerText.Printable(lsn)}' is not an LSN");
    }

    internal static string FormatLsn(long lsn) => $"{(ulong)lsn >> 32:X}/{(ulong)lsn & 0xFFFFFFFF:X}";
}

/// <summary>
/// The format check of a base backup, as it streams and as stored: a tar of the data folder that holds
/// <c>backup_label</c> and PostgreSQL's <c>backup_manifest</c>, whose own SHA-256 checksum must hold, and every file the
/// manifest lists must be in the tar with its size. Facts found: files and bytes (the manifest's), and the WAL range the
/// backup needs (timeline, start and end LSN). Each file's CRC-32C is <c>pg_verifybackup</c>'s, on an extracted copy.
/// </summary>
internal sealed class BaseBackupValidator : IArtifactValidator
{
    private const int ManifestLimit = 256 << 20;

    public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
    {
        var reader = new TarReader(new ForwardOnlyStream(content), leaveOpen: true);
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        var crcs = new Dictionary<string, uint>(StringComparer.Ordinal);
        byte[]? manifest = null;
        var label = false;
        var buffer = new byte[1 << 20];
        while (await TarEntries.NextAsync(reader, "the base backup's tar", cancellationToken).ConfigureAwait(false) is { } entry)
        {
            var path = entry.Name.StartsWith("./", StringComparison.Ordinal) ? entry.Name[2..] : entry.Name;
            if (entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
            {
                sizes[path] = entry.Length;
                if (path == "backup_manifest")
                {
                    manifest = await Core.Text.ServerText.ReadAtMostAsync(entry.DataStream ?? Stream.Null, ManifestLimit,
                        () => new BackupException($"its backup_manifest is larger than {ManifestLimit >> 20} MiB"), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                label |= path == "backup_label";

                // Each file's CRC-32C as it streams (the manifest, last in the tar, says what each must be): what
                // pg_verifybackup checks, without extracting anything.
                var crc = Crc32C.Initial;
                if (entry.DataStream is { } data)
                {
                    int n;
                    while ((n = await data.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                    {
                        crc = Crc32C.Append(crc, buffer.AsSpan(0, n));
                    }
                }

                crcs[path] = Crc32C.Final(crc);
            }
        }

        if (!label)
        {
            throw new BackupException("the base backup holds no backup_label: it is not a base backup (or was cut short)");
        }

        if (manifest is null)
        {
            throw new BackupException("the base backup holds no backup_manifest (pg_basebackup 13 or newer writes one); it cannot be checked");
        }

        var (files, ranges) = Manifest(manifest);
        long checkedFiles = 0;
        foreach (var (path, size, algorithm, checksum) in files)
        {
            if (!sizes.TryGetValue(path, out var inTar))
            {
                throw new BackupException($"the backup manifest lists {Core.Text.ServerText.Printable(path)}, which the base backup does not hold");
            }

            if (inTar != size)
            {
                throw new BackupException($"{Core.Text.ServerText.Printable(path)} is {inTar} bytes in the base backup; its manifest says {size}");
            }

            if (algorithm == "CRC32C" && crcs.TryGetValue(path, out var crc))
            {
                // PostgreSQL writes the CRC's four bytes as they lie in memory (little-endian), in hex.
                var bytes = new byte[4];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes, crc);
                var found = Convert.ToHexStringLower(bytes);
                if (!string.Equals(found, checksum, StringComparison.OrdinalIgnoreCase))
                {
                    throw new BackupException($"{Core.Text.ServerText.Printable(path)} does not hold what its manifest says (CRC-32C {found}, the manifest {Core.Text.ServerText.Printable(checksum ?? "")}): altered or damaged");
                }

                checkedFiles++;
            }
        }

        var last = ranges[^1];
        return new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["files"] = files.Count,
            ["bytes"] = files.Sum(f => f.Size),
            ["checksummed_files"] = checkedFiles,
            ["timeline"] = last.Timeline,
            ["start_lsn"] = ranges[0].Start,
            ["end_lsn"] = last.End,
        };
    }

    /// <summary>The manifest's files and WAL ranges, after its own checksum (SHA-256 of everything before its last line) is checked.</summary>
    internal static (List<(string Path, long Size, string? Algorithm, string? Checksum)> Files, List<(long Timeline, long Start, long End)> Ranges) Manifest(byte[] manifest)
    {
        var marker = "\"Manifest-Checksum\""u8;
        var at = manifest.AsSpan().LastIndexOf(marker);
        if (at < 0)
        {
            throw new BackupException("the backup manifest has no Manifest-Checksum");
        }

        var actual = Convert.ToHexStringLower(SHA256.HashData(manifest.AsSpan(0, at)));
        List<(string, long, string?, string?)> files = [];
        List<(long, long, long)> ranges = [];
        try
        {
            using var json = JsonDocument.Parse(manifest);
            var root = json.RootElement;
            var recorded = root.GetProperty("Manifest-Checksum").GetString();
            if (!string.Equals(recorded, actual, StringComparison.Ordinal))
            {
                throw new BackupException($"the backup manifest's checksum is {Core.Text.ServerText.Printable(recorded ?? "")}, but its content hashes to {actual}: it was altered or cut");
            }

            foreach (var f in root.GetProperty("Files").EnumerateArray())
            {
                var path = f.GetProperty("Path").GetString() ?? throw new BackupException("a file of the backup manifest has no path");
                var size = f.GetProperty("Size").GetInt64();
                if (size < 0)
                {
                    throw new BackupException("a file of the backup manifest has a negative size");
                }

                files.Add((path, size, f.TryGetProperty("Checksum-Algorithm", out var a) ? a.GetString() : null, f.TryGetProperty("Checksum", out var c) ? c.GetString() : null));
            }

            foreach (var r in root.GetProperty("WAL-Ranges").EnumerateArray())
            {
                ranges.Add((r.GetProperty("Timeline").GetInt64(), PostgresPhysical.ParseLsn(r.GetProperty("Start-LSN").GetString() ?? ""),
                    PostgresPhysical.ParseLsn(r.GetProperty("End-LSN").GetString() ?? "")));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new BackupException($"the backup manifest is not one PostgreSQL writes: {e.Message}");
        }

        return ranges.Count == 0 ? throw new BackupException("the backup manifest names no WAL range") : (files, ranges);
    }

    internal static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}

/// <summary>
/// CRC-32C (Castagnoli), as PostgreSQL's backup manifests use it, on the CPU's instruction. Long inputs are cut in
/// three blocks whose CRCs run side by side (the instruction's throughput, not its latency: about three times faster),
/// then joined: a CRC is linear, so the state after A then B is A's state moved past |B| zero bytes (a multiplication by
/// x^(8|B|) modulo the polynomial) combined with B's from zero.
/// </summary>
internal static class Crc32C
{
    public const uint Initial = 0xFFFFFFFF;

    private const int Block = 8192;

    private const uint Polynomial = 0x82F63B78; // reflected

    /// <summary>x^(8·Block) modulo the polynomial: moves a state past one block.</summary>
    private static readonly uint PastOneBlock = XPower(8L * Block);

    private static readonly uint PastTwoBlocks = XPower(16L * Block);

    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 3 * Block)
        {
            var a = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data[..Block]);
            var b = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data.Slice(Block, Block));
            var c = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data.Slice(2 * Block, Block));
            uint ca = crc, cb = 0, cc = 0;
            for (var i = 0; i < a.Length; i++)
            {
                ca = System.Numerics.BitOperations.Crc32C(ca, a[i]);
                cb = System.Numerics.BitOperations.Crc32C(cb, b[i]);
                cc = System.Numerics.BitOperations.Crc32C(cc, c[i]);
            }

            crc = Multiply(ca, PastTwoBlocks) ^ Multiply(cb, PastOneBlock) ^ cc;
            data = data[(3 * Block)..];
        }

        while (data.Length >= 8)
        {
            crc = System.Numerics.BitOperations.Crc32C(crc, System.Runtime.InteropServices.MemoryMarshal.Read<ulong>(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = System.Numerics.BitOperations.Crc32C(crc, b);
        }

        return crc;
    }

    public static uint Final(uint crc) => crc ^ 0xFFFFFFFF;

    /// <summary>a·b modulo the polynomial, both reflected (x^0 is the top bit).</summary>
    private static uint Multiply(uint a, uint b)
    {
        uint product = 0;
        for (var m = 1u << 31; m != 0; m >>= 1)
        {
            if ((a & m) != 0)
            {
                product ^= b;
            }

            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }

        return product;
    }

    /// <summary>x^n modulo the polynomial, reflected, by squaring.</summary>
    private static uint XPower(long n)
    {
        uint result = 1u << 31, square = 1u << 30; // x^0, x^1
        for (; n > 0; n >>= 1)
        {
            if ((n & 1) != 0)
            {
                result = Multiply(result, square);
            }

            square = Multiply(square, square);
        }

        return result;
    }
}
