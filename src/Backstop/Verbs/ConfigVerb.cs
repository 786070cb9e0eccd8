using System.CommandLine;
using Backstop.Cli.Rendering;

namespace Backstop.Cli.Verbs;

internal static class ConfigVerb
{
    /// <summary>The <c>config</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var config = new Command("config", "Configuration");
        var check = new Command("check", "Validate the configuration and print the expectations in force per source");
        check.SetAction((p, ct) => ConfigVerb.CheckAsync(Context.From(p)));
        config.Add(check);
        var reference = new Command("reference", "Print the configuration reference (Markdown): every key of every kind, its type, default and an example; docs/configuration.md is this");
        reference.SetAction((p, ct) => ConfigVerb.ReferenceAsync(ct));
        config.Add(reference);
        return config;
    }

    /// <summary>The configuration reference, made from the documented keys and the parsers; a disagreement is an error.</summary>
    public static async Task<int> ReferenceAsync(CancellationToken cancellationToken)
    {
        var (markdown, problems) = Docs.ConfigReferenceDocument.Build(Plugins.Registry);
        foreach (var problem in problems)
        {
            await Console.Error.WriteLineAsync($"backstop: reference: {problem}").ConfigureAwait(false);
        }

        await Console.Out.WriteAsync(markdown.AsMemory(), cancellationToken).ConfigureAwait(false);
        return problems.Count == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }

    public static Task<int> CheckAsync(Context context)
    {
        Core.Config.BackstopConfig config;
        try
        {
            config = context.LoadConfig();
        }
        catch (Core.Config.ConfigException e) when (context.Json)
        {
            // Every error, with its place as fields, for an editor or a CI step.
            JsonOutput.Write(new ConfigErrorsDocument(false,
                [.. e.Errors.Select(x => new ConfigErrorDocument(x.Location?.File, x.Location?.Line, x.Location?.Column, x.Reason, x.UnknownKey))]));
            return Task.FromResult(ExitCodes.Usage);
        }

        // Every env: and file: reference resolved now (never printed), so that 3 a.m. does not find PGPASSWORD unset.
        var secrets = config.SecretRefs.Where(r => r.Reference.StartsWith("env:", StringComparison.Ordinal) || r.Reference.StartsWith("file:", StringComparison.Ordinal))
            .Select(r =>
            {
                try
                {
                    _ = r.Resolve();
                    return (Ref: r, Error: (string?)null);
                }
                catch (Core.Config.ConfigException e)
                {
                    return (Ref: r, Error: e.Message);
                }
            }).ToList();
        var missing = secrets.Where(x => x.Error is not null).ToList();
        if (context.Json)
        {
            JsonOutput.Write(new ConfigCheckDocument(
                missing.Count == 0,
                [.. secrets.Select(x => new SecretDocument(x.Ref.Reference, x.Ref.Location.ToString(), x.Error is null, x.Error))],
                config.File,
                config.CatalogName,
                config.StagingPath,
                config.Machine,
                [.. config.Targets.Select(t => new ConfigTargetDocument(t.Name, t.Kind))],
                [
                    .. config.Sources.Select(s => new ConfigSourceDocument(s.Name, s.Kind, s.Machine, config.RunsHere(s), s.Targets, s.MinCopies, (long)s.Rpo.TotalSeconds,
                        s.Expect.Describe(Plugins.Registry.Source(s.Kind)!.CountFacts))),
                ]));
        }
        else if (missing.Count > 0)
        {
            foreach (var (_, error) in missing)
            {
                Console.Error.WriteLine($"backstop: error: {error}");
            }

            Console.Error.WriteLine($"backstop: {missing.Count} of {secrets.Count} secret reference(s) cannot be resolved here; set them (e.g. in the systemd unit's EnvironmentFile) or fix the paths");
        }
        else
        {
            Console.WriteLine($"{config.File}: valid ({config.Targets.Count} target(s), {config.Sources.Count} source(s); catalog {config.CatalogName}; " +
                              $"{secrets.Count} secret reference(s) resolved)");
            foreach (var s in config.Sources)
            {
                var where = config.CatalogServer is null ? "" : config.RunsHere(s) ? $"; runs here ({s.Machine})" : $"; runs on {s.Machine}";
                Console.WriteLine($"source {s.Name} ({s.Kind}): {s.MinCopies} verified cop{(s.MinCopies == 1 ? "y" : "ies")} of {string.Join(", ", s.Targets)}; RPO {Core.Config.Quantities.FormatDuration(s.Rpo)}{where}; expectations:");
                foreach (var rule in s.Expect.Describe(Plugins.Registry.Source(s.Kind)!.CountFacts))
                {
                    Console.WriteLine($"  - {rule}");
                }
            }

            // Each disaster scenario as the configuration alone tells it (what it loses, the order, what nothing brings back).
            foreach (var scenario in config.Recovery.Scenarios)
            {
                var plan = Core.Recovery.RecoveryPlan.For(config, Plugins.Registry, scenario);
                Console.WriteLine($"scenario {scenario.Name} (rto {Core.Config.Quantities.FormatDuration(scenario.Rto)}): loses machines {string.Join(", ", plan.LostMachines.Order(StringComparer.Ordinal))}" +
                                  (plan.LostTargets.Count > 0 ? $" and targets {string.Join(", ", plan.LostTargets.Order(StringComparer.Ordinal))}" : "") +
                                  $"; brings back {(plan.Restores.Count == 0 ? "nothing" : string.Join(" → ", plan.Restores.Select(r => $"{r.Source.Name} (from {string.Join(" or ", r.SurvivingTargets)})")))}");
                foreach (var u in plan.Unrecoverable)
                {
                    Console.WriteLine($"  - unrecoverable: {u.Reason}");
                }
            }
        }

        return Task.FromResult(missing.Count > 0 ? ExitCodes.Usage : ExitCodes.Ok);
    }
}
