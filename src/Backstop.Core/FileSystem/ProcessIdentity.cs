using System.Globalization;

namespace Backstop.Core.FileSystem;

/// <summary>
/// A process named so that a later process can tell it is still the same one: its pid and its start time in clock
/// ticks since boot (field 22 of <c>/proc/PID/stat</c>). A pid reused by another program has another start time.
/// </summary>
public static class ProcessIdentity
{
    /// <summary><c>PID:START</c>, or null when the process is gone.</summary>
    public static string? Of(int pid) => StartTicks(pid) is { } start ? $"{pid.ToString(CultureInfo.InvariantCulture)}:{start}" : null;

    /// <summary>Kills (SIGKILL) the process named by <see cref="Of"/> when it is still that process; true when it was killed.</summary>
    public static bool KillIfSame(string identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        var parts = identity.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || StartTicks(pid) != parts[1])
        {
            return false;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
            return true;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false; // gone meanwhile, or not ours to kill: nothing more can be done here
        }
    }

    private static string? StartTicks(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            // "PID (comm) state ppid …": comm may hold spaces and parentheses, so count fields after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? fields[19] : null; // field 22 overall is the 20th after "(comm)"
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
