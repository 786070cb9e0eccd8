using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Backstop.Core.Plugins;
using Backstop.Sources.Common;

namespace Backstop.Sources.Postgres;

/// <summary>
/// <c>mode: physical</c>: a base backup of the whole cluster, <c>pg_basebackup -Ft -D - -X none</c> streamed through the
/// pipeline as one artifact (<c>base.tar</c>) with PostgreSQL's backup manifest inside it. A server with tablespaces
/// besides pg_default and pg_global is refused (<c>-D -</c> streams one tar). The WAL is not in it: a base backup
/// becomes a consistent cluster with the segments from its start to its end LSN (continuous archiving).
/// </summary>
internal sealed partial class PostgresSource : IContinuousArchive
{
    internal const string BaseArtifact = "base.tar";

    /// <summary>
    /// A file PostgreSQL hands <c>archive_command</c>: a WAL segment (<c>TTTTTTTTLLLLLLLLSSSSSSSS</c>, its size the
    /// cluster's segment size), a partial segment (<c>….partial</c>, left by a promotion), a timeline history
    /// (<c>TTTTTTTT.history</c>) or a backup history file (<c>….XXXXXXXX.backup</c>). Folder: its timeline. Anything else
    /// is refused: the name becomes a key on the targets.
    /// </summary>
    public ArchiveItem Identify(string fileName, long size)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        if (!options.Physical)
        {
            throw new Core.Config.ConfigException($"source '{name}' is mode: dump; a WAL archive belongs to a source with mode: physical");
        }

        var m = WalName().Match(fileName);
        if (!m.Success)
        {
            throw new BackupException($"wal-push: '{Core.Util.ServerText.Printable(fileName)}' is not a WAL segment, partial segment, history or backup history file name");
        }

