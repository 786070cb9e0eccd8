using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Locking;
using Backstop.Core.Run;

namespace Backstop.Cli.Verbs;

internal static class RunVerb
{
    /// <summary>The <c>run</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var sources = new Option<string[]>("--source", "-s")
        {
            Description = "Only this source (repeatable)",
            HelpName = "NAME",
            AllowMultipleArgumentsPerToken = false,
        };

        var noPrune = new Option<bool>("--no-prune")
        {
            Description = "Do not apply retention after the run (by default each source whose backup is valid is pruned by its rules)",
        };
        var acceptShrink = new Option<bool>("--accept-shrink")
        {
            Description = "Accept, for this run only, a count that fell to 0 or a shrink past max_shrink (needs --source); recorded on the snapshot, and history restarts there",
        };
        var run = new Command("run", "Back up now: capture, seal, ship, verify, commit; then apply retention to the sources backed up. Exit 0 all good, 1 a backup failed, 3 all valid but some degraded (a copy failed, an expectation warned)")
        {
            sources,
            noPrune
        };
        var wait = new Option<string?>("--wait")
        {
            Description = "When another run holds the lock, wait for it (up to DURATION, default 24h) instead of exiting 75; says so on stderr",
            HelpName = "DURATION",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var full = new Option<bool>("--full")
        {
            Description = "Store everything anew: each incremental source starts a new chain with a full snapshot (level 0), and shared blobs (registry layers) are sent again",
        };
        run.Add(acceptShrink);
        run.Add(wait);
        run.Add(full);
        run.SetAction((p, ct) => RunVerb.ExecuteAsync(Context.From(p), p.GetValue(sources) ?? [], !p.GetValue(noPrune), p.GetValue(acceptShrink), CommandLine.WaitOf(p, wait), ct, p.GetValue(full)));
        return run;
    }

    /// <param name="wait">null: a held lock exits 75 at once; else how long to wait for it (--wait[=DURATION]).</param>
    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, bool prune, bool acceptShrink, TimeSpan? wait,
        CancellationToken cancellationToken, bool full = false)
    {
        var config = context.LoadConfig();
        Context.RequireSources(config, only);
        foreach (var elsewhere in only.Select(n => config.Source(n)!).Where(d => !config.RunsHere(d)))
        {
            throw new ConfigException(
                $"--source {elsewhere.Name}: it runs on machine '{elsewhere.Machine}' (the catalog is shared: each agent runs its own machine's sources), and this is '{config.Machine}'; run it there");
        }

        var fleet = config;
        config = config.ForThisMachine();

        if (acceptShrink && only.Count == 0)
        {
            throw new ConfigException("--accept-shrink: name the source(s) whose shrink you accept with --source NAME; it never applies to every source at once");
        }

        if (config.Sources.Count == 0)
        {
            await Console.Error.WriteLineAsync(fleet.Sources.Count == 0
                ? $"backstop: {config.File} defines no sources: nothing to back up"
                : $"backstop: no source of {config.File} runs on machine '{config.Machine}' (theirs: {string.Join(", ", fleet.Sources.Select(d => d.Machine).Distinct(StringComparer.Ordinal))}): nothing to back up here; set machine: or BACKSTOP_MACHINE").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        using var runLock = wait is { } w
            ? await RunLock.AcquireAsync(config.LockPath, w, holder => Console.Error.WriteLine(
                $"backstop: waiting up to {Quantities.FormatDuration(w)} for the lock: {holder}"), cancellationToken).ConfigureAwait(false)
            : RunLock.Acquire(config.LockPath);
        using var catalog = Context.OpenCatalog(config);
        using var locks = FleetLocks.Open(catalog);
        if (locks is not null)
        {
            // On a shared catalog each source has its own lock on the engine: two agents never back up one source at once.
            var names = only.Count > 0 ? only.ToList() : config.Sources.Select(d => d.Name).ToList();
            await locks.TakeSourcesAsync(names, wait, holder => Console.Error.WriteLine($"backstop: waiting up to {Quantities.FormatDuration(wait!.Value)} for {holder}"),
                cancellationToken).ConfigureAwait(false);
            catalog.Locks = locks;
        }

        catalog.ReportMachine(config.Machine, config.Sources.Min(d => d.Rpo), DateTimeOffset.UtcNow);
        RunObserver observer = context.Interactive ? new LiveObserver() : new PlainObserver(context.Json ? Console.Error : Console.Out);
        if (runLock.TakenOverFrom is { } previous)
        {
            observer.Notice($"took over the lock {config.LockPath} left by {previous}, which is no longer running");
            catalog.AddEvent("warn", null, null, $"lock taken over from {previous}");
        }

        var results = observer is LiveObserver live
            ? await live.ShowWhileAsync(RunJob.RunAsync(config, Plugins.Registry, catalog, observer, only, prune, acceptShrink, cancellationToken, full)).ConfigureAwait(false)
            : await RunJob.RunAsync(config, Plugins.Registry, catalog, observer, only, prune, acceptShrink, cancellationToken, full).ConfigureAwait(false);

        if (context.Json)
        {
            JsonOutput.Write(new RunDocument(
            [
                .. results.Select(s => new RunSnapshotDocument(s.Id, s.Source, s.State.ToString().ToLowerInvariant(), s.StartedAt, s.FinishedAt, s.RawBytes,
                    s.StoredBytes, s.VerifiedTargets.Count, s.Facts, s.Warnings,
                    s.State == SnapshotState.Committed ? StatusReport.DegradedReasons(config.Source(s.Source)!, s) : [], s.Error)),
            ]));
        }

        if (results.Any(r => r.State != SnapshotState.Committed))
        {
            return ExitCodes.Failed;
        }

        // Valid, but not whole: said on stderr and by exit code 3, so a cron wrapper never mails "success" for it.
        var degraded = results.Select(r => (r, Reasons: StatusReport.DegradedReasons(config.Source(r.Source)!, r))).Where(x => x.Reasons.Count > 0).ToList();
        foreach (var (r, reasons) in degraded)
        {
            await Console.Error.WriteLineAsync($"backstop: {r.Source}: snapshot {r.Id} is valid but degraded: {string.Join("; ", reasons)}").ConfigureAwait(false);
        }

        return degraded.Count > 0 ? ExitCodes.Degraded : ExitCodes.Ok;
    }
}
