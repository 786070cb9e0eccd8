using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Core.Recovery;

/// <summary>A source a scenario loses, with the targets whose copies survive it and the restored sources it waits for.</summary>
public sealed record PlannedRestore(SourceDefinition Source, IReadOnlyList<string> SurvivingTargets, IReadOnlyList<string> Needs);

/// <summary>What a scenario loses that nothing brings back, and why (said before anything runs).</summary>
public sealed record Unrecoverable(string Source, string Reason);

/// <summary>
/// What a disaster scenario takes, worked out from the configuration alone (no target is asked): the machines and
/// targets lost, the sources to bring back in order (each source's <c>needs:</c>, else its kind's stage: images, cluster
/// state, cluster objects, data, files), the copies that survive for each, and what cannot be brought back. Doctor and
/// <c>rehearse</c> read the same plan.
/// </summary>
public sealed class RecoveryPlan
{
    private RecoveryPlan(Scenario scenario, IReadOnlySet<string> lostMachines, IReadOnlySet<string> lostTargets, IReadOnlyList<PlannedRestore> restores,
        IReadOnlyList<Unrecoverable> unrecoverable, IReadOnlyList<SecretRef> identities, string? identityNote)
    {
        Scenario = scenario;
        LostMachines = lostMachines;
        LostTargets = lostTargets;
        Restores = restores;
        Unrecoverable = unrecoverable;
        Identities = identities;
        IdentityNote = identityNote;
    }

    public Scenario Scenario { get; }

    public IReadOnlySet<string> LostMachines { get; }

    public IReadOnlySet<string> LostTargets { get; }

    /// <summary>The sources to restore, in an order that respects every need (a rehearsal may run independent ones at once).</summary>
    public IReadOnlyList<PlannedRestore> Restores { get; }

    public IReadOnlyList<Unrecoverable> Unrecoverable { get; }

    /// <summary>The identities a recovery opens encrypted copies with: the configured ones, or the escrowed ones when those are lost.</summary>
    public IReadOnlyList<SecretRef> Identities { get; }

    /// <summary>Where the identities come from, when that is worth saying (the escrowed copy).</summary>
    public string? IdentityNote { get; }

    /// <summary>The same plan, with more that nothing brings back (found by asking the servers).</summary>
    public RecoveryPlan With(IEnumerable<Unrecoverable> more) =>
        new(Scenario, LostMachines, LostTargets, Restores, [.. Unrecoverable, .. more], Identities, IdentityNote);

    public static RecoveryPlan For(BackstopConfig config, PluginRegistry plugins, Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(plugins);
        ArgumentNullException.ThrowIfNull(scenario);
        var machines = (scenario.LostMachines ?? config.Sources.Select(s => s.Machine)).ToHashSet(StringComparer.Ordinal);
        var lostTargets = config.Targets.Where(t => machines.Contains(t.Machine)).Select(t => t.Name).Concat(scenario.LostTargets).ToHashSet(StringComparer.Ordinal);
        var lost = config.Sources.Where(s => machines.Contains(s.Machine)).ToList();
        var unrecoverable = new List<Unrecoverable>();

        // The key: the configured identities are files on the machine this configuration runs on.
        var identities = config.Encryption?.Identities ?? [];
        string? identityNote = null;
        var encrypted = config.Encryption is { Recipients.Count: > 0 };
        if (encrypted && machines.Contains(config.Machine))
        {
            if (config.Recovery.Identities.Count > 0)
            {
                identities = config.Recovery.Identities;
                identityNote = $"the configured identity lives on {config.Machine}, lost: the escrowed one (recovery.identities) opens the copies";
            }
            else
            {
                identities = [];
            }
        }

        var planned = new List<PlannedRestore>();
        foreach (var s in lost)
        {
            var surviving = s.Targets.Where(t => !lostTargets.Contains(t)).ToList();
            if (surviving.Count == 0)
            {
                var where = s.Targets.Select(t => config.Targets.First(x => x.Name == t)).Select(t => machines.Contains(t.Machine) ? t.Machine : t.Name)
                    .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
                unrecoverable.Add(new Unrecoverable(s.Name,
                    $"{scenario.Name}: {s.Name} has all {s.Targets.Count} cop{(s.Targets.Count == 1 ? "y" : "ies")} on {string.Join(", ", where)}: nothing survives; add a target that lives elsewhere (a NAS, a bucket)"));
                continue;
            }

            if (encrypted && identities.Count == 0)
            {
                unrecoverable.Add(new Unrecoverable(s.Name,
                    $"{scenario.Name}: {s.Name} is stored encrypted and the identity (encryption.identities) lives on {config.Machine}, lost with it: " +
                    "keep a copy of the key off the machines and name it in recovery.identities"));
                continue;
            }

            planned.Add(new PlannedRestore(s, surviving, []));
        }

        return new RecoveryPlan(scenario, machines, lostTargets, Order(planned, plugins), unrecoverable, identities, identityNote);
    }

    /// <summary>
    /// Each restore with what it waits for among the restored: its <c>needs:</c>, else every restored source of an
    /// earlier stage of its kind; then ordered so that whatever is waited for comes first (ties: stage, then the
    /// configuration's order).
    /// </summary>
    private static List<PlannedRestore> Order(List<PlannedRestore> planned, PluginRegistry plugins)
    {
        var restored = planned.Select(p => p.Source.Name).ToHashSet(StringComparer.Ordinal);
        int Stage(SourceDefinition s) => plugins.Source(s.Kind)?.RecoveryOrder ?? RecoveryStage.Data;
        var needs = planned.ToDictionary(p => p.Source.Name, p => p.Source.Needs.Where(restored.Contains).ToList(), StringComparer.Ordinal);

        // A source without needs waits for every restored source of an earlier stage, unless that one waits for it (a
        // database that needs the files it reads): the stages only order what the needs leave open, and never make a circle.
        bool Reaches(string from, string to, HashSet<string> seen) =>
            from == to || (seen.Add(from) && needs[from].Any(n => Reaches(n, to, seen)));
        foreach (var p in planned.Where(p => p.Source.Needs.Count == 0).OrderBy(p => Stage(p.Source)))
        {
            foreach (var o in planned.Where(o => Stage(o.Source) < Stage(p.Source) && !Reaches(o.Source.Name, p.Source.Name, [])))
            {
                needs[p.Source.Name].Add(o.Source.Name);
            }
        }

        var withNeeds = planned.Select(p => p with { Needs = needs[p.Source.Name] }).ToList();
        var ordered = new List<PlannedRestore>();
        var done = new HashSet<string>(StringComparer.Ordinal);
        while (ordered.Count < withNeeds.Count)
        {
            var next = withNeeds.Where(p => !done.Contains(p.Source.Name) && p.Needs.All(done.Contains))
                .OrderBy(p => Stage(p.Source)).ThenBy(withNeeds.IndexOf).FirstOrDefault()
                ?? throw new InvalidOperationException("needs go round in a circle (the configuration check refuses that)");
            ordered.Add(next);
            done.Add(next.Source.Name);
        }

        return ordered;
    }
}
