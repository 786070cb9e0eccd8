using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Config;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class ShowVerb
{
    /// <summary>The <c>show</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var snapshot = new Argument<string>("SNAPSHOT") { Description = "A snapshot id, a prefix of one only it has (at least 4 characters), or latest (see list)" };
        var showSources = new Option<string[]>("--source", "-s") { Description = "The source whose snapshot is meant (for latest, or to narrow a prefix)", HelpName = "NAME" };
        var show = new Command("show", "A snapshot's artifacts, copies and facts")
        {
            snapshot,
            showSources
        };
        show.SetAction((p, ct) => ShowVerb.ExecuteAsync(Context.From(p), p.GetValue(snapshot)!, p.GetValue(showSources) ?? []));
        return show;
    }

    /// <param name="id">An id, a prefix only one snapshot has, or <c>latest</c> (of <paramref name="only"/>, or of the one source).</param>
    public static Task<int> ExecuteAsync(Context context, string id, IReadOnlyCollection<string> only)
    {
        var config = context.LoadConfig();
        using var catalog = Context.OpenCatalog(config);
        var s = Context.FindSnapshot(config, catalog, id, only);
        if (context.Json)
        {
            JsonOutput.Write(ListVerb.Describe(s, config, catalog.Drills(snapshot: s.Id)));
            return Task.FromResult(ExitCodes.Ok);
        }

        var o = Terminal.Out;
        o.MarkupLine($"[bold]snapshot[/] {s.Id}   [bold]source[/] {Markup.Escape(s.Source)} ({s.Kind})   [bold]host[/] {Markup.Escape(s.Host)}");
        // The snapshot's condition as list and the README name it (valid, short, unverified, unrestorable, pruned, failed, running).
        o.MarkupLine($"[bold]state[/] {Terminal.StateMarkup(s.Condition(config.Source(s.Source)?.MinCopies ?? 1))}   [bold]started[/] {s.StartedAt:u}   [bold]finished[/] {s.FinishedAt:u}");
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
