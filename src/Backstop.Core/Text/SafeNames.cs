using System.Text;

namespace Backstop.Core.Text;

/// <summary>
/// Names that become file names and object keys (artifacts, their stored files) come from servers (database names)
/// and from targets (manifests): they are kept to one safe alphabet — any printable character but <c>/</c> and <c>\</c>
/// (no control or format character, no line separator), no leading '.', no "..", at most 255 UTF-8 bytes — and
/// anything else is percent-encoded on the way in (a '%' too). Names that were file names before stay as they were.
/// </summary>
public static class SafeNames
{
    private const int MaxBytes = 255;

    /// <summary>Encoded names longer than this (in UTF-8 bytes) are shortened, keeping room for ".dump.zst.age".</summary>
    private const int MaxEncodedBytes = 200;

    public static bool IsSafeFileName(string name) =>
        !string.IsNullOrEmpty(name) && !name.StartsWith('.') && !name.Contains("..", StringComparison.Ordinal)
        && Encoding.UTF8.GetByteCount(name) <= MaxBytes && IsSafeText(name);

    private static bool IsSafeText(string name)
    {
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsHighSurrogate(name[i]) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1]))
            {
                i++; // a whole pair: a character beyond the BMP
                continue;
            }

            if (name[i] != '%' && !IsSafeChar(name[i])) // '%' is the escape: allowed, and escaped itself when a name holds one
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsSafeChar(char c) =>
        c is not ('/' or '\\' or '%') && System.Globalization.CharUnicodeInfo.GetUnicodeCategory(c) is not (
            System.Globalization.UnicodeCategory.Control or System.Globalization.UnicodeCategory.Format
            or System.Globalization.UnicodeCategory.Surrogate or System.Globalization.UnicodeCategory.LineSeparator
            or System.Globalization.UnicodeCategory.ParagraphSeparator or System.Globalization.UnicodeCategory.OtherNotAssigned);

    /// <summary>
    /// A name from a server as a safe file name: safe characters stay, a '.' stays unless it leads or follows another,
    /// every other character becomes <c>%XX</c> per UTF-8 byte (so <c>../x</c> is <c>%2E%2E%2F.%2E%2F.%2E%2Fx</c>…). A name
    /// whose encoding passes 200 bytes keeps its start and gets <c>~</c> and 16 hex digits of its SHA-256, so two long
    /// names never collide.
    /// </summary>
    public static string Encode(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var sb = new StringBuilder(name.Length);
        var previousDot = false;
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            var pair = char.IsHighSurrogate(c) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1]);
            var text = pair ? name.Substring(i, 2) : c.ToString();
            var keep = pair || (c == '.' ? sb.Length > 0 && !previousDot : IsSafeChar(c));
            if (keep)
            {
                sb.Append(text);
            }
            else
            {
                foreach (var b in Encoding.UTF8.GetBytes(text))
                {
                    sb.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
                }
            }

            previousDot = c == '.';
            i += pair ? 1 : 0;
        }

        var encoded = sb.Length == 0 ? "%" : sb.ToString();
        if (Encoding.UTF8.GetByteCount(encoded) <= MaxEncodedBytes)
        {
            return encoded;
        }

        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(name)))[..16];
        var cut = encoded.Length;
        while (Encoding.UTF8.GetByteCount(encoded.AsSpan(0, cut)) > MaxEncodedBytes - 17 || (cut > 0 && char.IsLowSurrogate(encoded[cut])) ||
               (cut > 0 && encoded.LastIndexOf('%', cut - 1) is var p && p >= 0 && p > cut - 3))
        {
            cut--;
        }

        return encoded[..cut].TrimEnd('.') + "~" + hash;
    }

    /// <summary>
    /// <paramref name="root"/>/<paramref name="relative"/>, proven to stay inside <paramref name="root"/> (no '..',
    /// no absolute part): the one check every path a restore writes goes through.
    /// </summary>
    public static string Inside(string root, string relative, bool allowRoot = false)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(relative);
        var top = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var full = Path.GetFullPath(Path.Combine(top, relative));
        var inside = full.StartsWith(top + "/", StringComparison.Ordinal) || (top == "/" && full.Length > 1) || (allowRoot && full == top);
        if (Path.IsPathRooted(relative) || !inside)
        {
            throw new PathOutsideException($"'{relative}' would be written outside {top}: refused (a name from a tampered or hostile manifest or archive?)");
        }

        return full;
    }
}

/// <summary>A path that would leave the folder it must stay in.</summary>
public sealed class PathOutsideException(string message) : Plugins.BackupException(message);
