using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Databases;
using Backstop.Sources.Processes;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Redis;

public sealed record RedisOptions(string Host, int Port, string? User, SecretRef? Password, TimeSpan Timeout)
{
    /// <summary><c>replication:</c> what <c>doctor</c> requires of the replicas.</summary>
    public Replication? Replication { get; init; }
}

/// <summary>
/// A Redis server, captured the way a replica is: the replication handshake (<c>SYNC</c>) streams the RDB straight
/// into the artifact <c>dump.rdb</c>, in both the sized and the diskless (EOF-marked) form. Facts from
/// <c>INFO keyspace</c>; the RDB is checked while it streams (magic, version, EOF opcode, CRC64).
/// </summary>
public sealed class RedisSourceKind : SourceKind<RedisOptions>
{
    public override string Kind => "redis";

    public override string Summary => "A Redis server: `dump.rdb`, fetched with the replication protocol (redis-cli --rdb).";

    public override string RestoreTo => "a folder";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("host", "cache.internal", "The server's host name or address"),
        new("port", "6379", "Its port"),
        new("user", "backup", "An ACL user (Redis 6+)") { Default = "default" },
        new("password", "env:REDIS_PASSWORD", "Its password (AUTH); only ever sent to the server") { Default = "none" },
        new("timeout", "1h", "The most fetching the RDB may take"),
        .. Replication.Keys,
    ];

    public override IReadOnlyList<string> Facts { get; } = ["keys", "databases"];

    public override IReadOnlyList<string> CountFacts { get; } = ["keys"];

    public override RedisOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var timeout = map.Timeout("timeout", TimeSpan.FromHours(1));

        return new RedisOptions(map.StringOr("host", "127.0.0.1"), map.IntOr("port", 6379, 1, 65535), map.String("user"), map.Secret("password"), timeout)
        {
            Replication = Replication.Parse(map),
        };
    }

    public override ISource Create(SourceDefinition definition, RedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var redis = new RedisServer(definition.Name, options);
        return new RedisSource(redis, new RedisDrill(definition.Name, options), new RedisHealth(redis), definition.StateDirectory);
    }
}

internal sealed partial class RedisSource(RedisServer server, RedisDrill drill, RedisHealth health, string stateDirectory = "") : ISource, IStagedRestorable
{
    public T? Capability<T>() where T : class => drill as T ?? health as T ?? this as T;

    /// <summary>The run's staging folder while capturing (the format check spools the RDB there for redis-check-rdb).</summary>
    private string? _staging;

    /// <summary>Writes <c>dump.rdb</c> into a folder (for a redis-server started with that --dir), checked as it was stored.</summary>
    public Task<StagedRestore> StageAsync(string artifactName, Stream content, string destination, bool force, CancellationToken cancellationToken) =>
        RestoreDestination.CheckedFileInFolderAsync(destination, Artifact, force, content, Validator(), cancellationToken);

    /// <summary>redis-check-rdb, the stock tool that reads every key of an RDB, when it is installed (redis-tools).</summary>
    private static string? CheckTool()
    {
        try
        {
            return ChildProcess.ResolveTool("redis-check-rdb");
        }
        catch (BackupException)
        {
            return null;
        }
    }

    private RdbValidator Validator() =>
        CheckTool() is { } tool && (_staging ?? (stateDirectory.Length > 0 ? stateDirectory : null)) is { } folder
            ? new RdbValidator(tool, folder, isPrivate: _staging is null)
            : new RdbValidator();

