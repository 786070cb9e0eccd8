using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Core.Drill;

/// <summary>
/// What a drill killed with -9 left: its scratch folder in the staging folder (named after its process), the scratch
/// servers it started (recorded as <c>pid:PID:START</c>), folders elsewhere (<c>dir:PATH</c>) and scratch databases on
/// servers (<c>db:…</c>, removed by the source kind). The next drill or run removes them, once that process is gone.
/// </summary>
public static class DrillSweeper
{
    /// <summary>The file in a scratch folder that names the source being drilled.</summary>
    internal const string SourceFile = "source";

    /// <summary>Removes every dead drill's leftovers; returns what it did or could not do, one line each.</summary>
    public static async Task<IReadOnlyList<string>> SweepAsync(BackstopConfig config, PluginRegistry plugins, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(plugins);
        var said = new List<string>();
        if (!Directory.Exists(config.StagingPath))
        {
            return said;
        }

        foreach (var folder in Directory.EnumerateDirectories(config.StagingPath, DrillRunner.ScratchPrefix + "*")
                     .Where(f => Util.Stale.OwnerIsGone(Path.GetFileName(f), DrillRunner.ScratchPrefix)).ToList())
        {
            var sourceName = ReadOrNull(Path.Combine(folder, SourceFile));
            var def = sourceName is null ? null : config.Source(sourceName);
            var kept = new List<string>();
            foreach (var line in Leftovers(folder).Where(l => l.StartsWith("db:", StringComparison.Ordinal)))
            {
                string? problem;
                if (def is null || plugins.Source(def.Kind)?.Create(def) is not IDrillable drillable)
                {
                    problem = $"a killed drill of '{sourceName}' left the scratch database {line[3..]}, and that source is no longer configured: drop it by hand on its drill server";
                }
                else
                {
                    try
                    {
                        problem = await drillable.SweepAsync(line, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                    {
                        // Decision: a sweep never stops the run or drill it precedes; the record stays for the next one.
                        problem = $"a killed drill of '{sourceName}' left the scratch database {line[3..]}, which could not be dropped yet: {e.Message}; the next run retries";
                        kept.Add(line);
                    }
                }

                if (problem is not null)
                {
                    said.Add(problem);
                }
            }

            if (kept.Count > 0)
            {
                // Processes and data go now; the record of what could not be dropped stays, for the next sweep.
                said.AddRange(RemoveFolder(folder, keep: kept));
                continue;
            }

            said.AddRange(RemoveFolder(folder));
            said.Add($"removed what a killed drill{(sourceName is null ? "" : $" of '{sourceName}'")} left in {folder}");
        }

        return said;
    }

    /// <summary>
    /// Kills the scratch servers a drill recorded, removes the folders it recorded elsewhere, then its own folder; with
    /// <paramref name="keep"/>, everything but the record of those leftovers (scratch databases not dropped yet).
    /// </summary>
    internal static IReadOnlyList<string> RemoveFolder(string folder, IReadOnlyList<string>? keep = null)
    {
        var problems = new List<string>();
        foreach (var line in Leftovers(folder))
        {
            if (line.StartsWith("pid:", StringComparison.Ordinal))
            {
                Util.ProcessIdentity.KillIfSame(line[4..]);
            }
        }

        foreach (var line in Leftovers(folder).Where(l => l.StartsWith("dir:", StringComparison.Ordinal)))
        {
            var path = line[4..];
            if (Path.GetFileName(path).StartsWith(DrillRunner.ScratchPrefix, StringComparison.Ordinal))
            {
                problems.AddRange(Delete(path));
            }
        }

        if (keep is { Count: > 0 })
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(folder).Where(e => Path.GetFileName(e) is not (SourceFile or DrillScope.LeftoversFile)).ToList())
            {
                problems.AddRange(Directory.Exists(entry) ? Delete(entry) : DeleteFile(entry));
            }

            File.WriteAllLines(Path.Combine(folder, DrillScope.LeftoversFile), keep);
            return problems;
        }

        problems.AddRange(Delete(folder));
        return problems;
    }

    private static IEnumerable<string> DeleteFile(string path)
    {
        try
        {
            File.Delete(path);
            return [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [$"{path} could not be removed: {e.Message}"];
        }
    }

    private static IEnumerable<string> Delete(string path)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }

                return [];
            }
            catch (Exception e) when ((e is IOException or UnauthorizedAccessException) && attempt < 5)
            {
                Thread.Sleep(200); // a server that was just killed may still be closing its files
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return [$"the scratch folder {path} could not be removed: {e.Message}; remove it by hand"];
            }
        }
    }

    private static IReadOnlyList<string> Leftovers(string folder)
    {
        var text = ReadOrNull(Path.Combine(folder, DrillScope.LeftoversFile));
        return text is null ? [] : text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    private static string? ReadOrNull(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
