using System.Text.Json;
using Backstop.Core.Util;

namespace Backstop.Core.Pipeline;

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

    public byte[] ToBytes() => JsonSerializer.SerializeToUtf8Bytes(this, Json.Options);

    public static Manifest Parse(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<Manifest>(json, Json.Options) ?? throw new JsonException("empty manifest");
}

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
    string Restore);
