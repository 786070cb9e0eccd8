using System.CommandLine;
using Backstop.Core.Config;
using Backstop.Core.Run;

namespace Backstop.Cli.Verbs;

/// <summary>
/// <c>wal-push [--source NAME] PATH</c>, PostgreSQL's <c>archive_command</c>: exit 0 once <c>min_copies</c> targets hold
/// the file verified (PostgreSQL then recycles it), non-zero otherwise (PostgreSQL keeps it and retries). One line on
/// stderr, which PostgreSQL writes into its log.
/// </summary>
internal static class WalPushVerb
{
    /// <summary>The <c>wal-push</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var walPath = new Argument<string>("PATH") { Description = "The WAL file (archive_command's %p)" };
        var walSource = new Option<string?>("--source", "-s") { Description = "The physical postgres source it belongs to (needed when there are several)", HelpName = "NAME" };
        var walPush = new Command("wal-push",
            "PostgreSQL's archive_command (archive_command = 'backstop -c FILE wal-push %p'): ship one WAL file to the source's targets through " +
            "the same pipeline as a backup, read it back, and record the LSN range it covers. Exit 0 once min_copies targets hold it (idempotent for " +
            "the same content; other content under the same name is refused), non-zero otherwise (PostgreSQL keeps it and retries). Never waits for the run lock")
        {
            walPath,
            walSource
        };
        walPush.SetAction((p, ct) => WalPushVerb.ExecuteAsync(Context.From(p), p.GetValue(walSource), p.GetValue(walPath)!, ct));
        return walPush;
    }

    public static async Task<int> ExecuteAsync(Context context, string? source, string path, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        var candidates = config.Sources.Where(s => source is null || s.Name == source)
            .Where(s => Plugins.Registry.Source(s.Kind)!.Create(s).Capability<Core.Plugins.IContinuousArchive>() is not null).ToList();
        var def = source is not null
            ? config.Source(source) ?? throw new ConfigException($"--source {source}: no source has that name in {config.File}")
            : candidates.Count == 1 ? candidates[0]
            : throw new ConfigException(candidates.Count == 0
                ? $"wal-push: no source in {config.File} keeps a WAL archive (a postgres source with mode: physical)"
                : $"wal-push: name the source with --source (one of {string.Join(", ", candidates.Select(c => c.Name))})");
        using var catalog = Context.OpenCatalog(config);
        var result = await new ArchivePusher(config, Plugins.Registry, catalog).PushAsync(def, path, cancellationToken).ConfigureAwait(false);
        if (result.LetGoAt is not null)
        {
            await Console.Error.WriteLineAsync($"backstop wal-push: ERROR: {result.Item.Name} of '{def.Name}' is on {result.Verified} of the {result.Needed} target(s) min_copies needs, " +
                                               $"and PostgreSQL holds back {Core.Config.Quantities.FormatSize(result.LetGoAt.Value)} of WAL, over wal.queue_max: let go so that the server keeps running; " +
                                               $"the recovery window breaks here until a new base backup; {string.Join("; ", result.Problems)}").ConfigureAwait(false);
            return ExitCodes.Ok;
        }

        if (result.Succeeded)
        {
            await Console.Error.WriteLineAsync($"backstop wal-push: {result.Item.Name} of '{def.Name}' " +
                                               (result.AlreadyStored ? $"already archived on {result.Verified} target(s)" : $"archived on {result.Verified} target(s)") +
                                               (result.Problems.Count > 0 ? $"; not yet on the others: {string.Join("; ", result.Problems)}" : "")).ConfigureAwait(false);
            return ExitCodes.Ok;
        }

        await Console.Error.WriteLineAsync($"backstop wal-push: {result.Item.Name} of '{def.Name}' is on {result.Verified} of the {result.Needed} target(s) min_copies needs; " +
                                           $"PostgreSQL keeps it and retries: {string.Join("; ", result.Problems)}").ConfigureAwait(false);
        return ExitCodes.Failed;
    }
}
