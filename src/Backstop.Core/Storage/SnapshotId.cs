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

/// <summary>Where things go on a target: <c>&lt;source&gt;/&lt;snapshot&gt;/&lt;file&gt;</c>.</summary>
public static class Layout
{
    public const string ManifestName = "MANIFEST.json";

    public static string Folder(string source, string snapshot) => $"{source}/{snapshot}/";

    public static string Key(string source, string snapshot, string file) => $"{source}/{snapshot}/{file}";
}
