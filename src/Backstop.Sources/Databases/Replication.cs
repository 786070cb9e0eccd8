using System.Globalization;
using Backstop.Core.Config;

namespace Backstop.Sources.Databases;

/// <summary>
/// <c>replication: {min_replicas: N, max_lag: 5m, replicas: [host:port…]}</c> on a postgres or redis source: what
/// <c>doctor</c> requires. At least N replicas streaming from the source, none further behind than max_lag; each
/// listed replica checked from its own side (postgres: in recovery, the same cluster, streaming, the same tables).
/// </summary>
public sealed record Replication(int MinReplicas, TimeSpan? MaxLag, IReadOnlyList<(string Host, int Port)> Replicas)
{
    /// <summary>The <c>replication:</c> keys, for the configuration reference.</summary>
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("replication.min_replicas", "1", "Replicas that must be streaming from the source (doctor)"),
        new("replication.max_lag", "5m", "The most a replica may be behind") { Default = "no limit" },
        new("replication.replicas", "[\"10.0.0.6:5432\"]", "Replicas (host:port) that doctor checks from their own side"),
    ];

    public static Replication? Parse(ConfigMap source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Map("replication") is not { } map)
        {
            return null;
        }

        var min = map.IntOr("min_replicas", 1, 0, 100);
        var lag = map.Duration("max_lag");
        var replicas = new List<(string, int)>();
        foreach (var r in map.StringList("replicas") ?? [])
        {
            var colon = r.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(r[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw map.Error("replicas", $"'{r}' is not host:port, like 10.0.0.6:5432");
            }

            replicas.Add((r[..colon].Trim('[', ']'), port));
        }

        map.EnsureAllKeysKnown("replication keys are: min_replicas, max_lag, replicas");
        return new Replication(min, lag, replicas);
    }
}
