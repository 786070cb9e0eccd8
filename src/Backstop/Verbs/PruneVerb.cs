using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Config;
using Backstop.Core.Locking;
using Backstop.Core.Retention;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

/// <summary><c>backstop prune [--dry-run] [--force] [--source NAME]</c>: apply retention, saying for each snapshot why it stays or goes.</summary>
internal static class PruneVerb
{
    /// <summary>The <c>prune</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var pruneSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var pruneDryRun = new Option<bool>("--dry-run", "-n") { Description = "Only say what would be removed, and why each snapshot stays" };
        var pruneForce = new Option<bool>("--force") { Description = "Prune even a source whose newest snapshot is not valid" };
        var prune = new Command("prune", "Apply retention: remove snapshots no rule keeps (never the newest valid one)")
        {
            pruneSources,
            pruneDryRun,
            pruneForce
        };
        prune.SetAction((p, ct) => PruneVerb.ExecuteAsync(Context.From(p), p.GetValue(pruneSources) ?? [], p.GetValue(pruneDryRun), p.GetValue(pruneForce), ct));
        return prune;
    }

    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, bool dryRun, bool force, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        Context.RequireSources(config, only);

        foreach (var elsewhere in only.Select(n => config.Source(n)!).Where(d => !config.RunsHere(d)))
        {
            throw new ConfigException($"--source {elsewhere.Name}: it runs on machine '{elsewhere.Machine}' (the catalog is shared): prune it there, where its lock is taken");
        }

        config = config.ForThisMachine(); // a fleet's agent prunes its own sources, under their locks
        using var runLock = RunLock.Acquire(config.LockPath); // never while a run writes
        using var catalog = Context.OpenCatalog(config);
        using var locks = FleetLocks.Open(catalog);
        if (locks is not null && !dryRun)
        {
            await locks.TakeSourcesAsync(only.Count > 0 ? only.ToList() : config.Sources.Select(d => d.Name).ToList(), null, _ => { }, cancellationToken).ConfigureAwait(false);
            catalog.Locks = locks;
        }

        var observer = new PlainObserver(context.Json ? Console.Error : Console.Out);
        var lines = await new Pruner(config, Plugins.Registry, catalog, observer).RunAsync(only, dryRun, force, cancellationToken).ConfigureAwait(false);
        var pending = lines.Count(l => l.Pending);
        if (context.Json)
        {
            JsonOutput.Write(new PruneDocument(dryRun,
            [
                .. lines.Select(l => new PruneLineDocument(l.Source, l.Target, l.Snapshot, l.Time,
                    l.Keep ? "keep" : dryRun ? "would remove" : l.Pending ? "removal pending" : "removed", l.Why)),
            ]));
            return pending == 0 ? ExitCodes.Ok : ExitCodes.Failed;
        }

        foreach (var l in lines)
        {
            var action = l.Keep ? "[green]keep[/]  " : dryRun ? "[yellow]would remove[/]" : l.Pending ? "[red]removal pending[/]" : "[red]removed[/]";
            Terminal.Out.MarkupLine($"{action} {Markup.Escape(l.Source)} {l.Snapshot} on {Markup.Escape(l.Target)}: {Markup.Escape(l.Why)}");
        }

        var removed = lines.Count(l => !l.Keep && !l.Pending);
        Terminal.Out.MarkupLine(dryRun
            ? $"{removed} snapshot cop{(removed == 1 ? "y" : "ies")} would be removed (dry run: nothing was)"
            : $"{removed} snapshot cop{(removed == 1 ? "y" : "ies")} removed");
        if (pending > 0)
        {
            Console.Error.WriteLine($"{pending} snapshot cop{(pending == 1 ? "y" : "ies")} could not be removed (the target refused, see above); " +
                                    "they no longer count as backups and the next run removes them");
        }

        return pending == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
