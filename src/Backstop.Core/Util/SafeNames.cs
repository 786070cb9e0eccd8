using System.Text;
using System.Text.RegularExpressions;

namespace Backstop.Core.Util;

/// <summary>
/// Names that become file names and object keys (artifacts, their stored files) come from servers (database names)
/// and from targets (manifests): they are kept to one safe alphabet — letters, digits and <c>._%+=@-</c>, no leading
/// '.', no "..", no '/', at most 255 characters — and anything else is percent-encoded on the way in.
/// </summary>
public static partial class SafeNames
{
    [GeneratedRegex("^[A-Za-z0-9_%+=@-][A-Za-z0-9._%+=@-]{0,254}$")]
    private static partial Regex Pattern();

    public static bool IsSafeFileName(string name) =>
        !string.IsNullOrEmpty(name) && Pattern().IsMatch(name) && !name.Contains("..", StringComparison.Ordinal);

    /// <summary>
    /// A name from a server as a safe file name: letters, digits, '_' and '-' stay, a '.' stays unless it leads or
    /// follows another, every other UTF-8 byte becomes <c>%XX</c> (so <c>../x</c> is <c>%2E%2E%2Fx</c>). Reversible
    /// with <see cref="Decode"/>; names that were already safe and free of '%' are unchanged.
    /// </summary>
    public static string Encode(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var sb = new StringBuilder(name.Length);
        var previous = -1;
        foreach (var b in Encoding.UTF8.GetBytes(name))
        {
            var c = (char)b;
            var keep = c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-'
                       || (c == '.' && previous >= 0 && previous != '.');
            previous = b;
            if (keep)
            {
                sb.Append(c);
            }
            else
            {
                sb.Append('%').Append(((int)b).ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return sb.Length == 0 ? "%" : sb.ToString();
    }

    /// <summary>The name <see cref="Encode"/> was given.</summary>
    public static string Decode(string encoded)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        if (encoded == "%")
        {
            return "";
        }

        var bytes = new List<byte>(encoded.Length);
        for (var i = 0; i < encoded.Length; i++)
        {
            if (encoded[i] == '%' && i + 2 < encoded.Length && Uri.IsHexDigit(encoded[i + 1]) && Uri.IsHexDigit(encoded[i + 2]))
            {
                bytes.Add(Convert.ToByte(encoded.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(encoded[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
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
