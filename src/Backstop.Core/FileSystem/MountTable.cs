using System.Text;

namespace Backstop.Core.FileSystem;

/// <summary>The mount points this process sees (<c>/proc/self/mountinfo</c>, field 5, octal escapes undone).</summary>
public static class MountTable
{
    public static IReadOnlySet<string> MountPoints(string mountInfo = "/proc/self/mountinfo")
    {
        var points = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(mountInfo))
        {
            var fields = line.Split(' ');
            if (fields.Length > 4)
            {
                points.Add(Unescape(fields[4]));
            }
        }

        return points;
    }

    /// <summary>Whether the path (symlinks resolved) is itself a mount point.</summary>
    public static bool IsMountPoint(string path, IReadOnlySet<string>? points = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var real = Path.TrimEndingDirectorySeparator(ResolveLinks(Path.GetFullPath(path)));
        return (points ?? MountPoints()).Contains(real.Length == 0 ? "/" : real);
    }

    private static string ResolveLinks(string path)
    {
        var info = new DirectoryInfo(path);
        return info.LinkTarget is not null ? info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path : path;
    }

    /// <summary>mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.</summary>
    internal static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var bytes = new List<byte>(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && IsOctal(field[i + 1]) && IsOctal(field[i + 2]) && IsOctal(field[i + 3]))
            {
                bytes.Add((byte)(((field[i + 1] - '0') << 6) | ((field[i + 2] - '0') << 3) | (field[i + 3] - '0')));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(field[i].ToString()));
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static bool IsOctal(char c) => c is >= '0' and <= '7';
}
