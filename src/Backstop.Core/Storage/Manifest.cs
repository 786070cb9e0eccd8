using System.Text.Json;
using Backstop.Core.Text;

namespace Backstop.Core.Storage;

/// <summary>
/// <c>MANIFEST.json</c>, written last on each target: the commit marker. Everything needed to rebuild the catalog
/// and to restore with stock tools is in it.
/// </summary>
public sealed record Manifest(
    int Format,
    string Snapshot,
    ManifestSource Source,
    string Host,
    DateTimeOffset StartedAt,
    DateTimeOffset FinishedAt,
    IReadOnlyDictionary<string, string> Tools,
    long RawBytes,
    long StoredBytes,
    IReadOnlyDictionary<string, long> Facts,
    IReadOnlyList<string> Warnings,
    IReadOnlyList<ManifestArtifact> Artifacts)
{
    public const int CurrentFormat = 1;

    /// <summary>A level of a chain: the snapshot whose changes it stores (absent for a full).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Parent { get; init; }

    /// <summary>Its level above the chain's full (absent for a full).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public int? Level { get; init; }

    public byte[] ToBytes() => JsonSerializer.SerializeToUtf8Bytes(this, Json.Options);

    public static Manifest Parse(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<Manifest>(json, Json.Options) ?? throw new JsonException("empty manifest");

    /// <summary>
    /// A manifest read back from a target, validated before anything uses it: a known format, a well-formed snapshot
    /// id and source name, artifact and file names in the safe alphabet (no '/', "..", leading '.'), sizes not
    /// negative, SHA-256 as 64 hex digits. <paramref name="where"/> names it in the error.
    /// </summary>
    public static Manifest ParseUntrusted(ReadOnlySpan<byte> json, string where)
    {
        Manifest m;
        try
        {
            m = Parse(json);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException)
        {
            throw new InvalidManifestException($"{where} is not valid JSON of a manifest: {e.Message}");
        }

        var problem = m.Problem();
        return problem is null ? m : throw new InvalidManifestException($"{where} is refused: {problem}");
    }

    private string? Problem()
    {
        if (Format != CurrentFormat)
        {
            return $"format {Format} is not one this backstop reads (it reads format {CurrentFormat}; a newer backstop wrote it?)";
        }

        if (Snapshot is null || !SnapshotId.IsValid(Snapshot))
        {
            return $"snapshot id '{Shorten(Snapshot)}' is not one backstop makes";
        }

        if (Source?.Name is null || !Config.ConfigLoader.IsValidName(Source.Name) || Source.Kind is null || !Config.ConfigLoader.IsValidName(Source.Kind))
        {
            return $"source '{Shorten(Source?.Name)}' ({Shorten(Source?.Kind)}) is not a valid source name and kind";
        }

        if (Host is null || Tools is null || Facts is null || Warnings is null || Warnings.Any(w => w is null))
        {
            return "a required field (host, tools, facts, warnings) is missing or null";
        }

        if (RawBytes < 0 || StoredBytes < 0)
        {
            return "a size is negative";
        }

        if (Artifacts is null || Artifacts.Count == 0)
        {
            return "it lists no artifact";
        }

        foreach (var a in Artifacts)
        {
            if (a?.Name is null || !SafeNames.IsSafeFileName(a.Name))
            {
                return $"artifact name '{Shorten(a?.Name)}' is not a safe file name (no '/', '\\', control character, '..' or leading '.')";
            }

            if (a.File is null || !(a.File == a.Name + ".zst" || a.File == a.Name + ".zst" + Sealing.Sealed.AgeSuffix))
            {
                return $"artifact {a.Name} names its file '{Shorten(a.File)}', not {a.Name}.zst[.age]";
            }

            if (a.RawBytes < 0 || a.StoredBytes < 0)
            {
                return $"artifact {a.Name} has a negative size";
            }

            if (a.Compression is not "zstd" || a.Facts is null || a.Restore is null || a.EncryptionRecipients is null)
            {
                return $"artifact {a.Name} lacks a required field (compression zstd, facts, restore, encryption_recipients)";
            }

            if (a.Sha256 is null || a.Sha256.Length != 64 || !a.Sha256.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return $"artifact {a.Name} has a malformed SHA-256 '{Shorten(a.Sha256)}'";
            }

            if (a.Facts.Any(f => f.Value < 0))
            {
                return $"artifact {a.Name} has a negative fact";
            }

            if (a.Blobs?.FirstOrDefault(b => b?.File is null || !Layout.IsBlobFile(b.File) || b.Bytes < 0) is { } bad)
            {
                return $"artifact {a.Name} names a blob '{Shorten(bad?.File)}' that is not HEX[.zst][.age] of a sha256 digest with a size";
            }

            if (a.Blobs is { Count: > 1_000_000 })
            {
                return $"artifact {a.Name} names more than a million blobs";
            }
        }

        if ((Parent is null) != (Level is null) || Level is < 1 or > 100_000 || (Parent is not null && (!SnapshotId.IsValid(Parent) || Parent == Snapshot)))
        {
            return $"its chain (parent '{Shorten(Parent)}', level {Level}) is not one backstop writes: a level names a valid parent snapshot and a level of at least 1";
        }

        if (Artifacts.Any(a => a.Level is not null && (Level is null || a.Level != Level)))
        {
            return "an artifact's level is not the snapshot's";
        }

        return Artifacts.Select(a => a.Name).Distinct(StringComparer.Ordinal).Count() != Artifacts.Count ? "an artifact is listed twice" : null;
    }

    private static string Shorten(string? s) => s is null ? "(none)" : s.Length > 60 ? s[..60] + "…" : s.ReplaceLineEndings(" ");
}

/// <summary>A manifest from a target that cannot be trusted as one.</summary>
public sealed class InvalidManifestException(string message) : Plugins.BackupException(message);

public sealed record ManifestSource(string Name, string Kind);

public sealed record ManifestArtifact(
    string Name,
    string File,
    long RawBytes,
    long StoredBytes,
    string Sha256,
    string Compression,
    IReadOnlyList<string> EncryptionRecipients,
    IReadOnlyDictionary<string, long> Facts,
    string Restore,
    IReadOnlyList<string>? Reported = null)
{
    /// <summary>Set when the artifact holds only what changed since the parent's artifact of the same name (its level).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public int? Level { get; init; }

    /// <summary>
    /// The shared blobs (<c>&lt;source&gt;/blobs/sha256/FILE</c>) this artifact needs besides its own file: a registry
    /// repository's layers and configs. Absent for an artifact that holds everything itself.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ManifestBlob>? Blobs { get; init; }
}

/// <summary>A shared blob an artifact needs: its stored file (<c>HEX[.zst][.age]</c>) and its size as content.</summary>
public sealed record ManifestBlob(string File, long Bytes);
