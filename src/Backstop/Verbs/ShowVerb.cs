using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class ShowVerb
{
    /// <param name="id">An id, a prefix only one snapshot has, or <c>latest</c> (of <paramref name="only"/>, or of the one source).</param>
    public static Task<int> ExecuteAsync(Context context, string id, IReadOnlyCollection<string> only, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        using var catalog = Context.OpenCatalog(config);
        foreach (var name in only.Where(n => config.Source(n) is null))
        {
            throw new ConfigException($"--source {name}: no source has that name in {config.File}; defined sources: {string.Join(", ", config.Sources.Select(d => d.Name))}");
        }

        var sources = only.Count > 0 ? only.ToList() : config.Sources.Select(d => d.Name).ToList();
        var snapshots = sources.Count == config.Sources.Count ? catalog.Snapshots() : sources.SelectMany(n => catalog.Snapshots(n)).OrderBy(x => x.StartedAt).ToList();
        var where = only.Count > 0 ? $"source {string.Join(", ", only.Select(n => $"'{n}'"))}" : $"the catalog {config.CatalogPath}";
        var s = SnapshotNames.Resolve(snapshots, id, where);
        if (s is null)
        {
            // latest: the newest backup (committed) of the one source named or configured.
            if (sources.Count != 1)
            {
                throw new ConfigException($"SNAPSHOT latest: of which source? add --source NAME (defined: {string.Join(", ", config.Sources.Select(d => d.Name))})");
            }

            s = snapshots.LastOrDefault(x => x.State == SnapshotState.Committed)
                ?? throw new ConfigException($"SNAPSHOT latest: source '{sources[0]}' has no committed snapshot yet; see 'backstop list --source {sources[0]}'");
        }

        if (context.Json)
        {
            JsonOutput.Write(ListVerb.Describe(s, config, catalog.Drills(snapshot: s.Id)));
            return Task.FromResult(ExitCodes.Ok);
        }

        var o = Terminal.Out;
        var valid = s.IsValid(config.Source(s.Source)?.MinCopies ?? 1);
        o.MarkupLine($"[bold]snapshot[/] {s.Id}   [bold]source[/] {Markup.Escape(s.Source)} ({s.Kind})   [bold]host[/] {Markup.Escape(s.Host)}");
        o.MarkupLine($"[bold]state[/] {Terminal.StateMarkup(s.State.ToString().ToLowerInvariant())}{(valid ? " (valid)" : " [red](not valid)[/]")}   [bold]started[/] {s.StartedAt:u}   [bold]finished[/] {s.FinishedAt:u}");
        o.MarkupLine($"[bold]size[/] {Quantities.FormatSize(s.RawBytes)} captured, {Quantities.FormatSize(s.StoredBytes)} stored");
        o.MarkupLine($"[bold]facts[/] {Markup.Escape(string.Join(", ", s.Facts.Select(f => $"{f.Key}={f.Value}")))}");
        if (s.Error is not null)
        {
            o.MarkupLine($"[red bold]error[/] {Markup.Escape(s.Error)}");
        }

        foreach (var w in s.Warnings)
        {
            o.MarkupLine($"[yellow]warning[/] {Markup.Escape(w)}");
        }

        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("artifact").AddColumn("file").AddColumn(new TableColumn("raw").RightAligned()).AddColumn(new TableColumn("stored").RightAligned())
            .AddColumn("sha256").AddColumn("facts").AddColumn("copies");
        foreach (var a in s.Artifacts)
        {
            table.AddRow(
                Markup.Escape(a.Name), Markup.Escape(a.FileName), Quantities.FormatSize(a.RawBytes), Quantities.FormatSize(a.StoredBytes),
                a.Sha256[..16] + "…", Markup.Escape(string.Join(", ", a.Facts.Select(f => $"{f.Key}={f.Value}" + (a.Reported.Contains(f.Key) ? " (reported)" : "")))),
                string.Join("\n", a.Copies.Select(c => $"{Markup.Escape(c.Target)}: {Terminal.StateMarkup(c.State.ToString().ToLowerInvariant())}{(c.Error is null ? "" : " " + Markup.Escape(c.Error))}")));
        }

        o.Write(table);
        foreach (var d in catalog.Drills(snapshot: s.Id))
        {
            o.MarkupLine($"[bold]drill[/] {d.At:u} {(d.Passed ? "[green]passed[/]" : "[red]failed[/]")} restored in {Core.Drill.DrillRunner.Seconds(d.Seconds)}" +
                         (d.RtoSeconds is { } rto ? $" (rto {Quantities.FormatDuration(TimeSpan.FromSeconds(rto))}{(d.RtoMet switch { false => " [red]missed[/]", true => " met", null => " not measured" })})" : "") +
                         (d.Error is null ? "" : $": {Markup.Escape(d.Error)}") + (d.Evidence is null ? "" : $"\n      evidence: {Markup.Escape(d.Evidence)}"));
        }

        return Task.FromResult(ExitCodes.Ok);
    }
}
