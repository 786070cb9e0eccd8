using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Pipeline;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class VerifyVerb
{
    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, bool deep, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        foreach (var name in only.Where(n => config.Source(n) is null))
        {
            throw new ConfigException($"--source {name}: no source has that name in {config.File}");
        }

        using var catalog = Context.OpenCatalog(config);
        var checks = await new VerifyRunner(config, Plugins.Registry, catalog).RunAsync(only, deep, cancellationToken).ConfigureAwait(false);
        var bad = checks.Where(c => c.State != CopyState.Verified).ToList();
        if (context.Json)
        {
            JsonOutput.Write(new
            {
                Deep = deep,
                Checked = checks.Count,
                Failed = bad.Count,
                Copies = checks.Select(c => new { c.Source, c.Snapshot, c.Artifact, c.Target, State = c.State.ToString().ToLowerInvariant(), c.Error }),
            });
        }
        else
        {
            foreach (var c in bad)
            {
                Terminal.Out.MarkupLine($"[red]{c.State.ToString().ToLowerInvariant()}[/] {Markup.Escape(c.Source)} {c.Snapshot} {Markup.Escape(c.Artifact)} on '{Markup.Escape(c.Target)}': {Markup.Escape(c.Error ?? "")}");
            }

            var what = deep ? "read back and hashed" : "checked for presence and size";
            Terminal.Out.MarkupLine(bad.Count == 0
                ? $"[green]{checks.Count} copies {what}: all verified[/]"
                : $"[red]{bad.Count} of {checks.Count} copies failed verification[/] ({what}); 'backstop status' shows what is still valid");
        }

        return bad.Count == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
