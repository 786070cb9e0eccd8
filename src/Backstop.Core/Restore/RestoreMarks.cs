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

    /// <summary>
    /// Marks <paramref name="snapshot"/> as being read by this process until the result is disposed. The mark is held
    /// with a lock (<see cref="FileSystem.HeldFile"/>), so a mark is alive exactly while its process is: a pid alone cannot
    /// tell, as every container's first process is 1.
    /// </summary>
    public static IDisposable Mark(BackstopConfig config, string snapshot)
    {
        ArgumentNullException.ThrowIfNull(config);
        var path = Path.Combine(Folder(config), $"{snapshot}-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            try
            {
                return new Held(FileSystem.HeldFile.Create(path));
            }
            catch (IOException) when (File.Exists(path))
            {
                // The mark of a dead process that had this pid (a container's first process, a killed run's pid reused).
                FileSystem.HeldFile.TakeAbandoned(path)?.Delete();
                return new Held(FileSystem.HeldFile.Create(path));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Unmarked(); // a read-only state folder, or a mark of this pid another live process holds: unmarked
        }
    }

    /// <summary>Removes the marks of restores that were killed (their lock is free); returns how many.</summary>
    public static int SweepDead(BackstopConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var dir = Folder(config);
        return Directory.Exists(dir) ? Directory.GetFiles(dir).Count(RemoveIfDead) : 0;
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
            if (int.TryParse(Path.GetFileName(f)[(snapshot.Length + 1)..], System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out var pid) && !RemoveIfDead(f) && File.Exists(f))
            {
                readers.Add(pid);
            }
        }

        return readers;
    }

    /// <summary>True when the mark's restore is gone (its lock was free) and the mark was removed.</summary>
    private static bool RemoveIfDead(string mark)
    {
        try
        {
            if (FileSystem.HeldFile.TakeAbandoned(mark) is not { } dead)
            {
                return false;
            }

            dead.Delete();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // left for the next look
        }
    }

    /// <summary>The mark, removed when the restore ends.</summary>
    private sealed class Held(FileSystem.HeldFile file) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                file.Delete();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // its lock is gone with the handle: a mark left counts for nothing
            }
        }
    }

    private sealed class Unmarked : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
