using Backstop.Core.Notify;
using Backstop.Core.Plugins;
using Backstop.Core.Retention;

namespace Backstop.Core.Config;

/// <summary>What the source blocks read: the sources, and the notifiers they define for themselves.</summary>
internal sealed record SourceSettings(IReadOnlyList<SourceDefinition> Sources, IReadOnlyList<NotifierDefinition> Notifiers);

/// <summary>
/// <c>sources:</c> what is backed up; the keys every source has (each falls back to the policy's), then its kind's,
/// which the kind parses. Then the checks across sources: <c>needs</c> and, with a shared catalog, whose folder a
/// source may write to.
/// </summary>
internal static class SourcesBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("name", "main-db", "The source's name (letters, digits, '.', '_', '-'); it becomes a folder name"),
        new("kind", "postgres", "The kind of source (see below)"),
        new("targets", "[local, nas]", "The targets that take its copies") { Default = "every target" },
        new("min_copies", "2", "Verified copies a snapshot needs to be valid") { Default = "policy.min_copies" },
        new("rpo", "6h", "How old the last valid snapshot may be") { Default = "policy.rpo" },
        new("rto", "1h", "A drill slower than this fails") { Default = "policy.rto" },
        new("schedule", "\"0 */6 * * *\"", "When serve runs it (cron)") { Type = "cron schedule", Default = "policy.schedule" },
        new("schedule_timezone", "UTC", "The zone of its schedules") { Default = "policy.schedule_timezone" },
        new("retention", "{last: 3, daily: 14}", "Its own retention rules (the keys of the top-level retention)") { Type = "mapping", Default = "the top-level retention" },
        new("drill.every", "7d", "Drill it this often") { Default = "policy.drill.every" },
        new("drill.schedule", "\"30 4 * * 0\"", "When serve drills it (cron)") { Type = "cron schedule", Default = "policy.drill.schedule" },
        new("notify", "", "Notifiers for this source only (see Notifiers)") { Type = "list of notifiers" },
        new("expect", "{min_tables: 30, max_shrink: 50%}", "What a snapshot must hold (see Expectations)") { Type = "mapping" },
        new("incremental.full_every", "7d", "files and kubernetes: store only what changed since the last snapshot, and start a new full this often (0: every snapshot full)") { Default = "7d" },
        new("incremental.max_chain", "14", "files and kubernetes: the most levels above a full before a new full starts") { Default = "14" },
        new("wal.max_rpo", "5m", "postgres, mode: physical: how old the newest archived WAL may be before the source is failing (set the server's archive_timeout below it)"),
        new("wal.queue_max", "1GiB", "postgres, mode: physical: the WAL the server may hold back while fewer than min_copies targets take it; past it wal-push stores what it can and records a gap (a broken recovery window, never a stopped database)"),
        new("wal.receive", "false", "postgres, mode: physical: serve receives the WAL itself (pg_receivewal on a replication slot backstop_NAME it creates) where archive_command cannot be set; the backup user needs REPLICATION"),
        new("machine", "vps1", "The machine it lives on (what a disaster scenario loses)") { Default = "the configuration's machine" },
        new("needs", "[]", "Sources that must be back before it is restored (a rehearsal's order; by default by kind: registry, etcd, kubernetes, databases, files)") { Default = "none" },
    ];

    /// <summary>What every source falls back to: the policy, the targets, the top-level retention, the catalog and this machine.</summary>
    internal sealed record Defaults(PluginRegistry Plugins, PolicySettings Policy, TargetSettings Targets, RetentionRules? Retention, CatalogSettings Catalog, string Machine);

    public static SourceSettings Parse(ConfigMap top, Defaults defaults)
    {
        var document = top.Document;
        var sources = new List<SourceDefinition>();
        var notifiers = new List<NotifierDefinition>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in ConfigLoader.Block(document, () => top.MapList("sources")) ?? [])
        {
            ConfigLoader.Block(document, () =>
            {
                var name = ConfigLoader.CheckName(s, "source");
                if (!names.Add(name))
                {
                    throw s.Error("name", $"a source named '{name}' is already defined; source names must be unique");
                }

                sources.Add(One(s, name, defaults, notifiers));
                return 0;
            });
        }

        ConfigLoader.Block(document, () => CheckNeeds(sources));
        if (defaults.Catalog.Server is not null)
        {
            // A folder on one machine holds copies only from sources of that machine (another's agent cannot write there).
            foreach (var s in sources)
            {
                foreach (var t in s.Targets.Select(n => defaults.Targets.Targets.FirstOrDefault(x => x.Name == n)).OfType<TargetDefinition>()
                             .Where(t => defaults.Plugins.Target(t.Kind)?.LivesWithRunner == true && t.Machine != s.Machine))
                {
                    document.Report(new ConfigException(s.Location,
                        $"source '{s.Name}' runs on machine '{s.Machine}' and cannot write to target '{t.Name}', a folder on machine '{t.Machine}'; use a target it reaches (sftp, s3, rclone) or one on its own machine"));
                }
            }
        }

        return new SourceSettings(sources, notifiers);
    }

    private static SourceDefinition One(ConfigMap s, string name, Defaults defaults, List<NotifierDefinition> notifiers)
    {
        var document = s.Document;
        var (policy, targets) = (defaults.Policy, defaults.Targets);
        var kindName = s.RequireString("kind");
        var kind = defaults.Plugins.Source(kindName)
                   ?? throw s.Error("kind", $"unknown source kind '{kindName}'; known kinds: {string.Join(", ", defaults.Plugins.SourceKinds)}");
        var expect = ConfigLoader.Block(document, () => ExpectationsBlock.Parse(s.Map("expect"), kind)) ?? Expectations.Default;
        var rpo = s.Duration("rpo") ?? policy.Rpo;
        var sourceTargets = s.StringList("targets") ?? targets.Names;
        if (sourceTargets.Distinct(StringComparer.Ordinal).Count() != sourceTargets.Count)
        {
            throw s.Error("targets", "a target is listed twice; each copy must be on a different target");
        }

        foreach (var tn in sourceTargets.Where(tn => !targets.Names.Contains(tn) && targets.Names.Count > 0))
        {
            throw s.Error("targets", $"no target is named '{tn}'; defined targets: {string.Join(", ", targets.Names)}");
        }

        var minCopies = s.Int("min_copies", 1, 100) ?? policy.MinCopies;
        if (minCopies > sourceTargets.Count && !targets.HadErrors && targets.Names.Count > 0)
        {
            throw new ConfigException(
                s.LocationOf(s.Has("min_copies") ? "min_copies" : "name"),
                $"{s.Path}: min_copies is {minCopies} but the source has only {sourceTargets.Count} target(s); add targets or lower min_copies");
        }

        var retention = ConfigLoader.Block(document, () => RetentionRules.Parse(s.Map("retention"))) ?? defaults.Retention;
        var rto = Durations.Positive(s, "rto") ?? policy.Rto;
        var zone = Schedule.ParseZone(s, policy.Zone);
        var schedule = Schedule.Parse(s, "schedule", zone) ?? policy.Schedule;
        var drill = ConfigLoader.Block(document, () => Drill(s.Map("drill"), kind, policy, zone, rto));
        notifiers.AddRange(ConfigLoader.Block(document, () => NotifyConfig.Parse(s, name)) ?? []);
        var incremental = ConfigLoader.Block(document, () => kind.StoresChanges || !s.Has("incremental")
            ? IncrementalPolicy.Parse(kind.StoresChanges ? s.Map("incremental") : null, kind, name)
            : throw s.Error("incremental", $"'{kindName}' sources store every snapshot whole; incremental applies to files and kubernetes sources")) ?? IncrementalPolicy.Off;
        var options = kind.ParseOptions(s);
        var archive = ConfigLoader.Block(document, () => ArchivePolicy.Parse(s, kind, options));
        // With a shared catalog a source naming no machine is run by catalog.default_machine, when set.
        var machine = MachineBlock.NameOf(s) ?? (defaults.Catalog.Server is not null ? defaults.Catalog.DefaultMachine : null) ?? defaults.Machine;
        var needs = s.StringList("needs") ?? [];
        s.EnsureAllKeysKnown();
        return new SourceDefinition(name, kindName, options, expect, rpo, minCopies, sourceTargets, s.Location)
        {
            Machine = machine,
            Needs = needs,
            Retention = retention,
            Drill = drill ?? new DrillPolicy(policy.DrillEvery, rto, null),
            Schedule = schedule,
            Incremental = incremental,
            Archive = archive,
            StateDirectory = Path.Combine(Path.GetDirectoryName(defaults.Catalog.Path)!, "private", "source-" + name),
        };
    }

    /// <summary>A source's <c>drill:</c> block: when (falling back to the policy's), and the kind's own keys, which the kind parses.</summary>
    /// <summary>The <c>drill:</c> keys of every source; a kind adds its own (<see cref="ISourceKind.DrillKeys"/>).</summary>
    private static readonly string[] PolicyDrillKeys = ["every", "schedule"];

    private static DrillPolicy Drill(ConfigMap? map, ISourceKind kind, PolicySettings policy, TimeZoneInfo zone, TimeSpan? rto)
    {
        var every = Durations.Positive(map, "every") ?? policy.DrillEvery;
        var schedule = (map is null ? null : Schedule.Parse(map, "schedule", zone)) ?? policy.DrillSchedule;
        var options = map is null ? null : kind.ParseDrillOptions(map);
        map?.EnsureAllKeysKnown($"drill keys of a {kind.Kind} source are: {string.Join(", ", PolicyDrillKeys.Concat(kind.DrillKeys))}");
        return new DrillPolicy(every, rto, options) { Schedule = schedule };
    }

    /// <summary>Each source's <c>needs:</c> names other sources, and they never go round in a circle.</summary>
    private static int CheckNeeds(List<SourceDefinition> sources)
    {
        var names = sources.Select(x => x.Name).ToHashSet(StringComparer.Ordinal);
        var errors = new List<ConfigException>();
        foreach (var s in sources)
        {
            foreach (var n in s.Needs.Where(n => n == s.Name || !names.Contains(n)))
            {
                errors.Add(new ConfigException(s.Location, n == s.Name
                    ? $"source '{s.Name}': needs names the source itself"
                    : $"source '{s.Name}': needs '{n}', which no source is named; sources: {string.Join(", ", names.Order(StringComparer.Ordinal))}"));
            }
        }

        if (errors.Count > 0)
        {
            throw new ConfigException(errors.SelectMany(e => e.Errors).ToList());
        }

        var byName = sources.ToDictionary(x => x.Name, StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1: on the path, 2: done
        List<string>? Visit(string name, List<string> path)
        {
            if (state.GetValueOrDefault(name) == 2)
            {
                return null;
            }

            if (state.GetValueOrDefault(name) == 1)
            {
                return [.. path[path.IndexOf(name)..], name];
            }

            state[name] = 1;
            path.Add(name);
            foreach (var n in byName[name].Needs)
            {
                if (Visit(n, path) is { } cycle)
                {
                    return cycle;
                }
            }

            path.RemoveAt(path.Count - 1);
            state[name] = 2;
            return null;
        }

        foreach (var s in sources)
        {
            if (Visit(s.Name, []) is { } cycle)
            {
                throw new ConfigException(byName[cycle[0]].Location, $"sources' needs go round in a circle: {string.Join(" → ", cycle)}; a recovery could never start");
            }
        }

        return 0;
    }
}

