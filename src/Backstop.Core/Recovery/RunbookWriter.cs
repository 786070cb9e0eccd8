using System.Globalization;
using System.Text;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Restore;
using Backstop.Core.Storage;
using Backstop.Core.FileSystem;
using Backstop.Core.Text;

namespace Backstop.Core.Recovery;

/// <summary>One source's step of a runbook: where its copy is, the commands in order, what to fill in, and what to check afterwards.</summary>
public sealed record RunbookStep(string Source, string Kind, string? Target, string? Machine, string? Snapshot, double Seconds, bool Passed,
    IReadOnlyDictionary<string, double> Phases, IReadOnlyList<string> Commands, IReadOnlyList<string> Placeholders, IReadOnlyList<string> Checks);

/// <summary>A runbook as its JSON file keeps it (the Markdown beside it says the same for a person).</summary>
public sealed record Runbook(string Scenario, DateTimeOffset RehearsedAt, bool Passed, double Seconds, long RtoSeconds, IReadOnlyList<string> LostMachines,
    IReadOnlyList<string> LostTargets, IReadOnlyList<ManualEstimate> Manual, IReadOnlyList<string> Prelude, IReadOnlyList<RunbookStep> Steps,
    IReadOnlyList<Unrecoverable> Unrecoverable, IReadOnlyDictionary<string, string> Legend)
{
    /// <summary>What comes last, once every source is back (a cluster's workloads, held until their data is in): commands per source.</summary>
    public IReadOnlyList<RunbookStep> Release { get; init; } = [];
}

/// <summary>
/// The runbook of a rehearsal, written from what it just did: the steps in the order that worked, each with the copy it
/// used (target and machine), the stock-tool commands that fetch it (the target kind's own tool), prove its checksum and
/// restore it (the kind's recipe), the time it took, and the checks to run afterwards. Placeholders are whole words in
/// capitals, listed with what each stands for; everything else is shell-quoted.
/// </summary>
public static class RunbookWriter
{
    /// <summary>The placeholders a runbook adds to the recipes'.</summary>
    private static readonly IReadOnlyList<KeyValuePair<string, string>> Own =
    [
        new("WORK", "an empty folder with room for the copies (every command runs in it)"),
        new("SSH_KEY", "the SSH private key that reads the NAS"),
    ];

    /// <summary>Writes <c>runbook-SCENARIO.md</c> and <c>.json</c> into <paramref name="folder"/>; returns the Markdown's path.</summary>
    public static string Write(string folder, BackstopConfig config, PluginRegistry plugins, RecoveryPlan plan, RehearsalResult result,
        Func<string, string, SnapshotInfo?> snapshotOf)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(plugins);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(snapshotOf);
        var release = new List<RunbookStep>();
        var steps = result.Restores.Select(r => Step(config, plugins, plan, r, snapshotOf, release)).ToList();
        var all = steps.Concat(release).SelectMany(s => s.Commands).Concat(["cd WORK"]).ToList();
        var legend = Own.Concat(StockRecipe.Placeholders).Where(p => all.Any(c => System.Text.RegularExpressions.Regex.IsMatch(c, $@"(?<![\w.]){p.Key}(?![\w.])")))
            .ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        var runbook = new Runbook(result.Scenario, result.At, result.Passed, result.Seconds, result.RtoSeconds, result.LostMachines, result.LostTargets, result.Manual,
            ["mkdir -p WORK", "cd WORK"], steps, result.Unrecoverable, legend) { Release = release };

