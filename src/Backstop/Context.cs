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

    public static CatalogStore OpenCatalog(BackstopConfig config)
    {
        var catalog = CatalogStore.Open(config);
        if (config.Group is { } group && config.CatalogServer is null)
        {
            Core.FileSystem.SharedState.ShareWith(config.CatalogPath, group);
        }

        return catalog;
    }

    /// <summary>
    /// The sources a person named with <c>--source</c> and <c>--machine</c> (each machine's sources; both add up); empty
    /// when neither was given (every source). A machine no source runs on is refused, with the machines that exist.
    /// </summary>
    public static IReadOnlyCollection<string> WithMachines(BackstopConfig config, IReadOnlyCollection<string> only, IReadOnlyCollection<string> machines)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (machines.Count == 0)
        {
            return only;
        }

        var known = config.Sources.Select(s => s.Machine).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        foreach (var m in machines.Where(m => !known.Contains(m)))
        {
            throw new ConfigException($"--machine {m}: no source of {config.File} runs on it; machines: {string.Join(", ", known)}");
        }

        return only.Concat(config.Sources.Where(s => machines.Contains(s.Machine)).Select(s => s.Name)).Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>Every <c>--source</c> named must be a configured source: one message for every verb.</summary>
    public static void RequireSources(BackstopConfig config, IEnumerable<string> names)
    {
        foreach (var name in names.Where(n => config.Source(n) is null))
        {
            throw new ConfigException($"--source {name}: no source has that name in {config.File}; defined sources: {string.Join(", ", config.Sources.Select(s => s.Name))}");
        }
    }

    /// <summary>
    /// The snapshot a person named (show, ls): an id, a prefix only one snapshot has, or <c>latest</c> — the newest
    /// committed one of the one source named with <c>--source</c>, or configured.
    /// </summary>
    public static SnapshotInfo FindSnapshot(BackstopConfig config, CatalogStore catalog, string name, IReadOnlyCollection<string> only)
    {
        RequireSources(config, only);
        var sources = only.Count > 0 ? only.ToList() : config.Sources.Select(d => d.Name).ToList();
        var snapshots = sources.SelectMany(n => catalog.Snapshots(n)).OrderBy(x => x.StartedAt).ToList();
        var where = only.Count > 0 ? $"source {string.Join(", ", only.Select(n => $"'{n}'"))}" : $"the {catalog.Describe}";
        if (SnapshotNames.Resolve(snapshots, name, where) is { } found)
        {
            return found;
        }

        if (sources.Count != 1)
        {
            throw new ConfigException($"SNAPSHOT latest: of which source? add --source NAME (defined: {string.Join(", ", config.Sources.Select(d => d.Name))})");
        }

        // The same snapshot restore and drill take for latest: the newest with a verified copy on a configured target.
        return SnapshotNames.Latest(snapshots, config.Targets.Select(t => t.Name).ToHashSet(StringComparer.Ordinal), config.File)
               ?? throw new ConfigException($"SNAPSHOT latest: source '{sources[0]}' has no committed snapshot with a verified copy yet; see 'backstop list --source {sources[0]}'");
    }

    /// <summary>True when progress may be drawn live: a terminal, and no JSON.</summary>
    public bool Interactive => !Json && !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("TERM") is not (null or "dumb");
}
