using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Config;
using Backstop.Core.Drill;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class DrillVerb
{
    /// <summary>The <c>drill</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var drillSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var drillSnapshot = new Option<string?>("--snapshot")
        {
            Description = "Which snapshot: latest (default), random (any valid one), or an id (with one --source)", HelpName = "ID|latest|random",
        };
        var drillIdentity = new Option<string[]>("--identity", "-i") { Description = "An age identity file for encrypted snapshots (besides encryption.identities)", HelpName = "FILE" };
        var drill = new Command("drill",
            "Prove a backup restores: restore a snapshot into a scratch place Backstop creates and always removes (a folder, a throwaway server), " +
            "compare its facts, run the kind's checks and smoke queries, and measure the restore (the RTO). Recorded, with an evidence file in drills/ " +
            "beside the catalog. Exit 0 when every drill passed, 1 otherwise");
        var drillTarget = new Option<string?>("--target", "-t")
        {
            Description = "Restore from this target's copy only (by default a source's drills rotate over its targets, least recently drilled first)", HelpName = "NAME",
        };
        drill.Add(drillSources);
        drill.Add(drillSnapshot);
        drill.Add(drillIdentity);
        drill.Add(drillTarget);
        drill.SetAction((p, ct) => DrillVerb.ExecuteAsync(Context.From(p), p.GetValue(drillSources) ?? [], p.GetValue(drillSnapshot), p.GetValue(drillIdentity) ?? [],
            p.GetValue(drillTarget), ct));
        return drill;
    }

    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, string? snapshot, IReadOnlyList<string> identityFiles,
        string? target, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        Context.RequireSources(config, only);
        if (target is not null && config.Targets.All(t => t.Name != target))
        {
            throw new ConfigException($"--target {target}: no target has that name in {config.File}; defined targets: {string.Join(", ", config.Targets.Select(t => t.Name))}");
        }

        if (snapshot is not null && snapshot is not ("latest" or "random") && only.Count != 1)
        {
            throw new ConfigException($"--snapshot {snapshot}: a snapshot id belongs to one source; name it with --source");
        }

        using var catalog = Context.OpenCatalog(config);
        var runner = new DrillRunner(config, Plugins.Registry, catalog)
        {
            ExtraIdentityFiles = identityFiles.Select(Path.GetFullPath).ToList(),
            Progress = line => Console.Error.WriteLine($"backstop: {line}"),
            Target = target,
        };
        var results = await runner.RunAsync(only, snapshot, cancellationToken).ConfigureAwait(false);
        using (var notifier = new Core.Notify.Notifier(config, catalog, line => Console.Error.WriteLine($"backstop: {line}")))
        {
            await notifier.DrillsFinishedAsync(results, cancellationToken).ConfigureAwait(false);
        }

        if (context.Json)
        {
            JsonOutput.Write(new DrillsDocument(results));
        }
        else
        {
            foreach (var r in results)
            {
                var rto = r.RtoSeconds is { } o
                    ? $", RTO objective {Quantities.FormatDuration(TimeSpan.FromSeconds(o))} {(r.RtoMet == true ? "met" : r.RtoMet == false ? "[red]missed[/]" : "not measured")}"
                    : "";
                Terminal.Out.MarkupLine(r.Passed
                    ? $"[green]drill passed[/] {Markup.Escape(r.Source)} snapshot {r.Snapshot}{(r.Copies.FirstOrDefault() is { } used ? $" from '{Markup.Escape(used.Target)}'" : "")}: " +
                      $"restored in {DrillRunner.Seconds(r.Seconds)}{rto} ({r.Checks.Count} checks)"
                    : $"[red]drill failed[/] {Markup.Escape(r.Source)}{(r.Snapshot is null ? "" : $" snapshot {r.Snapshot}")}: {Markup.Escape(r.Error ?? "")}{rto}");
                foreach (var c in r.Checks.Where(c => !c.Passed))
                {
                    Terminal.Out.MarkupLine($"  [red]failed[/] {Markup.Escape(c.Name)}: expected {Markup.Escape(c.Expected)}, found {Markup.Escape(c.Found)}");
                }

                foreach (var note in r.Notes)
                {
                    Terminal.Out.MarkupLine($"  note: {Markup.Escape(note)}");
                }

                if (r.Evidence is not null)
                {
                    Terminal.Out.MarkupLine($"  evidence: {Markup.Escape(r.Evidence)}");
                }
            }
        }

        return results.Count > 0 && results.All(r => r.Passed) ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
