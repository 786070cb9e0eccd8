using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class ListVerb
{
    /// <summary>The <c>list</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var listSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var listAll = new Option<bool>("--all") { Description = "Also the failed records older than each source's last backup (hidden by default)" };
        var list = new Command("list", "Snapshots, newest last; failed records only since each source's last backup, unless --all");
        var listMachines = new Option<string[]>("--machine", "-m") { Description = "Only the snapshots of the sources this machine runs (repeatable; adds to --source)", HelpName = "NAME" };
        list.Add(listSources);
        list.Add(listAll);
        list.Add(listMachines);
        list.SetAction((p, ct) => ListVerb.ExecuteAsync(Context.From(p), p.GetValue(listSources) ?? [], p.GetValue(listAll), p.GetValue(listMachines) ?? []));
        return list;
    }

    /// <param name="all">Also the failed records before each source's newest committed snapshot (hidden by default: they are history).</param>
    public static Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, bool all, IReadOnlyCollection<string>? machines = null)
    {
        var config = context.LoadConfig();
        Context.RequireSources(config, only);
        only = Context.WithMachines(config, only, machines ?? []);
        using var catalog = Context.OpenCatalog(config);
        var every = catalog.Snapshots().Where(s => only.Count == 0 || only.Contains(s.Source)).ToList();
        var lastCommitted = every.Where(s => s.State == SnapshotState.Committed).GroupBy(s => s.Source)
            .ToDictionary(g => g.Key, g => g.Max(s => s.StartedAt), StringComparer.Ordinal);
        var snapshots = all ? every
            : every.Where(s => s.State != SnapshotState.Failed || !lastCommitted.TryGetValue(s.Source, out var last) || s.StartedAt > last).ToList();
        var hidden = every.Count - snapshots.Count;
        var drills = catalog.Drills().ToLookup(d => d.Snapshot, StringComparer.Ordinal);
        if (context.Json)
        {
            JsonOutput.Write(new ListDocument([.. snapshots.Select(s => Describe(s, config, drills[s.Id].ToList()))], hidden));
            return Task.FromResult(ExitCodes.Ok);
        }

        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("snapshot").AddColumn("source").AddColumn("state").AddColumn("started (UTC)")
            .AddColumn(new TableColumn("took").RightAligned()).AddColumn(new TableColumn("raw").RightAligned())
            .AddColumn(new TableColumn("stored").RightAligned()).AddColumn("verified on").AddColumn("drill").AddColumn("note");
        foreach (var s in snapshots)
        {
            var minCopies = config.Source(s.Source)?.MinCopies ?? 1;
            var state = s.Condition(minCopies);
            table.AddRow(
                s.Id, Markup.Escape(s.Source), Terminal.StateMarkup(state), s.StartedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture),
                s.FinishedAt is { } f ? Terminal.Age(f - s.StartedAt) : "-",
                Quantities.FormatSize(s.RawBytes), Quantities.FormatSize(s.StoredBytes),
                Markup.Escape(string.Join(", ", s.VerifiedTargets)),
                drills[s.Id].LastOrDefault() is { } d ? (d.Passed ? "[green]passed[/] " : "[red]failed[/] ") + Core.Drill.DrillRunner.Seconds(d.Seconds) : "",
                Markup.Escape(s.Error ?? string.Join("; ", new[]
                {
                    s.Level > 0 ? $"level {s.Level} on {s.Parent}" : null, s.Warnings.Count > 0 ? $"{s.Warnings.Count} warning(s)" : null,
                }.OfType<string>())));
        }

        Terminal.Out.Write(table);
        if (hidden > 0)
        {
            Terminal.Out.MarkupLine($"{hidden} failed record(s) older than their source's last backup not shown; --all shows them");
        }

        return Task.FromResult(ExitCodes.Ok);
    }

    internal static SnapshotDocument Describe(SnapshotInfo s, BackstopConfig config, IReadOnlyList<DrillInfo> drills) => new(
        s.Id,
        s.Source,
        s.Kind,
        s.State.ToString().ToLowerInvariant(),
        s.Condition(config.Source(s.Source)?.MinCopies ?? 1),
        s.IsValid(config.Source(s.Source)?.MinCopies ?? 1),
        s.StartedAt,
        s.FinishedAt,
        s.Host,
        s.Level,
        s.Parent,
        s.RawBytes,
        s.StoredBytes,
        s.VerifiedTargets,
        s.Facts,
        s.Warnings,
        s.Error,
        [
            .. s.Artifacts.Select(a => new ArtifactDocument(a.Name, a.FileName, a.RawBytes, a.StoredBytes, a.Sha256, a.Compression, a.Facts, a.Reported, a.Level,
                [.. a.Copies.Select(c => new CopyDocument(c.Target, c.State.ToString().ToLowerInvariant(), c.CheckedAt, c.Error))])),
        ],
        [.. drills.Select(d => new SnapshotDrillDocument(d.At, d.Passed, d.Seconds, d.RtoSeconds, d.RtoMet, d.Error, d.Evidence))]);
}
