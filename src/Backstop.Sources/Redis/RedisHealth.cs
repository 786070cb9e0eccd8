using System.Globalization;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Redis;

/// <summary>
/// <c>doctor</c> for Redis: <c>replication: {min_replicas: N, max_lag: 10s}</c> against <c>INFO replication</c> on the
/// source (replicas connected and online, how far behind).
/// </summary>
internal sealed class RedisHealth(RedisServer server) : IHealthChecked
{
    public SourcePlace Place => new(server.Options.Host, []);

    public async Task<IReadOnlyList<Finding>> CheckHealthAsync(CancellationToken cancellationToken)
    {
        if (server.Options.Replication is not { } want)
        {
            return [];
        }

        await using var redis = await server.ConnectAsync(cancellationToken).ConfigureAwait(false);
        var info = (await server.CommandAsync(redis, cancellationToken, "INFO", "replication").ConfigureAwait(false) ?? "").Split('\n').Select(l => l.Trim()).ToList();
        var subject = $"source '{server.Source}' ({server.Where})";
        var role = info.FirstOrDefault(l => l.StartsWith("role:", StringComparison.Ordinal))?[5..];
        if (role != "master")
        {
            return [new Finding("replication", subject, FindingStatus.Fail, $"the source is a {role ?? "server of unknown role"}, not a primary with replicas",
                "point the source at the primary, or remove replication: from it")];
        }

        // slave0:ip=10.0.0.6,port=6379,state=online,offset=1234,lag=0
        var replicas = info.Where(l => l.StartsWith("slave", StringComparison.Ordinal) && l.Contains(":ip=", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(',').Select(kv => kv.Split('=', 2)).Where(kv => kv.Length == 2)
                .ToDictionary(kv => kv[0], kv => kv[1], StringComparer.Ordinal)).ToList();
        var online = replicas.Where(r => r.GetValueOrDefault("state") == "online").ToList();
        var described = string.Join(", ", replicas.Select(r => $"{r.GetValueOrDefault("ip")}:{r.GetValueOrDefault("port")} {r.GetValueOrDefault("state")} lag {r.GetValueOrDefault("lag")}s"));
        var findings = new List<Finding>
        {
            online.Count >= want.MinReplicas
                ? new Finding("replication", subject, FindingStatus.Ok, $"{online.Count} replica(s) online: {described}")
                : new Finding("replication", subject, FindingStatus.Fail,
                    $"{online.Count} replica(s) online, min_replicas is {want.MinReplicas}{(replicas.Count > 0 ? ": " + described : "; none is connected")}",
                    "start the replicas and check their replicaof/masterauth settings"),
        };
        if (want.MaxLag is { } max && online.Where(r => long.TryParse(r.GetValueOrDefault("lag"), NumberStyles.None, CultureInfo.InvariantCulture, out var lag) && lag > max.TotalSeconds)
                .ToList() is { Count: > 0 } behind)
        {
            findings.Add(new Finding("replication", subject, FindingStatus.Fail,
                $"replica(s) behind by more than max_lag {Core.Config.Quantities.FormatDuration(max)}: {string.Join(", ", behind.Select(r => $"{r.GetValueOrDefault("ip")}:{r.GetValueOrDefault("port")} {r.GetValueOrDefault("lag")}s"))}",
                "check the replicas' network and load"));
        }

        return findings;
    }
}
