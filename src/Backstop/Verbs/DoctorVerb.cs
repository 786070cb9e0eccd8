using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Doctor;
using Backstop.Core.Plugins;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class DoctorVerb
{
    /// <summary>The <c>doctor</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var doctorSources = new Option<string[]>("--source", "-s") { Description = "Only this source and its targets (repeatable)", HelpName = "NAME" };
        var doctor = new Command("doctor",
            "Check everything backups depend on without backing anything up: every source's and target's preflight (tools, credentials, a probe " +
            "object), free space, replication, databases no source covers, crontabs and timers, single points of failure, freshness, drills, " +
            "clocks, the configuration file's permissions. Exit 1 when a check fails; warnings alone exit 0")
        {
            doctorSources
        };
        doctor.SetAction((p, ct) => DoctorVerb.ExecuteAsync(Context.From(p), p.GetValue(doctorSources) ?? [], ct));
        return doctor;
    }

    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        Context.RequireSources(config, only);

        using var catalog = Context.OpenCatalog(config);
        var findings = await new DoctorRunner(config, Plugins.Registry, catalog).RunAsync(only, cancellationToken).ConfigureAwait(false);
        if (only.Count == 0)
        {
            using var notifier = new Core.Notify.Notifier(config, catalog, line => Console.Error.WriteLine($"backstop: {line}"));
            await notifier.DoctorFinishedAsync(findings, cancellationToken).ConfigureAwait(false);
        }

        if (context.Json)
        {
            JsonOutput.Write(new DoctorDocument([.. findings.Select(f => new DoctorCheckDocument(f.Check, f.Subject, f.Status.ToString().ToLowerInvariant(), f.Message, f.Fix))]));
        }
        else
        {
            foreach (var f in findings)
            {
                var status = f.Status switch
                {
                    FindingStatus.Ok => "[green]ok  [/]",
                    FindingStatus.Warn => "[yellow]warn[/]",
                    _ => "[red]FAIL[/]",
                };
                Terminal.Out.MarkupLine($"{status} {Markup.Escape(f.Check),-11} {Markup.Escape(f.Subject)}: {Markup.Escape(f.Message)}");
                if (f.Fix is not null && f.Status != FindingStatus.Ok)
                {
                    Terminal.Out.MarkupLine($"     fix: {Markup.Escape(f.Fix)}");
                }
            }

            var failed = findings.Count(f => f.Status == FindingStatus.Fail);
            var warned = findings.Count(f => f.Status == FindingStatus.Warn);
            Terminal.Out.MarkupLine(failed > 0
                ? $"[red]{failed} check(s) failed[/], {warned} warning(s), {findings.Count} checks"
                : $"[green]no check failed[/], {warned} warning(s), {findings.Count} checks");
        }

        return findings.Any(f => f.Status == FindingStatus.Fail) ? ExitCodes.Failed : ExitCodes.Ok;
    }
}