/// <summary>A source's <c>expect:</c>: what a snapshot must hold (the keys every kind has, and <c>min_FACT</c> for each of its facts).</summary>
internal static class ExpectationsBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("min_bytes", "1MiB", "The raw bytes a snapshot must hold at least"),
        new("max_shrink", "50%", "The most raw bytes and every count may fall against the median of the last five valid snapshots; none turns it off") { Type = "percentage, or none", Default = "50%" },
        new("on_anomaly", "fail", "What a broken expectation does: fail the snapshot, or warn (valid, degraded)"),
        new("allow_empty", "false", "Accept a source that holds nothing (an empty source is otherwise degraded)"),
        new("mount", "true", "Each path must be a mount point (files sources: an unmounted disk is never backed up as empty)"),
    ];

    public static Expectations Parse(ConfigMap? map, ISourceKind kind)
    {
        if (map is null)
        {
            return Expectations.Default;
        }

        var written = map.Keys.ToHashSet(StringComparer.Ordinal);
        var minBytes = map.Size("min_bytes");
        var facts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var fact in kind.Facts)
        {
            var key = "min_" + fact;
            if (map.Has(key))
            {
                // A bad value is recorded (all errors in one pass) and read as absent.
                if ((fact == "bytes" ? map.Size(key) : map.Int(key, 0)) is { } v)
                {
                    facts[fact] = v;
                }
            }
        }

        int? shrink = Expectations.DefaultMaxShrinkPercent;
        if (map.String("max_shrink") is { } s)
        {
            shrink = s == "none" ? null : map.Percent("max_shrink");
        }

        var onAnomaly = map.EnumOr("on_anomaly", AnomalyAction.Fail, ("fail", AnomalyAction.Fail), ("warn", AnomalyAction.Warn));
        var allowEmpty = map.BoolOr("allow_empty", false);
        var mount = map.BoolOr("mount", false);
        if (mount && !kind.ChecksMounts)
        {
            throw map.Error("mount", $"'{kind.Kind}' sources have no paths to check; mount applies to files sources");
        }

        map.EnsureAllKeysKnown(
            $"'{kind.Kind}' sources accept min_bytes, {string.Join(", ", kind.Facts.Select(f => "min_" + f))}, max_shrink (a percentage or none), on_anomaly, allow_empty{(kind.ChecksMounts ? ", mount" : "")}");
        return new Expectations(minBytes, facts, shrink, onAnomaly) { AllowEmpty = allowEmpty, Mount = mount, Written = written };
    }
}
