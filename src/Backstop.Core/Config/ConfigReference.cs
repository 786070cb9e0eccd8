using System.Text;
using Backstop.Core.Plugins;
using YamlDotNet.RepresentationModel;

namespace Backstop.Core.Config;

/// <summary>
/// One documented configuration key: <c>Key</c> is dotted below its block (<c>tools.pg_dump</c>, <c>drill.smoke</c>,
/// <c>drill.smoke[].sql</c> for the mappings of a list); <c>Example</c> is YAML in flow style (empty for a key whose
/// example is its parent's). Its type and default are not written here: they come from the parser that reads it.
/// </summary>
public sealed record KeyDoc(string Key, string Example, string Text)
{
    /// <summary>The default, where the parser's depends on something (the policy, the number of cores).</summary>
    public string? Default { get; init; }

    /// <summary>The type, where the parser's reading does not say it (a cron schedule, a value or a mapping).</summary>
    public string? Type { get; init; }

    /// <summary>A key that replaces another in the example (<c>passphrase</c> instead of <c>recipients</c>).</summary>
    public string? Instead { get; init; }

    /// <summary>A key that only goes with an alternative (<c>catalog.password</c> with <c>catalog.url</c>): shown commented out, parsed in that alternative's example.</summary>
    public string? With { get; init; }

    /// <summary>Blocks that go with the key it replaces and not with it: the example that has it drops them too (a mode's keys).</summary>
    public IReadOnlyList<string> Without { get; init; } = [];
}

/// <summary>
/// The configuration reference (<c>docs/configuration.md</c>, <c>backstop config reference</c>), made from the
/// documented keys and from the parsers themselves: each block's example is parsed with a recorder that notes the type
/// and default of every key read, so a key a parser reads and the reference does not list (or the reverse) is a
/// problem the tests fail on. The same keys drive the unknown-key check that runs before the parse.
/// </summary>
public static class ConfigReference
{
    /// <summary>Top-level keys, block by block as the loader reads them (the notify list has its own section).</summary>
    public static IReadOnlyList<KeyDoc> TopKeys { get; } =
    [
        .. CatalogBlock.Keys,
        .. PolicyBlock.Keys,
        .. CompressionBlock.Keys,
        .. EncryptionBlock.Keys,
        .. Retention.RetentionRules.Keys,
        .. ServeBlock.Keys,
        .. VerifyBlock.Keys,
        .. DoctorBlock.Keys,
        .. MachineBlock.Keys,
        .. RecoveryOptions.Keys,
        new("notify", "", "Notifiers for every source (see Notifiers)") { Type = "list of notifiers" },
        new("targets", "", "Where copies go (see Targets); at least one") { Type = "list of targets" },
        new("sources", "", "What is backed up (see Sources)") { Type = "list of sources" },
    ];

    /// <summary>Keys of every target, whatever its kind.</summary>
    public static IReadOnlyList<KeyDoc> TargetKeys => TargetsBlock.Keys;

    /// <summary>Keys of every source, whatever its kind.</summary>
    public static IReadOnlyList<KeyDoc> SourceKeys => SourcesBlock.Keys;

    /// <summary>The <c>expect:</c> keys every kind has (besides <c>min_FACT</c> for each of its facts).</summary>
    public static IReadOnlyList<KeyDoc> ExpectKeys => ExpectationsBlock.Keys;

    /// <summary>Keys of every notifier, then each kind's.</summary>
    public static IReadOnlyList<KeyDoc> NotifierKeys => Notify.NotifyConfig.Keys;

    public static IReadOnlyList<(string Kind, IReadOnlyList<KeyDoc> Keys)> NotifierKinds => Notify.NotifyConfig.KindKeys;

    /// <summary>The keys every source of this kind has: <c>incremental</c> only for a kind that stores changes.</summary>
    private static IEnumerable<KeyDoc> SourceKeysOf(ISourceKind kind) =>
        SourceKeys.Where(k => (kind.StoresChanges || !k.Key.StartsWith("incremental.", StringComparison.Ordinal))
                              && (kind.CanKeepArchive || !k.Key.StartsWith("wal.", StringComparison.Ordinal)));