        PrivateFolder.Ensure(folder);
        var md = Path.Combine(folder, $"runbook-{result.Scenario}.md");
        AtomicFile.WriteText(md, UnixFileMode.UserRead | UnixFileMode.UserWrite, Markdown(runbook, config, plan, result));
        AtomicFile.WriteText(Path.ChangeExtension(md, ".json"), UnixFileMode.UserRead | UnixFileMode.UserWrite, System.Text.Json.JsonSerializer.Serialize(runbook, Json.Options));
        return md;
    }

    private static RunbookStep Step(BackstopConfig config, PluginRegistry plugins, RecoveryPlan plan, RehearsalRestore r, Func<string, string, SnapshotInfo?> snapshotOf,
        List<RunbookStep> release)
    {
        var def = config.Source(r.Source)!;
        var targetDef = r.Target is null ? null : config.Targets.FirstOrDefault(t => t.Name == r.Target);
        var snapshot = r.Snapshot is null ? null : snapshotOf(r.Source, r.Snapshot);
        var checks = r.Drill?.Checks.Select(c => $"{c.Name}: {c.Expected} (the rehearsal found {c.Found})").ToList() ?? [];
        if (snapshot is null || targetDef is null)
        {
            return new RunbookStep(r.Source, r.Kind, r.Target, targetDef?.Machine, r.Snapshot, r.Seconds, r.Passed, r.Phases, [], [], checks);
        }

        var target = Storage.GuardedTarget.Create(plugins, targetDef);
        var source = plugins.Source(def.Kind)!.Create(def);
        var keyFile = config.Encryption is null ? null : plan.Identities.FirstOrDefault()?.Reference[5..];
        var steps = StockRecipe.Steps(source, config, snapshot, null, new Dictionary<string, string>(StringComparer.Ordinal), keyFile, (at, a) => new StoredPaths(
            Layout.Key(at.Source, at.Id, a.FileName), Layout.Key(at.Source, at.Id, Layout.ManifestName), Layout.BlobFolder(at.Source).TrimEnd('/')));
        var commands = new List<string>();
        foreach (var folder in steps.Select(s => $"{r.Source}/{s.Snapshot}").Concat(steps.Any(s => s.Blobs.Count > 0) ? [Layout.BlobFolder(r.Source).TrimEnd('/')] : []).Distinct())
        {
            commands.Add($"mkdir -p -- {ShellWord.Quote(folder)}");
        }

        var fetched = new HashSet<string>(StringComparer.Ordinal);
        void Fetch(string key)
        {
            if (fetched.Add(key))
            {
                commands.Add(target.FetchCommand(key, key));
            }
        }

        foreach (var s in steps)
        {
            Fetch(s.Key);
            if (s.Blobs.Count > 0)
            {
                Fetch(Layout.Key(r.Source, s.Snapshot, Layout.ManifestName));
                foreach (var b in s.Blobs)
                {
                    Fetch(Layout.BlobKey(r.Source, b));
                }
            }
        }

        var later = new List<string>();
        foreach (var s in steps)
        {
            commands.Add(s.Check);
            // A kind that recovers in two steps holds back what must wait for every source (its workloads), run last.
            if (source.Capability<IStagedRecovery>() is { } staged && staged.RecoverySteps(s.Artifact, ShellWord.QuoteIfNeeded(s.FileName)) is var (hold, last))
            {
                var values = new Dictionary<string, string>(StringComparer.Ordinal) { [ShellWord.QuoteIfNeeded(s.FileName)] = s.Key };
                if (keyFile is not null)
                {
                    values["KEY_FILE"] = keyFile;
                }

                var passphrase = config.Encryption?.Passphrase is not null;
                commands.Add(StockRecipe.FillIn(StockRecipe.WithDecryption(hold, s.Artifact, s.FileName, passphrase), values));
                later.Add(StockRecipe.FillIn(last, values));
            }
            else
            {
                commands.Add(s.Restore);
            }
        }

        var placeholders = Own.Concat(StockRecipe.Placeholders).Select(p => p.Key)
            .Where(k => commands.Concat(later).Any(c => System.Text.RegularExpressions.Regex.IsMatch(c, $@"(?<![\w.]){k}(?![\w.])"))).ToList();
        if (later.Count > 0)
        {
            release.Add(new RunbookStep(r.Source, r.Kind, r.Target, targetDef.Machine, r.Snapshot, 0, r.Passed, new Dictionary<string, double>(), later, placeholders, []));
        }
        return new RunbookStep(r.Source, r.Kind, r.Target, targetDef.Machine, r.Snapshot, r.Seconds, r.Passed, r.Phases, commands, placeholders, checks);
    }

    private static string Markdown(Runbook book, BackstopConfig config, RecoveryPlan plan, RehearsalResult result)
    {
        var md = new StringBuilder();
        var lost = string.Join("; ", new[]
        {
            book.LostMachines.Count > 0 ? "machines " + string.Join(", ", book.LostMachines) : null,
            book.LostTargets.Count > 0 ? "targets " + string.Join(", ", book.LostTargets) : null,
        }.OfType<string>());
        md.Append(CultureInfo.InvariantCulture, $"# Runbook: {book.Scenario}\n\n");
        md.Append(CultureInfo.InvariantCulture,
            $"Written by the rehearsal of {Json.Time(book.RehearsedAt)} on {config.Machine}, from what it just did: **{(book.Passed ? "passed" : "FAILED")}**, " +
            $"{Drill.DrillRunner.Seconds(book.Seconds)} against an objective of {Quantities.FormatDuration(TimeSpan.FromSeconds(book.RtoSeconds))}. Lost: {lost}.\n\n");
        if (result.Error is { } error)
        {
            md.Append(CultureInfo.InvariantCulture, $"What failed: {error}\n\n");
        }

        md.Append("Follow it top to bottom. Placeholders are whole words in capitals; fill them in first:\n\n");
        foreach (var (k, v) in book.Legend)
        {
            md.Append(CultureInfo.InvariantCulture, $"- `{k}`: {v}\n");
        }

        md.Append('\n');
        foreach (var note in result.Notes)
        {
            md.Append(CultureInfo.InvariantCulture, $"> {note}\n");
        }

        if (result.Notes.Count > 0)
        {
            md.Append('\n');
        }

        if (book.Unrecoverable.Count > 0)
        {
            md.Append("## Nothing brings these back\n\n");
            foreach (var u in book.Unrecoverable)
            {
                md.Append(CultureInfo.InvariantCulture, $"- {u.Reason}\n");
            }

            md.Append('\n');
        }

        if (book.Manual.Count > 0)
        {
            md.Append("## First: what the rehearsal could not time\n\n");
            foreach (var m in book.Manual)
            {
                md.Append(CultureInfo.InvariantCulture, $"- {m.Step} (estimated {Quantities.FormatDuration(TimeSpan.FromSeconds(m.EstimateSeconds))})\n");
            }

            md.Append('\n');
        }

        md.Append("## Set up the work folder\n\n```sh\n").AppendJoin('\n', book.Prelude).Append("\n```\n\n");
        var n = 0;
        foreach (var s in book.Steps)
        {
            n++;
            var planned = plan.Restores.FirstOrDefault(p => p.Source.Name == s.Source);
            md.Append(CultureInfo.InvariantCulture, $"## {n}. {s.Source} ({s.Kind})\n\n");
            md.Append(s.Snapshot is null
                ? "Not restored in the rehearsal.\n\n"
                : $"Snapshot {s.Snapshot} from target '{s.Target}' (machine {s.Machine}). In the rehearsal: {(s.Passed ? "passed" : "FAILED")}, " +
                  $"{Drill.DrillRunner.Seconds(s.Seconds)} ({string.Join(", ", s.Phases.Select(p => $"{p.Key.Replace('_', ' ')} {Drill.DrillRunner.Seconds(p.Value)}"))}).\n\n");
            if (planned is { Needs.Count: > 0 })
            {
                md.Append(CultureInfo.InvariantCulture, $"After: {string.Join(", ", planned.Needs)}.\n\n");
            }

            if (s.Placeholders.Count > 0)
            {
                md.Append(CultureInfo.InvariantCulture, $"Fill in: {string.Join(", ", s.Placeholders)}.\n\n");
            }

            if (s.Commands.Count > 0)
            {
                md.Append("```sh\n").AppendJoin('\n', s.Commands).Append("\n```\n\n");
            }

            if (s.Checks.Count > 0)
            {
                md.Append("Afterwards, check:\n\n");
                foreach (var c in s.Checks)
                {
                    md.Append(CultureInfo.InvariantCulture, $"- {c}\n");
                }

                md.Append('\n');
            }
        }

        foreach (var s in book.Release)
        {
            n++;
            md.Append(CultureInfo.InvariantCulture, $"## {n}. Last: release {s.Source}'s workloads\n\n")
                .Append("Held back until every source above is in, so they start on the data restored. Same placeholders as its step.\n\n```sh\n")
                .AppendJoin('\n', s.Commands).Append("\n```\n\n");
        }

        return md.ToString().TrimEnd() + "\n";
    }
}
