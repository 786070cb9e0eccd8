using Backstop.Cli.Rendering;

namespace Backstop.Cli.Verbs;

internal static class ConfigVerb
{
    public static Task<int> CheckAsync(Context context, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        if (context.Json)
        {
            JsonOutput.Write(new
            {
                Valid = true,
                config.File,
                Catalog = config.CatalogPath,
                Staging = config.StagingPath,
                Targets = config.Targets.Select(t => new { t.Name, t.Kind }),
                Sources = config.Sources.Select(s => new
                {
                    s.Name, s.Kind, s.Targets, s.MinCopies, RpoSeconds = (long)s.Rpo.TotalSeconds,
                    Expectations = s.Expect.Describe(Plugins.Registry.Source(s.Kind)!.CountFacts),
                }),
            });
        }
        else
        {
            Console.WriteLine($"{config.File}: valid ({config.Targets.Count} target(s), {config.Sources.Count} source(s); catalog {config.CatalogPath})");
            foreach (var s in config.Sources)
            {
                Console.WriteLine($"source {s.Name} ({s.Kind}): {s.MinCopies} verified cop{(s.MinCopies == 1 ? "y" : "ies")} of {string.Join(", ", s.Targets)}; RPO {Core.Config.Quantities.FormatDuration(s.Rpo)}; expectations:");
                foreach (var rule in s.Expect.Describe(Plugins.Registry.Source(s.Kind)!.CountFacts))
                {
                    Console.WriteLine($"  - {rule}");
                }
            }
        }

        return Task.FromResult(ExitCodes.Ok);
    }
}