    internal const string Artifact = "dump.rdb";

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        await using var redis = await server.ConnectAsync(cancellationToken).ConfigureAwait(false);
        var info = await server.CommandAsync(redis, cancellationToken, "INFO", "server").ConfigureAwait(false) ?? "";
        var version = info.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("redis_version:", StringComparison.Ordinal))?[14..] ?? "?";
        return new SourcePreflight(new Dictionary<string, string> { ["redis-server"] = version }, 0);
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        await using var redis = await server.ConnectAsync(cancellationToken).ConfigureAwait(false);
        _staging = sink.StagingDirectory;
        var keyspace = await server.CommandAsync(redis, cancellationToken, "INFO", "keyspace").ConfigureAwait(false) ?? "";
        long keys = 0, databases = 0;
        foreach (var line in keyspace.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("db", StringComparison.Ordinal) && l.Contains(':', StringComparison.Ordinal)))
        {
            var fields = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(',');
            keys += long.Parse(fields.First(f => f.StartsWith("keys=", StringComparison.Ordinal))[5..], CultureInfo.InvariantCulture);
            databases++;
        }

        await using var artifact = await sink.BeginArtifactAsync(Artifact, cancellationToken).ConfigureAwait(false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(server.Options.Timeout);
        try
        {
            await SyncAsync(redis, artifact.Content, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackupException($"source '{server.Source}': the RDB transfer from {server.Where} did not finish within {Quantities.FormatDuration(server.Options.Timeout)}");
        }
        catch (IOException e)
        {
            throw new BackupException($"source '{server.Source}': the RDB transfer from {server.Where} broke off: {e.Message}");
        }

        // With redis-check-rdb the keys and databases are read from the RDB itself (INFO was taken before the fork, and a
        // busy server moves on); without it, INFO's figures are recorded, marked reported.
        await artifact.CompleteAsync(CheckTool() is null ? new Dictionary<string, long> { ["keys"] = keys, ["databases"] = databases } : [],
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>SYNC, then the payload: <c>$&lt;length&gt;</c> followed by that many bytes, or <c>$EOF:&lt;mark&gt;</c> followed by bytes up to the mark.</summary>
    private async Task SyncAsync(RespClient redis, Stream output, CancellationToken ct)
    {
        await redis.SendAsync(ct, "SYNC").ConfigureAwait(false);
        string header;
        do
        {
            header = await redis.ReadLineAsync(ct).ConfigureAwait(false); // empty lines: keepalives while the server forks
        }
        while (header.Length == 0);

        if (header.StartsWith('-'))
        {
            var hint = header.StartsWith("-NOPERM", StringComparison.Ordinal)
                ? $": the backup needs the replication command; grant it with ACL SETUSER {server.Options.User ?? "default"} +sync (or +@admin)"
                : "";
            throw new BackupException($"source '{server.Source}': Redis at {server.Where} refused SYNC: {header[1..]}{hint}");
        }

        if (!header.StartsWith('$'))
        {
            throw new BackupException($"source '{server.Source}': unexpected answer to SYNC from {server.Where}: {header[..Math.Min(40, header.Length)]}");
        }

        var buffer = new byte[1 << 17];
        if (header.StartsWith("$EOF:", StringComparison.Ordinal))
        {
            await CopyUntilMarkAsync(redis.Stream, output, Encoding.ASCII.GetBytes(header[5..]), buffer, ct).ConfigureAwait(false);
            return;
        }

        var remaining = long.Parse(header.AsSpan(1), CultureInfo.InvariantCulture);
        while (remaining > 0)
        {
            var n = await redis.Stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"the connection closed with {remaining} bytes of the RDB still to come");
            }

            await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            remaining -= n;
        }
    }

    /// <summary>The diskless form: everything up to the 40-byte end mark (which may be followed by replication traffic).</summary>
    private static async Task CopyUntilMarkAsync(Stream input, Stream output, byte[] mark, byte[] buffer, CancellationToken ct)
    {
        var window = new byte[buffer.Length + mark.Length];
        var held = 0; // bytes kept back because they may be the start of the mark
        while (true)
        {
            var n = await input.ReadAsync(buffer, ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException("the connection closed before the RDB's end mark");
            }

            buffer.AsSpan(0, n).CopyTo(window.AsSpan(held));
            var length = held + n;
            var at = window.AsSpan(0, length).IndexOf(mark);
            if (at >= 0)
            {
                await output.WriteAsync(window.AsMemory(0, at), ct).ConfigureAwait(false);
                return;
            }

            var safe = Math.Max(0, length - (mark.Length - 1));
            await output.WriteAsync(window.AsMemory(0, safe), ct).ConfigureAwait(false);
            held = length - safe;
            window.AsSpan(safe, held).CopyTo(window);
        }
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => Validator();

    public string RestoreRecipe(string artifactName, string storedFile) =>
        $"mkdir -p DEST && zstd -d < {storedFile} > DEST/dump.rdb && redis-check-rdb DEST/dump.rdb  # then: redis-server --dir DEST --appendonly no";

    /// <summary>
    /// An RDB file: <c>REDIS</c> and a 4-digit version, the EOF opcode (0xFF), and the CRC64 of everything before it.
    /// With <c>redis-check-rdb</c> (the stock tool), the bytes are also spooled (0600) and read key by key by it: the keys
    /// and databases are then facts of the content, not of INFO.
    /// </summary>
    internal sealed partial class RdbValidator(string? checkTool = null, string? folder = null, bool isPrivate = false) : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            if (checkTool is null || folder is null)
            {
                return await CheckAsync(content, null, cancellationToken).ConfigureAwait(false);
            }

            return await CheckSpool.RunAsync(folder, isPrivate, ".rdb", spool => CheckAsync(content, spool, cancellationToken), async path =>
            {
                using var report = new MemoryStream();
                try
                {
                    await ChildProcess.RunToStreamAsync(checkTool, [path], new Dictionary<string, string>(), folder, report, TimeSpan.FromHours(1),
                        "redis-check-rdb", cancellationToken).ConfigureAwait(false);
                }
                catch (BackupException e) when (e is not CheckToolException)
                {
                    // The RDB's own checks (magic, EOF, CRC64) passed above: a tool that refuses it is too old or broken.
                    throw new CheckToolException($"{checkTool} refused an RDB whose own checks pass (older than the server's RDB version?): {e.Message}");
                }

                var lines = Encoding.UTF8.GetString(report.ToArray()).Split('\n');
                var keys = lines.Select(l => KeysRead().Match(l)).FirstOrDefault(m => m.Success)
                           ?? throw new CheckToolException("redis-check-rdb did not say how many keys it read");
                return (IReadOnlyDictionary<string, long>)new Dictionary<string, long>
                {
                    ["keys"] = long.Parse(keys.Groups[1].Value, CultureInfo.InvariantCulture),
                    ["databases"] = lines.Count(l => l.Contains("] Selecting DB ID ", StringComparison.Ordinal)),
                };
            }).ConfigureAwait(false);
        }

        [System.Text.RegularExpressions.GeneratedRegex(@"^\[info\] (\d+) keys read")]
        private static partial System.Text.RegularExpressions.Regex KeysRead();

        /// <summary>Magic, EOF opcode and CRC64 while streaming, each block also written to <paramref name="copy"/> when given.</summary>
        private static async Task<IReadOnlyDictionary<string, long>> CheckAsync(Stream content, Stream? copy, CancellationToken cancellationToken)
        {
            var buffer = new byte[1 << 17];
            var tail = new byte[9];
            var joinedBuffer = new byte[18];
            var tailLength = 0;
            ulong crc = 0;
            long total = 0;
            var header = new byte[9];
            var headerLength = 0;
            int n;
            while ((n = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (copy is not null)
                {
                    await copy.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }

                var chunk = buffer.AsSpan(0, n);
                if (headerLength < 9)
                {
                    var take = Math.Min(9 - headerLength, n);
                    chunk[..take].CopyTo(header.AsSpan(headerLength));
                    headerLength += take;
                }

                // Everything but the last 8 bytes goes into the CRC: hold back a 9-byte tail (EOF opcode + CRC).
                if (n >= 9)
                {
                    crc = Crc64.Update(crc, tail.AsSpan(0, tailLength));
                    crc = Crc64.Update(crc, chunk[..(n - 9)]);
                    chunk[(n - 9)..].CopyTo(tail);
                    tailLength = 9;
                }
                else
                {
                    var joined = joinedBuffer.AsSpan();
                    tail.AsSpan(0, tailLength).CopyTo(joined);
                    chunk.CopyTo(joined[tailLength..]);
                    var length = tailLength + n;
                    var release = Math.Max(0, length - 9);
                    crc = Crc64.Update(crc, joined[..release]);
                    joined[release..length].CopyTo(tail);
                    tailLength = length - release;
                }

                total += n;
            }

            if (headerLength < 9 || !header.AsSpan(0, 5).SequenceEqual("REDIS"u8) || !header.AsSpan(5, 4).ToArray().All(b => char.IsAsciiDigit((char)b)))
            {
                throw new BackupException("not an RDB file: it does not start with REDIS and a 4-digit version");
            }

            if (tailLength < 9 || tail[0] != 0xFF)
            {
                throw new BackupException($"the RDB file ({total} bytes) does not end with its EOF opcode: it is cut short");
            }

            crc = Crc64.Update(crc, tail.AsSpan(0, 1));
            var stored = BinaryPrimitives.ReadUInt64LittleEndian(tail.AsSpan(1));
            if (stored != 0 && stored != crc)
            {
                throw new BackupException($"the RDB file's CRC64 does not match (stored {stored:x16}, computed {crc:x16})");
            }

            return new Dictionary<string, long>();
        }
    }
}
