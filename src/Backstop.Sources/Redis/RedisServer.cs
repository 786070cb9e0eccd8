using System.Net.Sockets;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Redis;

/// <summary>The source's Redis server as the parts of the redis kind reach it: where, and a connection that has signed in.</summary>
internal sealed class RedisServer(string name, RedisOptions options)
{
    /// <summary>The source (named in every message).</summary>
    public string Source => name;

    public RedisOptions Options => options;

    public string Where => $"{options.Host}:{options.Port}";

    public async Task<RespClient> ConnectAsync(CancellationToken ct)
    {
        RespClient redis;
        try
        {
            redis = await RespClient.ConnectAsync(options.Host, options.Port, TimeSpan.FromSeconds(15), ct).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new BackupException(e.SocketErrorCode == SocketError.ConnectionRefused
                ? $"source '{name}': connection to Redis at {Where} refused: is the server running and listening there?"
                : $"source '{name}': cannot connect to Redis at {Where}: {e.Message}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new BackupException($"source '{name}': connection to Redis at {Where} timed out: check the address and the firewall");
        }

        try
        {
            if (options.Password is { } p)
            {
                var secret = p.Resolve();
                await CommandAsync(redis, ct, options.User is { } user ? ["AUTH", user, secret] : ["AUTH", secret]).ConfigureAwait(false);
            }

            await CommandAsync(redis, ct, "PING").ConfigureAwait(false);
            return redis;
        }
        catch
        {
            await redis.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<string?> CommandAsync(RespClient redis, CancellationToken ct, params string[] args)
    {
        try
        {
            return await redis.CommandAsync(ct, args).ConfigureAwait(false);
        }
        catch (RedisErrorException e)
        {
            var verb = args[0];
            throw new BackupException(e.Message switch
            {
                var m when m.StartsWith("WRONGPASS", StringComparison.Ordinal) || m.Contains("invalid password", StringComparison.Ordinal) =>
                    $"source '{name}': authentication to Redis at {Where} failed: check 'password' (and 'user')",
                var m when m.StartsWith("NOAUTH", StringComparison.Ordinal) => $"source '{name}': Redis at {Where} requires a password: set 'password'",
                var m => $"source '{name}': Redis at {Where} answered {verb} with: {m}",
            });
        }
        catch (IOException e)
        {
            throw new BackupException($"source '{name}': Redis at {Where}: {e.Message}");
        }
    }
}
