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
/// Every documented key, gathered from the blocks' parsers that own them, and the unknown-key check that runs before
/// the parse. The Markdown reference made from them (<c>backstop config reference</c>) is the CLI's
/// (<c>Backstop.Cli.Docs.ConfigReferenceDocument</c>).
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
    internal static IEnumerable<KeyDoc> SourceKeysOf(ISourceKind kind) =>
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
                var near = Text.Spelling.Closest(name, heads);
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
}
