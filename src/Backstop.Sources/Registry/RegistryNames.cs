using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Backstop.Sources.Registry;

/// <summary>
/// What the distribution API's names and documents are: repository, tag and digest names, the manifest media types
/// Backstop takes, a document's declared type, and the SHA-256 digest of bytes. Everything a registry sends is held to
/// these before it is used.
/// </summary>
internal static partial class RegistryNames
{
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string DockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";

    /// <summary>Manifests larger than this are refused (the distribution registry's own limit is 4 MiB).</summary>
    public const int MaxManifestBytes = 4 << 20;

    public static readonly string[] ManifestTypes = [OciIndex, OciManifest, DockerList, DockerManifest];

    [GeneratedRegex("^[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*$")]
    private static partial Regex RepositoryPattern();

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex TagPattern();

    [GeneratedRegex("^sha256:[a-f0-9]{64}$")]
    private static partial Regex DigestPattern();

    public static bool IsRepository(string name) => name.Length <= 255 && RepositoryPattern().IsMatch(name);

    public static bool IsTag(string tag) => TagPattern().IsMatch(tag);

    public static bool IsDigest(string digest) => DigestPattern().IsMatch(digest);

    public static bool IsIndex(string mediaType) => mediaType is OciIndex or DockerList;

    public static bool IsManifest(string mediaType) => mediaType is OciIndex or OciManifest or DockerList or DockerManifest;

    public static string Digest(ReadOnlySpan<byte> bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>
    /// What a manifest's JSON is: the <c>mediaType</c> it declares when it is one this client knows and the body has
    /// that shape (an index its <c>manifests</c>, an image its <c>config</c> and <c>layers</c>), or, for an OCI body that
    /// leaves the field out, what its shape says. Null for anything else (a config blob, a layer, another type).
    /// </summary>
    public static string? MediaTypeOf(byte[] bytes)
    {
        if (bytes.Length == 0 || bytes.Length > MaxManifestBytes)
        {
            return null;
        }

        try
        {
            using var json = JsonDocument.Parse(bytes);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            var index = root.TryGetProperty("manifests", out var m) && m.ValueKind == JsonValueKind.Array;
            var image = root.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object && root.TryGetProperty("layers", out var l) && l.ValueKind == JsonValueKind.Array;
            if (root.TryGetProperty("mediaType", out var mt))
            {
                var declared = mt.ValueKind == JsonValueKind.String ? mt.GetString()! : "";
                return IsManifest(declared) && (IsIndex(declared) ? index && !image : image && !index) ? declared : null;
            }

            return index && !image ? OciIndex : image && !index ? OciManifest : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return null; // not JSON, or a string in it that is not UTF-8 (JsonDocument checks that only when it is read)
        }
    }

    internal static bool HasDeclaredType(byte[] bytes)
    {
        try
        {
            using var json = JsonDocument.Parse(bytes);
            return json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("mediaType", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    internal static string Printable(string text) => Core.Text.ServerText.Printable(text);
}
