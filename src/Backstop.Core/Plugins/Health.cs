namespace Backstop.Core.Plugins;

public enum FindingStatus
{
    Ok,
    Warn,
    Fail,
}

/// <summary>One line of <c>doctor</c>: which check, about what, its verdict, what it found, and how to fix it.</summary>
public sealed record Finding(string Check, string Subject, FindingStatus Status, string Message, string? Fix = null);

/// <summary>
/// The databases a server holds and those a source backs up from it (null: all), keyed by the server
/// (<c>postgres 10.0.0.5:5432</c>), so that <c>doctor</c> names the databases no source covers.
/// </summary>
public sealed record ServerInventory(string Server, IReadOnlyList<string> Databases, IReadOnlyList<string>? Covered)
{
    /// <summary>What the items are, for doctor's words ("database", "repository", "namespace"…).</summary>
    public string Noun { get; init; } = "database";

    /// <summary>The source key that lists them, for doctor's fix ("databases", "repositories", "pvcs"…).</summary>
    public string Key { get; init; } = "databases";
}

/// <summary>Where a source's data lives: a host (null when it is files on this host) and local paths, for the single-point-of-failure check.</summary>
public sealed record SourcePlace(string? Host, IReadOnlyList<string> Paths);

/// <summary>What a source kind can say about the health of what its backups depend on, beyond its preflight.</summary>
public interface IHealthChecked
{
    /// <summary>Replication and the like: replicas present, streaming, of the same cluster, not lagging.</summary>
    Task<IReadOnlyList<Finding>> CheckHealthAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<Finding>>([]);

    /// <summary>The server's databases and which of them this source covers; null when the kind has no databases.</summary>
    Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken) => Task.FromResult<ServerInventory?>(null);

    /// <summary>Every inventory the kind keeps (a cluster has namespaces and volume claims); by default the one above.</summary>
    async Task<IReadOnlyList<ServerInventory>> InventoriesAsync(CancellationToken cancellationToken) =>
        await InventoryAsync(cancellationToken).ConfigureAwait(false) is { } one ? [one] : [];

    /// <summary>Where the source's data lives.</summary>
    SourcePlace Place { get; }
}

/// <summary>A target that can tell the time its server keeps (S3 signs requests with it: a skewed clock fails them).</summary>
public interface IServerClock
{
    Task<DateTimeOffset?> ServerTimeAsync(CancellationToken cancellationToken);
}