        var timeline = m.Groups["tli"].Value;
        if (m.Groups["log"].Success && !m.Groups["backup"].Success)
        {
            // A segment: its size is the cluster's segment size (a power of two, 1 MiB to 1 GiB), which places it.
            var whole = !m.Groups["partial"].Success;
            if (whole && (size < 1 << 20 || size > 1 << 30 || (size & (size - 1)) != 0))
            {
                throw new BackupException($"wal-push: {fileName} is {size} bytes, which is no WAL segment size (a power of two from 1 MiB to 1 GiB)");
            }

            var segmentSize = whole ? size : 16L << 20;
            var log = long.Parse(m.Groups["log"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var seg = long.Parse(m.Groups["seg"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var start = (log << 32) + seg * segmentSize;
            return new ArchiveItem(timeline, fileName, start, start + segmentSize);
        }

        return new ArchiveItem(timeline, fileName, 0, 0);
    }

    [System.Text.RegularExpressions.GeneratedRegex(
        "^(?<tli>[0-9A-F]{8})(?:(?<log>[0-9A-F]{8})(?<seg>[0-9A-F]{8})(?:(?<partial>\\.partial)|(?<backup>\\.[0-9A-F]{8}\\.backup))?|\\.history)$")]
    private static partial System.Text.RegularExpressions.Regex WalName();

    /// <summary>pg_basebackup resolved (at least the server's major version), and the server reached.</summary>
    private async Task<SourcePreflight> PreflightPhysicalAsync(CancellationToken cancellationToken)
    {
        var tool = PostgresTools.ResolveOneAsync(name, "pg_basebackup", options.Tools, cancellationToken);
        await using var db = await ConnectAsync("postgres", cancellationToken).ConfigureAwait(false);
        var (path, major, version) = await tool.ConfigureAwait(false);
        _serverMajor = (int)(Convert.ToInt64(await ScalarAsync(db, "SHOW server_version_num", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) / 10000);
        if (major < _serverMajor)
        {
            throw new BackupException(
                $"source '{name}': the server at {Where} is PostgreSQL {_serverMajor}, newer than {path} ({version}); install postgresql-client-{_serverMajor} or set tools.pg_basebackup");
        }

        _basebackup = path;
        return new SourcePreflight(new Dictionary<string, string>
        {
            ["pg_basebackup"] = $"{path} {version}",
            ["postgresql-server"] = _serverMajor.ToString(CultureInfo.InvariantCulture),
        }, 0);
    }

    private async Task CapturePhysicalAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        var basebackup = _basebackup ?? throw new InvalidOperationException("preflight first");
        long databases, tables = 0;
        await using (var db = await ConnectAsync("postgres", cancellationToken).ConfigureAwait(false))
        {
            var walLevel = Convert.ToString(await ScalarAsync(db, "SHOW wal_level", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            if (walLevel is "minimal")
            {
                throw new BackupException($"source '{name}': the server at {Where} has wal_level = minimal: a base backup needs replica (set wal_level = replica and restart it)");
            }

            var spaces = await ListAsync(db, "SELECT spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname", cancellationToken)
                .ConfigureAwait(false);
            if (spaces.Count > 0)
            {
                throw new BackupException(
                    $"source '{name}': the server at {Where} has tablespace(s) {string.Join(", ", spaces)} besides pg_default: a physical backup streams one tar, " +
                    "so it takes clusters with their data in the data folder only; move them (ALTER TABLE … SET TABLESPACE pg_default) or back this server up with mode: dump");
            }

            var names = await ListAsync(db, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname", cancellationToken).ConfigureAwait(false);
            databases = names.Count;
            foreach (var database in names)
            {
                await using var each = await ConnectAsync(database, cancellationToken).ConfigureAwait(false);
                tables += Convert.ToInt64(await ScalarAsync(each,
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') " +
                    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'", cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
            }
        }

        await using var artifact = await sink.BeginArtifactAsync(BaseArtifact, cancellationToken).ConfigureAwait(false);
        await ChildProcess.RunToStreamAsync(basebackup,
            ["-D", "-", "-Ft", "-X", "none", "--checkpoint=fast", "--label=backstop", "--no-password", "-d", Conninfo.Of(options.Host, options.Port, options.User, null)],
            Environment(), "/", artifact.Content, options.Timeout, $"source '{name}': pg_basebackup at {Where}", cancellationToken).ConfigureAwait(false);

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
            : throw new FormatException($"'{Core.Util.ServerText.Printable(lsn)}' is not an LSN");
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
        byte[]? manifest = null;
        var label = false;
        while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
        {
            var path = entry.Name.StartsWith("./", StringComparison.Ordinal) ? entry.Name[2..] : entry.Name;
            if (entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile)
            {
                sizes[path] = entry.Length;
                if (path == "backup_manifest")
                {
                    manifest = await Core.Util.ServerText.ReadAtMostAsync(entry.DataStream ?? Stream.Null, ManifestLimit,
                        () => new BackupException($"its backup_manifest is larger than {ManifestLimit >> 20} MiB"), cancellationToken).ConfigureAwait(false);
                }
                else if (path == "backup_label")
                {
                    label = true;
                }
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
        foreach (var (path, size) in files)
        {
            if (!sizes.TryGetValue(path, out var inTar))
            {
                throw new BackupException($"the backup manifest lists {Core.Util.ServerText.Printable(path)}, which the base backup does not hold");
            }

            if (inTar != size)
            {
                throw new BackupException($"{Core.Util.ServerText.Printable(path)} is {inTar} bytes in the base backup; its manifest says {size}");
            }
        }

        var last = ranges[^1];
        return new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["files"] = files.Count,
            ["bytes"] = files.Sum(f => f.Size),
            ["timeline"] = last.Timeline,
            ["start_lsn"] = ranges[0].Start,
            ["end_lsn"] = last.End,
        };
    }

    /// <summary>The manifest's files and WAL ranges, after its own checksum (SHA-256 of everything before its last line) is checked.</summary>
    internal static (List<(string Path, long Size)> Files, List<(long Timeline, long Start, long End)> Ranges) Manifest(byte[] manifest)
    {
        var marker = "\"Manifest-Checksum\""u8;
        var at = manifest.AsSpan().LastIndexOf(marker);
        if (at < 0)
        {
            throw new BackupException("the backup manifest has no Manifest-Checksum");
        }

        var actual = Convert.ToHexStringLower(SHA256.HashData(manifest.AsSpan(0, at)));
        List<(string, long)> files = [];
        List<(long, long, long)> ranges = [];
        try
        {
            using var json = JsonDocument.Parse(manifest);
            var root = json.RootElement;
            var recorded = root.GetProperty("Manifest-Checksum").GetString();
            if (!string.Equals(recorded, actual, StringComparison.Ordinal))
            {
                throw new BackupException($"the backup manifest's checksum is {Core.Util.ServerText.Printable(recorded ?? "")}, but its content hashes to {actual}: it was altered or cut");
            }

            foreach (var f in root.GetProperty("Files").EnumerateArray())
            {
                var path = f.GetProperty("Path").GetString() ?? throw new BackupException("a file of the backup manifest has no path");
                var size = f.GetProperty("Size").GetInt64();
                if (size < 0)
                {
                    throw new BackupException("a file of the backup manifest has a negative size");
                }

                files.Add((path, size));
            }

            foreach (var r in root.GetProperty("WAL-Ranges").EnumerateArray())
            {
                ranges.Add((r.GetProperty("Timeline").GetInt64(), PostgresSource.ParseLsn(r.GetProperty("Start-LSN").GetString() ?? ""),
                    PostgresSource.ParseLsn(r.GetProperty("End-LSN").GetString() ?? "")));
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
