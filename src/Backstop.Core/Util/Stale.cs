namespace Backstop.Core.Util;

/// <summary>Leftovers named after the process that made them (<c>PREFIX + PID + "-…"</c>), so that a later process can tell a dead one's.</summary>
public static class Stale
{
    /// <summary>A name for something this process makes and removes: PREFIX, this process's id, a random part.</summary>
    public static string Name(string prefix) =>
        $"{prefix}{Environment.ProcessId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}";

    /// <summary>True when <paramref name="name"/> was made by a process that is gone (never this one, never a running one).</summary>
    public static bool OwnerIsGone(string name, string prefix)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(prefix);
        if (!name.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = name[prefix.Length..];
        var dash = rest.IndexOf('-', StringComparison.Ordinal);
        return dash > 0 && int.TryParse(rest[..dash], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid)
               && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}");
    }
}
