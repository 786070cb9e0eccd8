using System.Globalization;
using System.Net.Sockets;
using Backstop.Core.Plugins;
using Backstop.Sources.Scratch;

namespace Backstop.Sources.Redis;

/// <summary>
/// A Redis drill: <c>dump.rdb</c> is restored into a scratch folder (read through its format check), then a scratch
/// <c>redis-server</c> on a free loopback port loads it (the load phase: a real recovery starts a server on the file);
/// the keys and databases that server holds are compared with the snapshot's. Nothing is saved by that server.
/// </summary>
internal sealed class RedisDrill(string name, RedisOptions options) : IDrillable
{
    public string? ThrowawayServer => "a scratch redis-server";

    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var server = ScratchServerDrill.Resolve(name, "loads the RDB into a scratch redis-server", "redis-server", null, "redis-server");
        var version = Version(await ScratchServerDrill.VersionAsync(server, cancellationToken).ConfigureAwait(false));
        // The scratch server runs as backstop-drill (when Backstop is root): an RDB is hostile until proven otherwise.
        var user = await ScratchServer.DrillUserAsync(cancellationToken).ConfigureAwait(false);
        var folder = ScratchFolders.ReachableBy(scope, user, "redis");
        var port = 0;
        // Loopback is open to every local user while the drill runs: the scratch server asks for a password of its
        // own, given in a 0600 config file of the server's user (never argv, which ps shows).
        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        var conf = Path.Combine(folder, "redis.conf");
        ScratchFolders.WriteSecret(conf, $"requirepass {password}");

        async Task<RespClient> ConnectAsync(TimeSpan timeout, CancellationToken c)
        {
            var client = await RespClient.ConnectAsync("127.0.0.1", port, timeout, c).ConfigureAwait(false);
            try
            {
                await client.CommandAsync(c, "AUTH", password).ConfigureAwait(false);
                return client;
            }
            catch
            {
                await client.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        async Task<bool> ReadyAsync(CancellationToken c)
        {
            try
            {
                await using var redis = await ConnectAsync(TimeSpan.FromSeconds(2), c).ConfigureAwait(false);
                var persistence = await redis.CommandAsync(c, "INFO", "persistence").ConfigureAwait(false) ?? "";
                // "loading:0" as a whole line: Redis 7 also has "async_loading:0", which says nothing about the RDB.
                return persistence.Split('\n').Any(l => l.Trim() == "loading:0");
            }
            catch (Exception e) when (e is SocketException or IOException or RedisErrorException)
            {
                return false; // not listening yet, or still loading
            }
        }

        return ScratchServerDrill.Loading($"a scratch redis-server {version} loading {folder}/{RedisSource.Artifact}", folder,
            new Dictionary<string, string> { ["redis-server"] = $"{server} {version}" }, start: ct =>
            {
                ScratchServer.GiveTo(user, folder); // the restored RDB and the config, to the server's user
                port = ScratchServer.FreePort();
                // Started as a replica (of a port nothing listens on): a primary drops keys whose TTL passed while it loads the
                // RDB, and the snapshot's count has them; a replica loads every key the file holds.
                var nowhere = ScratchServer.FreePort();
                return ScratchServer.StartAsync(scope, "redis-server", server,
                    [conf, "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", folder, "--dbfilename", RedisSource.Artifact,
                     "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", "--logfile", "",
                     "--replicaof", "127.0.0.1", nowhere.ToString(CultureInfo.InvariantCulture)],
                    user, ReadyAsync, options.Timeout, ct);
            }, check: async ct =>
            {
                await using var redis = await ConnectAsync(TimeSpan.FromSeconds(15), ct).ConfigureAwait(false);
                var keyspace = await redis.CommandAsync(ct, "INFO", "keyspace").ConfigureAwait(false) ?? "";
                long keys = 0, databases = 0;
                var perDb = new List<string>();
                foreach (var line in keyspace.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("db", StringComparison.Ordinal) && l.Contains(':', StringComparison.Ordinal)))
                {
                    var count = long.Parse(line.Split(':')[1].Split(',').First(f => f.StartsWith("keys=", StringComparison.Ordinal))[5..], CultureInfo.InvariantCulture);
                    keys += count;
                    databases++;
                    perDb.Add($"{line.Split(':')[0]}={count}");
                }

                scope.Note($"the scratch redis-server holds {(perDb.Count == 0 ? "no keys" : string.Join(", ", perDb))}");
                return ScratchServerDrill.Compare(scope, RedisSource.Artifact, "the scratch redis-server", ("keys", keys), ("databases", databases));
            });
    }

    /// <summary>The version in what <c>redis-server --version</c> prints ("Redis server v=7.0.15 sha=…").</summary>
    private static string Version(string text) =>
        text.Split(' ').FirstOrDefault(w => w.StartsWith("v=", StringComparison.Ordinal)) is { } v ? v[2..] : text;
}
