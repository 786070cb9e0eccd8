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
            foreach (var line in Leftovers(folder).Where(l => l.StartsWith("db:", StringComparison.Ordinal)))
            {
                if (def is null || plugins.Source(def.Kind)?.Create(def) is not IDrillable drillable)
                {
                    said.Add($"a killed drill of '{sourceName}' left {line[3..]}, and that source is no longer configured: remove it by hand");
                    continue;
                }

                try
                {
                    if (await drillable.SweepAsync(line, cancellationToken).ConfigureAwait(false) is { } problem)
                    {
                        said.Add(problem);
                    }
                }
                catch (Exception e) when (e is BackupException or IOException or InvalidOperationException)
                {
                    said.Add($"a killed drill of '{sourceName}' left {line[3..]}, which could not be removed: {e.Message}; remove it by hand");
                }
            }

            said.AddRange(RemoveFolder(folder));
            said.Add($"removed what a killed drill{(sourceName is null ? "" : $" of '{sourceName}'")} left in {folder}");
        }

        return said;
    }

    /// <summary>Kills the scratch servers a drill recorded, removes the folders it recorded elsewhere, then its own folder.</summary>
    internal static IReadOnlyList<string> RemoveFolder(string folder)
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

        problems.AddRange(Delete(folder));
        return problems;
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
