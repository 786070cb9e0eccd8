using System.CommandLine;
using Backstop.Core.Catalog;
using Backstop.Core.Config;

namespace Backstop.Cli;

/// <summary>What every verb starts from: the configuration file and the output mode.</summary>
internal sealed record Context(string ConfigFile, bool Json)
{
    public static Context From(ParseResult parse)
    {
        var file = parse.GetValue(CommandLine.Config)
                   ?? (Environment.GetEnvironmentVariable("BACKSTOP_CONFIG") is { Length: > 0 } env ? env : "backstop.yaml");
        return new Context(file, parse.GetValue(CommandLine.Json));
    }

    public BackstopConfig LoadConfig() => ConfigLoader.Load(ConfigFile, Plugins.Registry);

    public static CatalogStore OpenCatalog(BackstopConfig config) => CatalogStore.Open(config.CatalogPath);

    /// <summary>True when progress may be drawn live: a terminal, and no JSON.</summary>
    public bool Interactive => !Json && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not (null or "dumb");
}
