using Backstop.Core.Config;

namespace Backstop.Core.Restore;

/// <summary>
/// A restore marks the snapshot it reads (a file <c>SNAPSHOT-PID</c> in <c>restoring/</c> beside the catalog), so that a
/// prune that runs meanwhile (a scheduled <c>run</c> applies retention) keeps it instead of deleting it mid-read.
/// Restores take no lock: a long one must never hold up the night's backups. A mark whose process is gone counts for
/// nothing and is removed by the next prune.
/// </summary>
public static class RestoreMarks
{
    private static string Folder(BackstopConfig config) => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(config.CatalogPath))!, "restoring");

    /// <summary>Marks <paramref name="snapshot"/> as being read by this process until the result is disposed.</summary>
    public static IDisposable Mark(BackstopConfig config, string snapshot)
    {
        ArgumentNullException.ThrowIfNull(config);
        var path = Path.Combine(Folder(config), $"{snapshot}-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            // Created, or an old mark of this pid reused; never through a link, never truncating anything.
            var fd = Util.Posix.Open(path, Util.Posix.OCreat | Util.Posix.ORdonly | Util.Posix.ONofollow | Util.Posix.OCloexec, 0x180);
            if (fd < 0)
            {
                return new Removal(null); // a read-only state folder or a planted link: the restore goes on unmarked
            }

            Util.Posix.Close(fd);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Removal(null); // a read-only state folder: the restore goes on unmarked
        }

        return new Removal(path);
    }

    /// <summary>Removes the marks of restores that were killed (their process is gone); returns how many.</summary>
    public static int SweepDead(BackstopConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var dir = Folder(config);
        if (!Directory.Exists(dir))
        {
            return 0;
        }

        var snapshots = Directory.EnumerateFiles(dir).Select(Path.GetFileName).OfType<string>()
            .Where(n => n.LastIndexOf('-') > 0).Select(n => n[..n.LastIndexOf('-')]).Distinct(StringComparer.Ordinal).ToList();
        var before = Directory.EnumerateFiles(dir).Count();
        foreach (var snapshot in snapshots)
        {
            Readers(config, snapshot);
        }

        return before - Directory.EnumerateFiles(dir).Count();
    }

    /// <summary>The process ids of live restores reading <paramref name="snapshot"/>; marks of dead ones are removed.</summary>
    public static IReadOnlyList<int> Readers(BackstopConfig config, string snapshot)
    {
        ArgumentNullException.ThrowIfNull(config);
        var dir = Folder(config);
        if (!Directory.Exists(dir))
        {
            return [];
        }

        var readers = new List<int>();
        foreach (var f in Directory.EnumerateFiles(dir, snapshot + "-*"))
        {
            if (!int.TryParse(Path.GetFileName(f)[(snapshot.Length + 1)..], System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            if (Directory.Exists($"/proc/{pid}"))
            {
                readers.Add(pid);
            }
            else
            {
                try
                {
                    File.Delete(f);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // left for the next prune
                }
            }
        }

        return readers;
    }

    private sealed class Removal(string? path) : IDisposable
    {
        public void Dispose()
        {
            if (path is not null)
            {
                try
                {
                    File.Delete(path);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // a dead mark counts for nothing
                }
            }
        }
    }
}
