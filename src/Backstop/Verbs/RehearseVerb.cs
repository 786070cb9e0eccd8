using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Config;
using Backstop.Core.Drill;
using Backstop.Core.Recovery;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class RehearseVerb
{
    /// <summary>The <c>rehearse</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var scenarioName = new Argument<string>("SCENARIO") { Description = "A scenario of recovery.scenarios" };
        var rehearse = new Command("rehearse",
            "Rehearse a disaster: rebuild the view of the snapshots from the targets the scenario leaves (never the live catalog), restore every " +
            "source it loses from the surviving copies only, in dependency order, into scratch places with each kind's drill checks, measure the " +
            "total against the scenario's rto, and write the runbook that was just run (runbook-SCENARIO.md in drills/). Exit 0 when every restore " +
            "passed within the objective, 1 otherwise")
        {
            scenarioName
        };
        rehearse.SetAction((p, ct) => RehearseVerb.ExecuteAsync(Context.From(p), p.GetValue(scenarioName)!, ct));
        return rehearse;
    }

    public static async Task<int> ExecuteAsync(Context context, string scenario, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        using var catalog = Context.OpenCatalog(config);
        var runner = new RehearsalRunner(config, Plugins.Registry, catalog) { Progress = line => Console.Error.WriteLine($"backstop: {line}") };
        var result = await runner.RunAsync(scenario, cancellationToken).ConfigureAwait(false);
        using (var notifier = new Core.Notify.Notifier(config, catalog, line => Console.Error.WriteLine($"backstop: {line}")))
        {
            await notifier.RehearsalFinishedAsync(result, cancellationToken).ConfigureAwait(false);
        }

        if (context.Json)
        {
            JsonOutput.Write(result);
        }
        else
        {
            var rto = Quantities.FormatDuration(TimeSpan.FromSeconds(result.RtoSeconds));
            Terminal.Out.MarkupLine(result.Passed
                ? $"[green]rehearsal passed[/] {Markup.Escape(result.Scenario)}: the estate came back in {DrillRunner.Seconds(result.Seconds)}, within its rto of {rto}"
                : $"[red]rehearsal failed[/] {Markup.Escape(result.Scenario)}: {Markup.Escape(result.Error ?? "")}");
            foreach (var u in result.Unrecoverable)
            {
                Terminal.Out.MarkupLine($"  [red]unrecoverable[/] {Markup.Escape(u.Reason)}");
            }

            foreach (var r in result.Restores)
            {
                Terminal.Out.MarkupLine($"  {(r.Passed ? "[green]back[/]" : "[red]failed[/]")} {Markup.Escape(r.Source)}" +
                                        (r.Snapshot is null ? "" : $" snapshot {r.Snapshot} from '{Markup.Escape(r.Target ?? "?")}'") +
                                        $": {DrillRunner.Seconds(r.Seconds)}, from {r.Began:0.0}s to {r.Ended:0.0}s{(r.Error is null ? "" : ": " + Markup.Escape(r.Error))}");
            }

            if (result.CriticalPath.Count > 0)
            {
                Terminal.Out.MarkupLine($"  critical path: {Markup.Escape(string.Join(" → ", result.CriticalPath))}; the restores alone would take {DrillRunner.Seconds(result.SumOfRestores)} one after another");
            }

            foreach (var m in result.Manual)
            {
                Terminal.Out.MarkupLine($"  manual: {Markup.Escape(m.Step)} (estimated {Quantities.FormatDuration(TimeSpan.FromSeconds(m.EstimateSeconds))}, added)");
            }

            foreach (var note in result.Notes)
            {
                Terminal.Out.MarkupLine($"  note: {Markup.Escape(note)}");
            }

            if (result.Runbook is not null)
            {
                Terminal.Out.MarkupLine($"  runbook: {Markup.Escape(result.Runbook)}");
            }
        }

        return result.Passed ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
