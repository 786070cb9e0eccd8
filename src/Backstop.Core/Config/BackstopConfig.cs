namespace Backstop.Core.Config;

/// <summary>The whole configuration, validated: every path absolute, every quantity parsed.</summary>
public sealed record BackstopConfig(
    string File,
    string CatalogPath,
    string StagingPath,
    Policy Policy,
    CompressionOptions Compression,
    IReadOnlyList<TargetDefinition> Targets,
    IReadOnlyList<SourceDefinition> Sources)
{
    /// <summary>Encryption of every artifact in the age format; null when artifacts are stored unencrypted.</summary>
    public EncryptionOptions? Encryption { get; init; }

    public string LockPath => CatalogPath + ".lock";

    public SourceDefinition? Source(string name) => Sources.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.Ordinal));
}

/// <summary>
/// <c>encryption</c>: the age recipients every artifact is encrypted to (X25519 <c>age1…</c>), or one passphrase
/// (scrypt, alone, as the format requires); and the identity files (<c>file:</c> secret references) that restore
/// and a deep verify use to read the content back.
/// </summary>
public sealed record EncryptionOptions(IReadOnlyList<string> Recipients, SecretRef? Passphrase, IReadOnlyList<SecretRef> Identities);

/// <summary>Global policy: how many verified copies make a snapshot valid, and the default recovery point objective.</summary>
public sealed record Policy(int MinCopies, TimeSpan Rpo);

/// <summary>zstd level (1–19) and worker threads (0 = single-threaded).</summary>
public sealed record CompressionOptions(int Level, int Workers);

/// <summary>A configured target; <c>timeout</c> bounds each operation on it, <c>retries</c> the retries of idempotent ones.</summary>
public sealed record TargetDefinition(string Name, string Kind, object Options, ConfigLocation Location, TimeSpan Timeout, int Retries)
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    public const int DefaultRetries = 3;
}

public sealed record SourceDefinition(
    string Name,
    string Kind,
    object Options,
    Expectations Expect,
    TimeSpan Rpo,
    int MinCopies,
    IReadOnlyList<string> Targets,
    ConfigLocation Location)
{
    /// <summary>The source's retention rules (its own, else the global ones); null when none are configured.</summary>
    public Retention.RetentionRules? Retention { get; init; }
}

public enum AnomalyAction
{
    Fail,
    Warn,
}

/// <summary>Rules a snapshot must meet to count.</summary>
public sealed record Expectations(
    long? MinBytes,
    IReadOnlyDictionary<string, long> MinFacts,
    int? MaxShrinkPercent,
    AnomalyAction OnAnomaly)
{
    public static Expectations None { get; } = new(null, new Dictionary<string, long>(), null, AnomalyAction.Fail);
}
