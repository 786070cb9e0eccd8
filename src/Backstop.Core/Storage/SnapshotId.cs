using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Backstop.Core.Storage;

/// <summary>Snapshot ids: UTC time, sortable, with a random suffix: <c>20251214T060007Z-3f9a</c>.</summary>
public static partial class SnapshotId
{
    [GeneratedRegex("^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$")]
    private static partial Regex Pattern();

    public static string New(DateTimeOffset now) =>
        now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture) + "-" +
        Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));

    public static bool IsValid(string s) => Pattern().IsMatch(s);
}

/// <summary>
/// Where things go on a target: <c>&lt;source&gt;/&lt;snapshot&gt;/&lt;file&gt;</c>, and the blobs a source shares between its
/// snapshots (a registry's layers), content-addressed: <c>&lt;source&gt;/blobs/sha256/&lt;hex&gt;[.zst][.age]</c>.
/// </summary>
public static partial class Layout
{
    /// <summary>A file of a source's continuous archive: <c>&lt;source&gt;/wal/&lt;folder&gt;/&lt;file&gt;</c> (the folder a timeline).</summary>
    public static string ArchiveKey(string source, string folder, string file) => $"{source}/wal/{folder}/{file}";

    /// <summary>The folder of a source's shared blobs.</summary>
    public static string BlobFolder(string source) => $"{source}/blobs/sha256/";

    public static string BlobKey(string source, string file) => BlobFolder(source) + file;

    /// <summary>A blob's stored file: its digest's hex, <c>.zst</c> when Backstop compressed it, <c>.age</c> when sealed.</summary>
    public static string BlobFile(string digest, bool compressed, bool encrypted)
    {
        ArgumentNullException.ThrowIfNull(digest);
        var hex = digest.StartsWith("sha256:", StringComparison.Ordinal) ? digest["sha256:".Length..] : digest;
        return IsBlobFile(hex) ? hex + (compressed ? ".zst" : "") + (encrypted ? Sealing.Sealed.AgeSuffix : "")
            : throw new ArgumentException($"'{digest}' is not a sha256 digest", nameof(digest));
    }

    /// <summary>Whether a name is a blob's stored file (and nothing else: no path, no other suffix).</summary>
    public static bool IsBlobFile(string name) => name is not null && BlobPattern().IsMatch(name);

    /// <summary>The digest a blob's stored file holds (<c>sha256:HEX</c>).</summary>
    public static string DigestOf(string blobFile) => "sha256:" + blobFile[..64];

    /// <summary>Whether Backstop compressed the stored blob (it decodes through zstd).</summary>
    public static bool IsCompressedBlob(string blobFile) => blobFile.Contains(".zst", StringComparison.Ordinal);

    [GeneratedRegex(@"^[0-9a-f]{64}(\.zst)?(\.age)?$")]
    private static partial Regex BlobPattern();

    public const string ManifestName = "MANIFEST.json";

    public static string Folder(string source, string snapshot) => $"{source}/{snapshot}/";

    public static string Key(string source, string snapshot, string file) => $"{source}/{snapshot}/{file}";
}