    /// <summary>Every key a source of this kind may have, dotted (its blocks' children included).</summary>
    public static IReadOnlyList<string> SourceKeyPaths(ISourceKind kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        return SourceKeysOf(kind).Select(k => k.Key)
            .Concat(kind.Keys.Select(k => k.Key))
            .Concat(TopKeys.Where(k => k.Key.StartsWith("retention.", StringComparison.Ordinal)).Select(k => k.Key))
            .Concat(NotifierKeyPaths().Select(k => "notify[]." + k))
            .Concat(ExpectKeyNames(kind).Select(k => "expect." + k))
            .ToList();
    }

    public static IReadOnlyList<string> TargetKeyPaths(ITargetKind kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        return TargetKeys.Concat(kind.Keys).Select(k => k.Key).ToList();
    }

    public static IReadOnlyList<string> TopKeyPaths() =>
        TopKeys.Select(k => k.Key).Concat(NotifierKeyPaths().Select(k => "notify[]." + k)).ToList();

    private static IEnumerable<string> NotifierKeyPaths() =>
        NotifierKeys.Concat(NotifierKinds.SelectMany(n => n.Keys)).Select(k => k.Key).Distinct(StringComparer.Ordinal);

    /// <summary>The <c>expect:</c> keys of a kind.</summary>
    public static IEnumerable<string> ExpectKeyNames(ISourceKind kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        return ExpectKeys.Select(k => k.Key).Where(k => k != "mount" || kind.ChecksMounts)
            .Concat(kind.Facts.Where(f => f != "bytes").Select(f => "min_" + f));
    }

