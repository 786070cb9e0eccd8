namespace Backstop.Cli.Verbs;

internal static class MetricsVerb
{
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
