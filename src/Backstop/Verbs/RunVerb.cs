using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Locking;
using Backstop.Core.Pipeline;

namespace Backstop.Cli.Verbs;

internal static class RunVerb
{
    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        foreach (var name in only)
        {
            if (config.Source(name) is null)
            {
                throw new ConfigException(
                    $"--source {name}: no source has that name in {config.File}; defined sources: {string.Join(", ", config.Sources.Select(s => s.Name))}");
            }
        }

        if (config.Sources.Count == 0)
        {
            await Console.Error.WriteLineAsync($"backstop: {config.File} defines no sources: nothing to back up").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        using var runLock = RunLock.Acquire(config.LockPath);
        using var catalog = Context.OpenCatalog(config);
        RunObserver observer = context.Interactive ? new LiveObserver() : new PlainObserver(context.Json ? Console.Error : Console.Out);
        if (runLock.TakenOverFrom is { } previous)
        {
            observer.Notice($"took over the lock {config.LockPath} left by {previous}, which is no longer running");
            catalog.AddEvent("warn", null, null, $"lock taken over from {previous}");
        }

        var runner = new BackupRunner(config, Plugins.Registry, catalog, observer);
        var work = runner.RunAsync(only, cancellationToken);
        var results = observer is LiveObserver live ? await live.ShowWhileAsync(work).ConfigureAwait(false) : await work.ConfigureAwait(false);

        if (context.Json)
        {
            JsonOutput.Write(new
            {
                Snapshots = results.Select(s => new
                {
                    Snapshot = s.Id,
                    s.Source,
                    State = s.State.ToString().ToLowerInvariant(),
                    s.StartedAt,
                    s.FinishedAt,
                    s.RawBytes,
                    s.StoredBytes,
                    VerifiedCopies = s.VerifiedTargets.Count,
                    s.Facts,
                    s.Warnings,
                    s.Error,
                }),
            });
        }

        return results.All(r => r.State == SnapshotState.Committed) ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
