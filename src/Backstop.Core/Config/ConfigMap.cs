using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Backstop.Core.Config;

/// <summary>
/// A strict view of one YAML mapping: every read marks a key as known, <see cref="EnsureAllKeysKnown"/> rejects the
/// rest, and every error names the file, line and column. Plugins read their typed options through it.
/// </summary>
public sealed class ConfigMap
{
    private readonly YamlMappingNode _node;
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);
    private readonly string _baseDirectory;

    /// <summary>Every secret read from this document (shared by a mapping and the mappings under it).</summary>
    private List<SecretRef> _secrets = [];

    /// <summary>The secrets read so far from this document, where they come from: <c>doctor</c> flags inline ones in a readable file.</summary>
    public IReadOnlyList<SecretRef> Secrets => _secrets;

    private ConfigMap Child(YamlMappingNode node, string path) => new(node, File, path) { _secrets = _secrets };

    public ConfigMap(YamlMappingNode node, string file, string path)
    {
        _node = node;
        File = file;
        Path = path;
        _baseDirectory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file)) ?? "/";
    }

    /// <summary>The configuration file this mapping came from.</summary>
    public string File { get; }

    /// <summary>Where this mapping sits in the document, e.g. <c>sources[2]</c>.</summary>
    public string Path { get; }

    public ConfigLocation Location => At(_node);

    public ConfigLocation At(YamlNode node) => new(File, node.Start.Line, node.Start.Column);

    public ConfigLocation LocationOf(string key) => Find(key) is { } n ? At(n) : Location;

    public bool Has(string key)
    {
        _known.Add(key);
        return Find(key) is not null and not YamlScalarNode { Value: null or "" or "~", Style: YamlDotNet.Core.ScalarStyle.Plain };
    }

    public ConfigException Error(string key, string message) => new(LocationOf(key), $"{Describe(key)}: {message}");

    public string? String(string key)
    {
        var node = Get(key);
        return node switch
        {
            null => null,
            YamlScalarNode s => s.Value,
            _ => throw Error(key, "expected a single value (a string), not a list or a mapping"),
        };
    }

    public string RequireString(string key) =>
        String(key) is { Length: > 0 } s ? s : throw new ConfigException(Location, $"{Path}: the key '{key}' is required");

    public string? PathValue(string key) => String(key) is { Length: > 0 } s ? ResolvePath(s) : null;

    public string ResolvePath(string value) => System.IO.Path.GetFullPath(System.IO.Path.Combine(_baseDirectory, ExpandHome(value)));

    public int? Int(string key, int min = int.MinValue, int max = int.MaxValue)
    {
        var s = String(key);
        if (s is null)
        {
            return null;
        }

        if (!int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
        {
            throw Error(key, $"'{s}' is not a whole number");
        }

        return v < min || v > max ? throw Error(key, $"{v} is out of range ({min}..{max})") : v;
    }

    public bool? Bool(string key)
    {
        var s = String(key);
        return s switch
        {
            null => null,
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => throw Error(key, $"'{s}' is not true or false"),
        };
    }

    public long? Size(string key) => Quantity<long>(key, Quantities.TryParseSize);

    public TimeSpan? Duration(string key) => Quantity<TimeSpan>(key, Quantities.TryParseDuration);

    public int? Percent(string key) => Quantity<int>(key, Quantities.TryParsePercent);

    /// <summary>A timeout: longer than zero and at most 24 days (what a timer can hold).</summary>
    public TimeSpan Timeout(string key, TimeSpan fallback)
    {
        var timeout = Duration(key) ?? fallback;
        return timeout <= TimeSpan.Zero || timeout > TimeSpan.FromDays(24)
            ? throw Error(key, "must be longer than zero and at most 24d")
            : timeout;
    }

    /// <summary><c>all</c> (null) or a list of names.</summary>
    public IReadOnlyList<string>? AllOrList(string key) =>
        StringList(key) is { } listed && !(listed.Count == 1 && listed[0] == "all") ? listed : null;

    private delegate bool TryParse<T>(string text, out T value, out string error);

    private T? Quantity<T>(string key, TryParse<T> parse) where T : struct
    {
        var s = String(key);
        if (s is null)
        {
            return null;
        }

        return parse(s, out var v, out var err) ? v : throw Error(key, err);
    }

    public SecretRef? Secret(string key)
    {
        var s = String(key);
        if (s is null)
        {
            return null;
        }

        var secret = new SecretRef(s, LocationOf(key));
        _secrets.Add(secret);
        return secret;
    }

    public T? Enum<T>(string key, params (string Name, T Value)[] choices) where T : struct
    {
        var s = String(key);
        if (s is null)
        {
            return null;
        }

        foreach (var (name, value) in choices)
        {
            if (string.Equals(name, s, StringComparison.Ordinal))
            {
                return value;
            }
        }

        throw Error(key, $"'{s}' is not one of: {string.Join(", ", choices.Select(c => c.Name))}");
    }

    /// <summary>A list of strings; a single scalar is accepted as a list of one.</summary>
    public IReadOnlyList<string>? StringList(string key)
    {
        var node = Get(key);
        switch (node)
        {
            case null:
                return null;
            case YamlScalarNode s:
                return s.Value is { Length: > 0 } v ? [v] : [];
            case YamlSequenceNode seq:
                var list = new List<string>();
                foreach (var item in seq)
                {
                    if (item is not YamlScalarNode { Value: { } v2 })
                    {
                        throw new ConfigException(At(item), $"{Describe(key)}: every item must be a string");
                    }

                    list.Add(v2);
                }

                return list;
            default:
                throw Error(key, "expected a list of strings");
        }
    }

    /// <summary>A list whose items are each a string or a mapping (e.g. <c>smoke: ["SELECT …", {database: app, sql: "…"}]</c>).</summary>
    public IReadOnlyList<(string? Text, ConfigMap? Map, ConfigLocation Location)>? MixedList(string key)
    {
        var node = Get(key);
        if (node is null)
        {
            return null;
        }

        var items = node is YamlSequenceNode seq ? seq.Children.ToList() : [node];
        var list = new List<(string?, ConfigMap?, ConfigLocation)>();
        for (var i = 0; i < items.Count; i++)
        {
            list.Add(items[i] switch
            {
                YamlScalarNode { Value: { } v } => (v, null, At(items[i])),
                YamlMappingNode m => (null, Child(m, $"{Path}.{key}[{i}]".TrimStart('.')), At(items[i])),
                _ => throw new ConfigException(At(items[i]), $"{Describe(key)}[{i}]: expected a string or a mapping"),
            });
        }

        return list;
    }

    /// <summary>A mapping of string to string (e.g. environment variables).</summary>
    public IReadOnlyList<(string Key, string Value, ConfigLocation Location)>? StringMap(string key)
    {
        var node = Get(key);
        if (node is null)
        {
            return null;
        }

        if (node is not YamlMappingNode map)
        {
            throw Error(key, "expected a mapping of names to values");
        }

        var list = new List<(string, string, ConfigLocation)>();
        foreach (var (k, v) in map.Children)
        {
            if (k is not YamlScalarNode { Value: { } name } || v is not YamlScalarNode { Value: var value })
            {
                throw new ConfigException(At(k), $"{Describe(key)}: every entry must be NAME: value");
            }

            list.Add((name, value ?? "", At(v)));
        }

        return list;
    }

    /// <summary>Whether the key holds a mapping (a key that takes a value or a mapping, such as <c>catalog</c>).</summary>
    public bool IsMap(string key) => Find(key) is YamlMappingNode;

    public ConfigMap? Map(string key)
    {
        var node = Get(key);
        return node switch
        {
            null => null,
            YamlMappingNode m => Child(m, $"{Path}.{key}".TrimStart('.')),
            YamlScalarNode { Value: null or "" } => null,
            _ => throw Error(key, "expected a mapping (key: value pairs)"),
        };
    }

    public IReadOnlyList<ConfigMap> MapList(string key)
    {
        var node = Get(key);
        switch (node)
        {
            case null:
            case YamlScalarNode { Value: null or "" }:
                return [];
            case YamlSequenceNode seq:
                var list = new List<ConfigMap>();
                var i = 0;
                foreach (var item in seq)
                {
                    if (item is not YamlMappingNode m)
                    {
                        throw new ConfigException(At(item), $"{Describe(key)}[{i}]: expected a mapping (key: value pairs)");
                    }

                    list.Add(Child(m, $"{Path}.{key}[{i}]".TrimStart('.')));
                    i++;
                }

                return list;
            default:
                throw Error(key, "expected a list");
        }
    }

    /// <summary>Keys present in the mapping that nothing asked for.</summary>
    public IEnumerable<string> Keys => _node.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value ?? "");

    /// <summary>Marks keys as read without reading them (used by wrappers that hand a mapping to a plugin).</summary>
    public void MarkKnown(params string[] keys)
    {
        foreach (var k in keys)
        {
            _known.Add(k);
        }
    }

    public void EnsureAllKeysKnown(string? hint = null)
    {
        foreach (var (k, _) in _node.Children)
        {
            var name = (k as YamlScalarNode)?.Value ?? "";
            if (!_known.Contains(name))
            {
                var suggestion = _known.OrderBy(c => Distance(c, name)).FirstOrDefault(c => Distance(c, name) <= 2);
                var more = suggestion is not null ? $" (did you mean '{suggestion}'?)" : hint is not null ? $" ({hint})" : "";
                throw new ConfigException(At(k), $"{Describe(name)}: unknown key{more}");
            }
        }
    }

    private string Describe(string key) => string.IsNullOrEmpty(Path) ? key : $"{Path}.{key}";

    private YamlNode? Get(string key)
    {
        _known.Add(key);
        return Find(key);
    }

    private YamlNode? Find(string key)
    {
        foreach (var (k, v) in _node.Children)
        {
            if (k is YamlScalarNode { Value: { } name } && string.Equals(name, key, StringComparison.Ordinal))
            {
                return v;
            }
        }

        return null;
    }

    private static string ExpandHome(string p) =>
        p.StartsWith("~/", StringComparison.Ordinal)
            ? System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), p[2..])
            : p;

    private static int Distance(string a, string b) => Util.Spelling.Distance(a, b);
}
