using Backstop.Core.Plugins;

namespace Backstop.Core.Drill;

/// <summary>Where one artifact of a drill was restored from: the target whose copy proved its hash, and the copies passed over.</summary>
public sealed record DrillCopy(string Artifact, string Target, IReadOnlyList<string> Skipped);

/// <summary>
/// One drill, as <c>drill --json</c> prints it and the evidence file keeps it. <see cref="Seconds"/> is the measured
/// RTO: the restore (fetch and hash, decrypt and decompress, load) and the checks, wall clock, without setting up the
/// scratch place (<see cref="Phases"/>' <c>setup</c>) or removing it (<c>teardown</c>).
/// </summary>
public sealed record DrillResult(
    string Source,
    string Kind,
    string? Snapshot,
    DateTimeOffset At,
    bool Passed,
    double Seconds,
    long? RtoSeconds,
    bool? RtoMet,
    IReadOnlyDictionary<string, double> Phases,
    IReadOnlyList<DrillCheck> Checks,
    string? Error)
{
    /// <summary>What the scratch place was (a folder, a throwaway server on a port).</summary>
    public string? Scratch { get; init; }

    public IReadOnlyList<DrillCopy> Copies { get; init; } = [];

    /// <summary>What the drill noticed that is not a check (facts not compared, copies passed over, a leftover swept).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Tools used, name → "path version".</summary>
    public IReadOnlyDictionary<string, string> Tools { get; init; } = new Dictionary<string, string>();

    /// <summary>The evidence file (JSON; a Markdown report beside it with the same name).</summary>
    public string? Evidence { get; init; }

    public string Host { get; init; } = Environment.MachineName;

    /// <summary>The snapshot whose every copy this drill proved bad (latest then falls back past it); not part of the evidence.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Unrestorable { get; init; }

    /// <summary>Newer snapshots that latest passed over, having no good copy (oldest first); not part of the evidence.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public IReadOnlyList<string> PassedOver { get; init; } = [];
}
