namespace Backstop.Core.Config;

/// <summary>
/// A disaster the estate must survive: what it loses (machines, with their sources and the targets on them, and
/// targets named besides) and the time the estate must be back within (<c>rto</c>).
/// </summary>
/// <param name="LostMachines">The machines lost; null: every machine that holds a source (<c>machines: all</c>).</param>
public sealed record Scenario(string Name, TimeSpan Rto, IReadOnlyList<string>? LostMachines, IReadOnlyList<string> LostTargets, ConfigLocation Location)
{
    /// <summary><c>every: 30d</c>: serve rehearses it this often; null: only by hand.</summary>
    public TimeSpan? Every { get; init; }
}

/// <summary>A step a rehearsal on loopback cannot measure (provisioning a machine, reinstalling k3s), with its estimate.</summary>
public sealed record ManualStep(string Step, TimeSpan Estimate);

/// <summary>
/// <c>recovery:</c> the disaster scenarios (<c>scenarios</c>), the escrowed identities a rehearsal uses when the
/// configured ones live on a lost machine (<c>identities</c>), how many restores run at once (<c>parallel</c>), and the
/// steps a rehearsal cannot time (<c>manual</c>). One parser for the block, owning its keys.
/// </summary>
public sealed record RecoveryOptions(IReadOnlyList<Scenario> Scenarios, IReadOnlyList<SecretRef> Identities, int Parallel, IReadOnlyList<ManualStep> Manual)
{
    public static RecoveryOptions None { get; } = new([], [], 2, []);

    /// <summary>The block's keys, documented (the reference and the unknown-key check read them).</summary>
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("recovery.scenarios", "[{name: node-vps1, rto: 4h, lost: {machines: [vps1]}}, {name: region, rto: 8h, lost: {machines: all, targets: [local]}, every: 30d}]",
            "Disasters to rehearse (backstop rehearse NAME): what each loses and the time to be back within") { Type = "list of scenarios" },
        new("recovery.scenarios[].name", "", "The scenario's name (letters, digits, '.', '_', '-')") { Default = "required" },
        new("recovery.scenarios[].rto", "", "The most the whole recovery may take") { Default = "required" },
        new("recovery.scenarios[].lost.machines", "", "The machines lost (with their sources and the targets on them), or all: every machine that holds a source"),
        new("recovery.scenarios[].lost.targets", "", "Targets lost besides those on the lost machines (a NAS in the same room)") { Default = "none" },
        new("recovery.scenarios[].every", "", "serve rehearses it this often") { Default = "only by hand" },
        new("recovery.identities", "[\"file:/mnt/escrow/backstop-key.txt\"]",
            "Escrowed age identity files (off the machines), used when the configured identities live on a lost machine") { Default = "none" },
        new("recovery.parallel", "2", "Restores a rehearsal runs at the same time (in dependency order)"),
        new("recovery.manual", "[{step: \"provision a VM and install Debian\", estimate: 45m}]",
            "Steps a rehearsal on loopback cannot time; their estimates are added to its total") { Type = "list of steps" },
        new("recovery.manual[].step", "", "What a person does") { Default = "required" },
        new("recovery.manual[].estimate", "", "How long it takes") { Default = "required" },
    ];

    /// <summary>
    /// Reads <c>recovery:</c>; <paramref name="machines"/> are the machines the sources and targets live on (a scenario
    /// that names another is a typo), <paramref name="targets"/> the target names.
    /// </summary>
    public static RecoveryOptions Parse(ConfigMap? map, IReadOnlyCollection<string> machines, IReadOnlyCollection<string> targets)
    {
        ArgumentNullException.ThrowIfNull(machines);
        ArgumentNullException.ThrowIfNull(targets);
        if (map is null)
        {
            return None;
        }

        var scenarios = new List<Scenario>();
        foreach (var s in map.MapList("scenarios"))
        {
            var name = s.RequireString("name");
            if (!ConfigLoader.IsValidName(name))
            {
                throw s.Error("name", $"'{name}' is not a valid scenario name: use letters, digits, '.', '_' and '-'");
            }

            if (scenarios.Any(x => x.Name == name))
            {
                throw s.Error("name", $"a scenario named '{name}' is already defined; scenario names must be unique");
            }

            var rto = s.Duration("rto") ?? throw s.Error("name", $"scenario '{name}': rto is required (the most the recovery may take, like 4h)");
            if (rto <= TimeSpan.Zero)
            {
                throw s.Error("rto", "must be longer than zero");
            }

            var lost = s.Map("lost") ?? throw s.Error("name", $"scenario '{name}': lost is required ({{machines: [NAME…] or all, targets: [NAME…]}})");
            var listed = lost.StringList("machines") ?? [];
            var lostMachines = listed is ["all"] ? null : listed;
            foreach (var m in lostMachines ?? [])
            {
                if (!machines.Contains(m))
                {
                    throw lost.Error("machines", $"no source or target lives on a machine named '{m}'; machines: {string.Join(", ", machines.Order(StringComparer.Ordinal))}");
                }
            }

            var lostTargets = lost.StringList("targets") ?? [];
            foreach (var t in lostTargets.Where(t => !targets.Contains(t)))
            {
                throw lost.Error("targets", $"no target is named '{t}'; defined targets: {string.Join(", ", targets)}");
            }

            if (lostMachines is { Count: 0 } && lostTargets.Count == 0)
            {
                throw s.Error("lost", $"scenario '{name}' loses nothing: name machines (or all) and/or targets");
            }

            var every = s.Duration("every");
            if (every is { } e && e <= TimeSpan.Zero)
            {
                throw s.Error("every", "must be longer than zero");
            }

            lost.EnsureAllKeysKnown("lost keys are: machines, targets");
            s.EnsureAllKeysKnown("scenario keys are: name, rto, lost, every");
            scenarios.Add(new Scenario(name, rto, lostMachines, lostTargets, s.Location) { Every = every });
        }

        var identities = new List<SecretRef>();
        foreach (var i in map.StringList("identities") ?? [])
        {
            if (!i.StartsWith("file:", StringComparison.Ordinal))
            {
                throw map.Error("identities", "identities are files (file:/path/to/key.txt), never inline keys (the value is not shown: it may be a key)");
            }

            identities.Add(new SecretRef("file:" + map.ResolvePath(i[5..]), map.LocationOf("identities")));
        }

        var manual = new List<ManualStep>();
        foreach (var m in map.MapList("manual"))
        {
            var step = m.RequireString("step");
            var estimate = m.Duration("estimate") ?? throw m.Error("step", $"manual step '{step}': estimate is required (like 45m)");
            m.EnsureAllKeysKnown("a manual step's keys are: step, estimate");
            manual.Add(new ManualStep(step, estimate));
        }

        var parallel = map.IntOr("parallel", 2, 1, 64);
        map.EnsureAllKeysKnown("recovery keys are: scenarios, identities, parallel, manual");
        return new RecoveryOptions(scenarios, identities, parallel, manual);
    }
}
