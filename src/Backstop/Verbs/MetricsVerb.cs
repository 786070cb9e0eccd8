using System.CommandLine;
namespace Backstop.Cli.Verbs;

internal static class MetricsVerb
{
    /// <summary>The <c>metrics</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var textfile = new Option<string?>("--textfile")
        {
            Description = "Write them into this file for node_exporter's textfile collector (atomically: written aside, then renamed)", HelpName = "PATH",
        };
        var metrics = new Command("metrics", "The Prometheus metrics of what the catalog recorded (state per source, last success, age, RPO, copies, drills, runs), on stdout or --textfile")
        {
            textfile
        };
        metrics.SetAction((p, ct) => MetricsVerb.ExecuteAsync(Context.From(p), p.GetValue(textfile), ct));
        return metrics;
    }

    /// <summary><c>metrics [--textfile PATH]</c>: the Prometheus metrics, on stdout or into node_exporter's textfile (atomically).</summary>
    public static async Task<int> ExecuteAsync(Context context, string? textfile, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        using var catalog = Context.OpenCatalog(config);
        if (textfile is null)
        {
            await using var stdout = Console.OpenStandardOutput();
            await Core.Metrics.MetricsExporter.WriteAsync(config, catalog, stdout, cancellationToken).ConfigureAwait(false);
            return ExitCodes.Ok;
        }

        if (Path.GetDirectoryName(Path.GetFullPath(textfile)) is not { } folder || !Directory.Exists(folder))
        {
            throw new Core.Config.ConfigException($"--textfile {textfile}: the folder does not exist (node_exporter's --collector.textfile.directory)");
        }

        await Core.Metrics.MetricsExporter.WriteTextfileAsync(config, catalog, textfile, cancellationToken).ConfigureAwait(false);
        return ExitCodes.Ok;
    }
}
