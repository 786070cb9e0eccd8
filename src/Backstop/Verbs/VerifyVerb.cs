using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Verify;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class VerifyVerb
{
    /// <summary>The <c>verify</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var verifySources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var deep = new Option<bool>("--deep") { Description = "Read every copy back and check its SHA-256 and format, not only its size" };
        var verify = new Command("verify", "Check that every copy still exists with the right size (--deep: and content)")
        {
            verifySources,
            deep
        };
        verify.SetAction((p, ct) => VerifyVerb.ExecuteAsync(Context.From(p), p.GetValue(verifySources) ?? [], p.GetValue(deep), ct));
        return verify;
    }

    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, bool deep, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        Context.RequireSources(config, only);

        using var catalog = Context.OpenCatalog(config);
        var report = await new VerifyRunner(config, Plugins.Registry, catalog).RunAsync(only, deep, cancellationToken).ConfigureAwait(false);
        var checks = report.Copies;
        // A verified copy with an error is one the configured key does not open: the key's problem, said every time.
        var bad = checks.Where(c => c.State != CopyState.Verified || c.Error is not null).ToList();
        if (context.Json)
        {
            JsonOutput.Write(new VerifyDocument(deep, checks.Count, bad.Count,
                [.. checks.Select(c => new VerifiedCopyDocument(c.Source, c.Snapshot, c.Artifact, c.Target, c.State.ToString().ToLowerInvariant(), c.Error))],
                [.. report.Lacking.Select(l => new LackingCopyDocument(l.Source, l.Snapshot, l.Target, l.State, l.Error))]));
        }
        else
        {
            foreach (var c in bad)
            {
                Terminal.Out.MarkupLine($"[red]{(c.State == CopyState.Verified ? "key" : c.State.ToString().ToLowerInvariant())}[/] {Markup.Escape(c.Source)} {c.Snapshot} {Markup.Escape(c.Artifact)} on '{Markup.Escape(c.Target)}': {Markup.Escape(c.Error ?? "")}");
            }

            foreach (var l in report.Lacking)
            {
                Terminal.Out.MarkupLine($"[yellow]no verified copy on target '{Markup.Escape(l.Target)}'[/] of {Markup.Escape(l.Source)} {l.Snapshot} ({l.State}: {Markup.Escape(l.Error)}); the next run heals it when the target is back");
            }

            var what = deep ? "read back and hashed" : "checked for presence and size";
            Terminal.Out.MarkupLine(bad.Count == 0
                ? report.Lacking.Count == 0
                    ? $"[green]{checks.Count} copies {what}: all verified[/]"
                    : $"[yellow]{checks.Count} copies {what}: all verified, but {report.Lacking.Count} snapshot cop{(report.Lacking.Count == 1 ? "y is" : "ies are")} missing from configured targets[/]"
                : $"[red]{bad.Count} of {checks.Count} copies failed verification[/] ({what}); 'backstop status' shows what is still valid");
        }

        return bad.Count > 0 || report.Lacking.Count > 0 ? ExitCodes.Failed : ExitCodes.Ok;
    }
}