    /// <summary>
    /// Before the parse: every key the reference does not list is noted with its place, the keys valid there and the
    /// nearest one. A note becomes an error unless the parser of its mapping reads the key after all.
    /// </summary>
    public static void CheckKeys(YamlMappingNode root, string file, PluginRegistry plugins, ConfigDocument document)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(plugins);
        ArgumentNullException.ThrowIfNull(document);
        Check(root, "", "", TopKeyPaths(), file, document);
        foreach (var (list, what) in new[] { ("targets", "target"), ("sources", "source") })
        {
            if (Find(root, list) is not YamlSequenceNode items)
            {
                continue;
            }

            var i = 0;
            foreach (var item in items)
            {
                if (item is YamlMappingNode map && Find(map, "kind") is YamlScalarNode { Value: { } kindName })
                {
                    IReadOnlyList<string>? keys = what == "target"
                        ? plugins.Target(kindName) is { Keys.Count: > 0 } t ? TargetKeyPaths(t) : null
                        : plugins.Source(kindName) is { Keys.Count: > 0 } s ? SourceKeyPaths(s) : null;
                    if (keys is not null)
                    {
                        Check(map, $"{list}[{i}]", $"a {kindName} {what}'s", keys, file, document);
                    }
                }

                i++;
            }
        }
    }

    private static void Check(YamlMappingNode node, string path, string what, IReadOnlyList<string> keys, string file, ConfigDocument document)
    {
        var heads = keys.Select(KeyRows.Head).Where(h => h.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        foreach (var (k, v) in node.Children)
        {
            if (k is not YamlScalarNode { Value: { } name } || (path.Length == 0 && name is "targets" or "sources"))
            {
                continue;
            }

            var where = new ConfigLocation(file, k.Start.Line, k.Start.Column);
            var full = path.Length == 0 ? name : $"{path}.{name}";
            if (!heads.Contains(name))
            {
                var near = Util.Spelling.Closest(name, heads);
                document.Suspect(new ConfigException(where,
                    $"{full}: unknown key{(near is null ? "" : $" (did you mean '{near}'?)")}; {(what.Length == 0 ? "top-level" : what)} keys are: {string.Join(", ", heads)}") { UnknownKey = true });
                continue;
            }

            var children = keys.Where(x => x.StartsWith(name + ".", StringComparison.Ordinal)).Select(x => x[(name.Length + 1)..]).ToList();
            var items = keys.Where(x => x.StartsWith(name + "[].", StringComparison.Ordinal)).Select(x => x[(name.Length + 3)..]).ToList();
            if (v is YamlMappingNode child && children.Count > 0)
            {
                Check(child, full, what.Length == 0 ? name : $"{what} {name}", children, file, document);
            }
            else if (v is YamlSequenceNode seq && items.Count > 0)
            {
                var i = 0;
                foreach (var item in seq)
                {
                    if (item is YamlMappingNode m)
                    {
                        Check(m, $"{full}[{i}]", what.Length == 0 ? $"a {name} item's" : $"{what} {name} item's", items, file, document);
                    }

                    i++;
                }
            }
        }
    }

    private static YamlNode? Find(YamlMappingNode map, string key) =>
        map.Children.FirstOrDefault(c => c.Key is YamlScalarNode { Value: { } n } && n == key).Value;

    /// <summary>The reference in Markdown, and every disagreement between the documented keys and the parsers.</summary>
    public static (string Markdown, IReadOnlyList<string> Problems) Build(PluginRegistry plugins)
    {
        ArgumentNullException.ThrowIfNull(plugins);
        var problems = new List<string>();
        var md = new StringBuilder();
        md.Append("""
            # Configuration reference

            <!-- Generated by `backstop config reference` from the documented keys and the parsers that read them; a test fails when this file is stale. -->

            Backstop reads one YAML file (`--config FILE`, `$BACKSTOP_CONFIG`, or `./backstop.yaml`). Every key below is
            checked: an unknown key, a wrong type or a bad value is reported with its `file:line:column`, all of them in
            one pass, and exit code 2. `backstop config check` also resolves every secret reference.

            - **Sizes** are exact: `512B`, `150KB` (150 000), `1.5GiB`. **Durations**: `90s`, `15m`, `6h`, `7d`, `1h30m`.
              **Percentages**: `50%`.
            - **Secrets** are `env:NAME` (an environment variable) or `file:PATH` (a file's content, trimmed); a value
              written inline works but `doctor` flags it. A secret never reaches argv, a log or a manifest.
            - **Paths** are relative to the configuration file's folder; `~/` is the home folder.
            - **Schedules** are cron expressions of five fields (minute hour day-of-month month day-of-week) or `@daily`
              and the like, in `schedule_timezone`.
            - Type and default come from the parser that reads each key; the examples are parsed by the same test.


            """);

        // Top level: the example has every key, with one target and one source so that it parses.
        var top = TopLevelKeys();
        var filler = LocalTarget(plugins) + FilesSource(plugins);
        var topUses = Record(plugins, TopExample(plugins), top, problems, variant => Yaml(variant, 0) + filler);
        Section(md, "## Top level", "", Yaml(top.Where(k => k.Key != "notify").ToList(), 0), TopKeys, "", topUses, problems);

        md.Append("## Targets\n\nEvery copy is read back and its SHA-256 matched before it counts.\n\n");
        var firstSource = FilesSource(plugins);
        var targetUses = new Dictionary<string, KeyUse>(StringComparer.Ordinal);
        var kinds = new StringBuilder();
        foreach (var kindName in plugins.TargetKinds)
        {
            var kind = plugins.Target(kindName)!;
            var keys = TargetExampleKeys(kind);
            var uses = Record(plugins, "targets:\n" + Item(keys, 2) + firstSource, keys, problems, variant => "targets:\n" + Item(variant, 2) + firstSource);
            foreach (var (path, use) in uses)
            {
                targetUses.TryAdd(path, use);
            }

            Documented(uses, "targets[].", TargetKeys.Concat(kind.Keys).ToList(), $"target kind {kindName}", problems);
            Section(kinds, $"### {kindName}", kind.Summary, Item(keys, 0), kind.Keys, "targets[].", uses, problems);
        }

        Section(md, "### Every target", "These keys apply to a target of any kind.", "", WithKinds(TargetKeys, plugins.TargetKinds), "targets[].", targetUses, problems);
        md.Append(kinds);
        kinds.Clear();

        md.Append("## Sources\n\nEvery source also takes the keys of [Every source](#every-source) and [expect](#expectations-expect).\n\n");
        var localTarget = LocalTarget(plugins);
        var sourceUses = new Dictionary<string, KeyUse>(StringComparer.Ordinal);
        foreach (var kindName in plugins.SourceKinds)
        {
            var kind = plugins.Source(kindName)!;
            var common = CommonSourceExample(kind);
            var keys = common.Concat(kind.Keys).ToList();
            var uses = Record(plugins, localTarget + "sources:\n" + Item(keys, 2), keys, problems, variant => localTarget + "sources:\n" + Item(variant, 2));
            foreach (var (path, use) in uses)
            {
                sourceUses.TryAdd(path, use);
            }

            var expected = SourceKeysOf(kind).Concat(kind.Keys)
                .Concat(TopKeys.Where(k => k.Key.StartsWith("retention.", StringComparison.Ordinal)))
                .Concat(ExpectKeyNames(kind).Select(e => new KeyDoc("expect." + e, "", "")))
                .ToList();
            var alsoAllowed = NotifierKeys.Concat(NotifierKinds.SelectMany(n => n.Keys)).Select(n => n with { Key = "notify[]." + n.Key })
                .Concat(ExpectKeys.Select(e => e with { Key = "expect." + e.Key }));
            Documented(uses, "sources[].", expected, $"source kind {kindName}", problems, alsoAllowed);
            var facts = kind.Facts.Count == 0 ? "" : $"\n\nFacts: {string.Join(", ", kind.Facts)} (`expect: {{{string.Join(", ", kind.Facts.Where(f => f != "bytes").Select(f => $"min_{f}: N"))}}}`).";
            Section(kinds, $"### {kindName}", kind.Summary + facts, Item(common.Take(2).Concat(kind.Keys).ToList(), 0), kind.Keys, "sources[].", uses, problems);
        }

        Section(md, "### Every source", "These keys apply to a source of any kind.", "", WithKinds(SourceKeys, plugins.SourceKinds), "sources[].", sourceUses, problems);
        Section(md, "### Expectations (`expect:`)",
            "Even with no `expect:` block, a count that falls to 0 from the last valid snapshot fails it, and so does a fall " +
            "past `max_shrink`. `min_FACT` takes each fact of the kind (listed in its section): `min_tables`, `min_rows`, `min_keys`…",
            "", ExpectKeys, "sources[].expect.", sourceUses, problems);
        md.Append(kinds);

        md.Append("## Notifiers\n\nAt the top level (every source) or under a source. Every notifier takes:\n\n");
        Section(md, "", "", "", NotifierKeys, "notify[].", topUses, problems);
        foreach (var (kindName, keys) in NotifierKinds)
        {
            Section(md, $"### {kindName}", "", "", keys, "notify[].", topUses, problems);
        }

        Documented(topUses.Where(u => !u.Key.StartsWith("targets[]", StringComparison.Ordinal) && !u.Key.StartsWith("sources[]", StringComparison.Ordinal))
                .ToDictionary(), "", TopKeys.Concat(NotifierKeys.Concat(NotifierKinds.SelectMany(n => n.Keys)).Select(n => n with { Key = "notify[]." + n.Key })).ToList(),
            "the top level", problems);
        return (md.ToString().TrimEnd() + "\n", problems);
    }

    /// <summary>The <c>kind</c> key's text names the kinds registered.</summary>
    private static List<KeyDoc> WithKinds(IReadOnlyList<KeyDoc> keys, IEnumerable<string> kinds) =>
        keys.Select(k => k.Key == "kind" ? k with { Text = "One of: " + string.Join(", ", kinds) } : k).ToList();

    /// <summary>The keys every source has, with examples that suit a source of this kind.</summary>
    private static List<KeyDoc> CommonSourceExample(ISourceKind kind)
    {
        return SourceKeysOf(kind).Select(k => k.Key switch
        {
            "kind" or "name" => k with { Example = kind.Kind },
            "targets" => k with { Example = "[local]" },
            "min_copies" => k with { Example = "1" },
            "expect" => k with { Example = "{" + string.Join(", ", ExpectKeyNames(kind).Select(e => e switch
            {
                "max_shrink" => "max_shrink: 50%",
                "on_anomaly" => "on_anomaly: fail",
                "allow_empty" => "allow_empty: false",
                "mount" => "mount: false",
                "min_bytes" => "min_bytes: 1MiB",
                _ => $"{e}: 1",
            })) + "}" },
            "notify" => k with { Example = "[{kind: webhook, url: \"env:HOOK_URL\", events: [failed]}]" },
            _ => k,
        }).ToList();
    }

    private static List<KeyDoc> TopLevelKeys() => TopKeys.Where(k => k.Type is not "list of targets" and not "list of sources").ToList();

    /// <summary>A whole configuration with every top-level key and every notifier kind set, one local target and one files source (the tests mutate it).</summary>
    public static string TopExample(PluginRegistry plugins)
    {
        ArgumentNullException.ThrowIfNull(plugins);
        var notifyExample = "notify:\n" + string.Concat(NotifierKinds.Select(n => Item(NotifierKeys.Select(k => k.Key switch
        {
            "kind" => k with { Example = n.Kind },
            "name" => k with { Example = $"{n.Kind}-1" },
            _ => k,
        }).Concat(n.Keys).ToList(), 2)));
        return Yaml(TopLevelKeys(), 0) + notifyExample + LocalTarget(plugins) + FilesSource(plugins);
    }

    /// <summary>A whole configuration that holds one source of this kind with every key set (the reference's example; the tests mutate it).</summary>
    public static string SourceExample(PluginRegistry plugins, string kindName)
    {
        ArgumentNullException.ThrowIfNull(plugins);
        var kind = plugins.Source(kindName) ?? throw new ArgumentException($"no source kind {kindName}", nameof(kindName));
        return LocalTarget(plugins) + "sources:\n" + Item(CommonSourceExample(kind).Concat(kind.Keys).ToList(), 2);
    }

    /// <summary>A whole configuration that holds one target of this kind with every key set.</summary>
    public static string TargetExample(PluginRegistry plugins, string kindName)
    {
        ArgumentNullException.ThrowIfNull(plugins);
        var kind = plugins.Target(kindName) ?? throw new ArgumentException($"no target kind {kindName}", nameof(kindName));
        return "targets:\n" + Item(TargetExampleKeys(kind), 2) + FilesSource(plugins);
    }

    private static List<KeyDoc> TargetExampleKeys(ITargetKind kind) =>
        TargetKeys.Select(k => k.Key is "kind" or "name" ? k with { Example = kind.Kind } : k).Concat(kind.Keys).ToList();

    // The local folder names its machine (the example's own), as a shared catalog needs of a runner's folder.
    private static string LocalTarget(PluginRegistry plugins) =>
        $"targets:\n{Item(TargetKeys.Take(2).Select(k => k with { Example = "local" }).Concat(TargetKeys.Where(k => k.Key == "machine").Select(k => k with { Example = "vps1" })).Concat(FirstTarget(plugins)).ToList(), 2)}";

    private static string FilesSource(PluginRegistry plugins) =>
        $"sources:\n{Item(SourceKeys.Take(2).Select(k => k with { Example = k.Key == "name" ? "app" : "files" }).Concat(plugins.Source("files")?.Keys ?? []).ToList(), 2)}";

    private static IEnumerable<KeyDoc> FirstTarget(PluginRegistry plugins) => plugins.Target("local")?.Keys.Where(k => k.Key == "path") ?? [];

    /// <summary>Parses a configuration with the recorder, and each variant (a key instead of another) too.</summary>
    private static Dictionary<string, KeyUse> Record(PluginRegistry plugins, string yaml, IReadOnlyList<KeyDoc> keys, List<string> problems,
        Func<List<KeyDoc>, string> variantYaml)
    {
        var recorder = new KeyRecorder();
        Parse(plugins, yaml, recorder, problems);
        foreach (var alt in keys.Where(k => k.Instead is not null))
        {
            var variant = keys.Where(k => k.Key != alt.Instead && k != alt && !alt.Without.Any(w => k.Key == w || k.Key.StartsWith(w + ".", StringComparison.Ordinal))).ToList();
            variant.Insert(keys.ToList().FindIndex(k => k.Key == alt.Instead) is var at and >= 0 ? at : variant.Count, alt with { Instead = null });
            variant = variant.Select(k => k.With == alt.Key ? k with { With = null } : k).ToList();
            Parse(plugins, variantYaml(variant), recorder, problems);
        }

        return recorder.Uses.ToDictionary(StringComparer.Ordinal);
    }

    private static void Parse(PluginRegistry plugins, string yaml, KeyRecorder recorder, List<string> problems)
    {
        try
        {
            ConfigLoader.Parse(yaml, "/etc/backstop/backstop.yaml", plugins, recorder);
        }
        catch (ConfigException e)
        {
            problems.Add($"an example does not parse: {e.Message}\n{yaml}");
        }
    }

    /// <summary>A recorded key nobody documented is a problem, and so is a documented key no parser reads.</summary>
    private static void Documented(IReadOnlyDictionary<string, KeyUse> uses, string prefix, IReadOnlyList<KeyDoc> docs, string what, List<string> problems,
        IEnumerable<KeyDoc>? alsoAllowed = null)
    {
        var documented = docs.Concat(alsoAllowed ?? []).Select(d => prefix + d.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var (path, use) in uses.Where(u => u.Key.StartsWith(prefix, StringComparison.Ordinal)))
        {
            var rest = path[prefix.Length..];
            if (prefix.Length == 0 && (rest.StartsWith("targets", StringComparison.Ordinal) || rest.StartsWith("sources", StringComparison.Ordinal)))
            {
                continue;
            }

            // A mapping or a list of mappings whose keys are documented needs no line of its own.
            var parent = use.Type is "mapping" or "list of mappings" or "list of strings or mappings" &&
                         documented.Any(d => d.StartsWith(path + ".", StringComparison.Ordinal) || d.StartsWith(path + "[].", StringComparison.Ordinal));
            if (!documented.Contains(path) && !parent)
            {
                problems.Add($"{what}: the parser reads '{rest}' ({use.Type}), which the reference does not document");
            }
        }

        foreach (var doc in docs.Where(d => !uses.ContainsKey(prefix + d.Key) && !d.Key.Contains("[]", StringComparison.Ordinal) && d.Type is not ("list of targets" or "list of sources")))
        {
            problems.Add($"{what}: '{doc.Key}' is documented, but the parser did not read it from the example");
        }
    }

    private static void Section(StringBuilder md, string heading, string intro, string yaml, IReadOnlyList<KeyDoc> keys, string prefix,
        IReadOnlyDictionary<string, KeyUse> uses, List<string> problems)
    {
        if (heading.Length > 0)
        {
            md.Append(heading).Append("\n\n");
        }

        if (intro.Length > 0)
        {
            md.Append(intro).Append("\n\n");
        }

        if (yaml.Length > 0)
        {
            md.Append("```yaml\n").Append(yaml).Append("```\n\n");
        }

        md.Append("| Key | Type | Default | Example | Meaning |\n|---|---|---|---|---|\n");
        foreach (var key in keys)
        {
            var use = uses.GetValueOrDefault(prefix + key.Key);
            var type = key.Type ?? use?.Type ?? "";
            if (type.Length == 0)
            {
                problems.Add($"{prefix}{key.Key}: no type (the parser did not read it)");
            }

            var fallback = use is { Required: true } ? "required" : key.Default is { } written ? Cell(written) : use?.Default is { } given ? $"`{Cell(given)}`" : "";
            if (key.Default is not null && use?.Default is not null)
            {
                problems.Add($"{prefix}{key.Key}: the default is written in the reference ({key.Default}) and given by the parser ({use.Default}); keep the parser's");
            }

            md.Append(CultureInvariant($"| `{key.Key}` | {Cell(type)} | {fallback} | {(key.Example.Length == 0 ? "" : $"`{Cell(key.Example)}`")} | {Cell(key.Text)} |\n"));
        }

        md.Append('\n');
    }

    private static string CultureInvariant(FormattableString s) => FormattableString.Invariant(s);

    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal);

    /// <summary>One list item (<c>- name: …</c>) from documented keys, indented.</summary>
    private static string Item(IReadOnlyList<KeyDoc> keys, int indent)
    {
        var body = Yaml(keys, indent + 2);
        return new string(' ', indent) + "- " + body.TrimStart();
    }

    /// <summary>A YAML block from dotted keys and their flow-style examples; an alternative is shown commented out.</summary>
    private static string Yaml(IReadOnlyList<KeyDoc> keys, int indent)
    {
        var sb = new StringBuilder();
        var pad = new string(' ', indent);
        var done = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keys.Where(k => !k.Key.Contains("[]", StringComparison.Ordinal)))
        {
            var head = KeyRows.Head(key.Key);
            if (head.Length == key.Key.Length)
            {
                if (key.Example.Length > 0 && done.Add(head))
                {
                    sb.Append(key.Instead is { } instead ? $"{pad}# {head}: {key.Example}   # instead of {instead[(instead.LastIndexOf('.') + 1)..]}\n"
                        : key.With is { } with ? $"{pad}# {head}: {key.Example}   # with {with[(with.LastIndexOf('.') + 1)..]}\n"
                        : $"{pad}{head}: {key.Example}\n");
                }

                continue;
            }

            if (!done.Add(head))
            {
                continue;
            }

            var children = keys.Where(k => k.Key.StartsWith(head + ".", StringComparison.Ordinal))
                .Select(k => k with { Key = k.Key[(head.Length + 1)..], Instead = k.Instead is { } i && i.StartsWith(head + ".", StringComparison.Ordinal) ? i[(head.Length + 1)..] : k.Instead })
                .ToList();
            sb.Append($"{pad}{head}:\n").Append(Yaml(children, indent + 2));
        }

        return sb.ToString();
    }
}
