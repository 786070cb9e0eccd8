using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Core.Drill;

/// <summary>
/// What a drill killed with -9 left: its scratch folder in the staging folder (named after its process), the scratch
/// servers it started (recorded as <c>pid:PID:START</c>), folders elsewhere (<c>dir:PATH</c>) and what only its kind
/// can remove (<c>db:NAME</c> scratch databases, <c>ns:NAME</c> scratch namespaces…, each checked by the kind against
/// the names its drills make). The next drill or run removes them, once that process is gone. The record is read
/// strictly: a line that is not one Backstop writes is ignored and said, with its text quoted.
/// </summary>
public static partial class DrillSweeper
{
    [System.Text.RegularExpressions.GeneratedRegex(@"^pid:[0-9]{1,10}:[0-9]{1,20}$")]
    private static partial System.Text.RegularExpressions.Regex ProcessLine();

    /// <summary>A kind's leftover: a short lowercase word, a colon, a name of letters, digits, '.', '_' and '-'.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^[a-z]{1,16}:[A-Za-z0-9._-]{1,200}$")]
    private static partial System.Text.RegularExpressions.Regex KindLine();

    /// <summary>Whether a line is a folder this runner made outside the staging folder (an absolute path to a drill's folder).</summary>
    private static bool IsFolderLine(string line) =>
        line.StartsWith("dir:/", StringComparison.Ordinal) && !line.Contains("/../", StringComparison.Ordinal) && !line.EndsWith("/..", StringComparison.Ordinal)
        && Path.GetFileName(line[4..]).StartsWith(DrillRunner.ScratchPrefix, StringComparison.Ordinal) && !line.Contains('\0', StringComparison.Ordinal);

    /// <summary>A leftover only the source kind can remove.</summary>
    internal static bool IsKindLine(string line) => !line.StartsWith("pid:", StringComparison.Ordinal) && !line.StartsWith("dir:", StringComparison.Ordinal) && KindLine().IsMatch(line);
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

        // A killed rehearsal's scratch (its catalog view); the drills it ran left folders of their own, swept below.
        foreach (var folder in Directory.EnumerateDirectories(config.StagingPath, Recovery.RehearsalRunner.ScratchPrefix + "*")
                     .Where(f => FileSystem.Stale.OwnerIsGone(Path.GetFileName(f), Recovery.RehearsalRunner.ScratchPrefix)).ToList())
        {
            said.AddRange(RemoveFolder(folder));
            said.Add($"removed what a killed rehearsal left in {folder}");
        }

        foreach (var folder in Directory.EnumerateDirectories(config.StagingPath, DrillRunner.ScratchPrefix + "*")
                     .Where(f => FileSystem.Stale.OwnerIsGone(Path.GetFileName(f), DrillRunner.ScratchPrefix)).ToList())
        {
            var sourceName = ReadOrNull(Path.Combine(folder, SourceFile));
            var def = sourceName is null ? null : config.Source(sourceName);
            var kept = new List<string>();
            foreach (var line in Leftovers(folder).Where(l => !ProcessLine().IsMatch(l) && !IsFolderLine(l) && !IsKindLine(l)))
            {
                said.Add($"a killed drill{(sourceName is null ? "" : $" of '{Text.ServerText.Printable(sourceName)}'")} recorded '{Text.ServerText.Printable(line)}' in {folder}, " +
                         "which is not a line Backstop writes: ignored");
            }

            foreach (var line in Leftovers(folder).Where(IsKindLine))
            {
                string? problem;
                if (def is null || plugins.Source(def.Kind)?.Create(def).Capability<IDrillable>() is not { } drillable)
                {
                    problem = $"a killed drill of '{Text.ServerText.Printable(sourceName ?? "")}' left '{line}', and that source is no longer configured: remove it by hand where its drill ran";
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
                        problem = $"a killed drill of '{sourceName}' left '{line}', which could not be removed yet: {e.Message}; the next run retries";
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
            var removed = Leftovers(folder).Where(IsKindLine).Select(l => $"'{l}'").ToList();
            said.Add($"removed what a killed drill{(sourceName is null ? "" : $" of '{Text.ServerText.Printable(sourceName)}'")} left in {folder}" +
                     (removed.Count > 0 ? $" ({string.Join(", ", removed)})" : ""));
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
        foreach (var line in Leftovers(folder).Where(l => ProcessLine().IsMatch(l)))
        {
            FileSystem.ProcessIdentity.KillIfSame(line[4..]);
        }

        foreach (var line in Leftovers(folder).Where(IsFolderLine))
        {
            problems.AddRange(Delete(line[4..]));
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

    private static string[] Leftovers(string folder)
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
