using System.Globalization;

namespace Backstop.Core.FileSystem;

/// <summary>
/// Leftovers named after the process that made them (<c>PREFIX + PID + "-s" + START + "-…"</c>), so that a later
/// process can tell a dead one's. The start time (the kernel's, in clock ticks since boot) tells a reused pid apart:
/// in a container every run is pid 1, so a pid alone would make every killed run's leftovers look alive for ever.
/// Staging is one machine's: the processes that share it see the same /proc.
/// </summary>
public static class Stale
{
    private static readonly Lazy<long?> OwnStart = new(() => StartOf(Environment.ProcessId));

    /// <summary>A name for something this process makes and removes: PREFIX, this process's id and start, a random part.</summary>
    public static string Name(string prefix) =>
        $"{prefix}{Environment.ProcessId}-s{(OwnStart.Value ?? 0).ToString(CultureInfo.InvariantCulture)}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}";

    /// <summary>True when <paramref name="name"/> was made by a process that is gone (never this one, never a running one).</summary>
    public static bool OwnerIsGone(string name, string prefix)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(prefix);
        if (!name.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var parts = name[prefix.Length..].Split('-');
        if (parts.Length < 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
        {
            return false;
        }

        // A name made before start times were written (PID-RANDOM) is judged by its pid alone, as it was.
        long? recorded = parts[1].StartsWith('s') && long.TryParse(parts[1].AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : null;
        if (recorded is null)
        {
            return pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}");
        }

        return StartOf(pid) is not { } now || now != recorded;
    }

    /// <summary>When the process started (field 22 of /proc/PID/stat, clock ticks since boot); null when it is not running.</summary>
    internal static long? StartOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length > 19 && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var start) ? start : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
