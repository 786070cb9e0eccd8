using System.CommandLine;
using Backstop.Cli.Rendering;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class NotifyVerb
{
    /// <summary>The <c>notify</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var notifyTest = new Command("test", "Send a test message to every notifier (exit 1 when one could not be delivered)");
        notifyTest.SetAction((p, ct) => NotifyVerb.TestAsync(Context.From(p), ct));
        var notify = new Command("notify", "Notifiers (notify: in the configuration)")
        {
            notifyTest
        };
        return notify;
    }

    /// <summary><c>notify test</c>: a test message to every notifier; exit 1 when one could not be delivered.</summary>
    public static async Task<int> TestAsync(Context context, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        if (config.Notify.Count == 0)
        {
            await Console.Error.WriteLineAsync($"backstop: {config.File} configures no notifier (notify: [{{kind: email|webhook|healthchecks|ntfy, …}}])").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        using var catalog = Context.OpenCatalog(config);
        using var notifier = new Core.Notify.Notifier(config, catalog);
        var results = await notifier.TestAsync(cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            JsonOutput.Write(new NotifyTestDocument([.. results.Select(r => new NotifierTestDocument(r.Notifier, r.Error is null, r.Error))]));
        }
        else
        {
            foreach (var (name, error) in results)
            {
                Terminal.Out.MarkupLine(error is null ? $"[green]delivered[/] {Markup.Escape(name)}" : $"[red]failed[/] {Markup.Escape(name)}: {Markup.Escape(error)}");
            }
        }

        return results.All(r => r.Error is null) ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
