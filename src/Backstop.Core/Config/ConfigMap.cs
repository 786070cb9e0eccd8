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

    /// <summary>What this mapping shares with the rest of its file (secrets, errors, the key recorder).</summary>
    public ConfigDocument Document { get; }

    /// <summary>The secrets read so far from this document, where they come from: <c>doctor</c> flags inline ones in a readable file.</summary>
    public IReadOnlyList<SecretRef> Secrets => Document.Secrets;

    private ConfigMap Child(YamlMappingNode node, string path) => new(node, File, path, Document);

    public ConfigMap(YamlMappingNode node, string file, string path, ConfigDocument? document = null)
    {
        _node = node;
        File = file;
        Path = path;
        Document = document ?? new ConfigDocument();
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
        Known(key);
        return Find(key) is not null and not YamlScalarNode { Value: null or "" or "~", Style: YamlDotNet.Core.ScalarStyle.Plain };
    }

    public ConfigException Error(string key, string message) => new(LocationOf(key), $"{Describe(key)}: {message}");

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "Named for the YAML value it reads, beside Int, Bool and List; every kind's parser calls it.")]
    public string? String(string key)
    {
        Record(key, "string");
        return Scalar(key);
    }

    /// <summary>A string with a default, which the configuration reference shows.</summary>
    public string StringOr(string key, string fallback)
    {
        Record(key, "string", fallback);
        return Scalar(key) ?? fallback;
    }

    public string RequireString(string key)
    {
        Record(key, "string", required: true);
        if (Find(key) is not null and not YamlScalarNode)
        {
            // One error, at the value: not a second "required" for a key that is there.
            Known(key);
            throw Error(key, "expected a single value (a string), not a list or a mapping");
        }

        return Scalar(key) is { Length: > 0 } s ? s : throw new ConfigException(Location, $"{Path}: the key '{key}' is required");
    }

    public string? PathValue(string key)
    {
        Record(key, "path");
        return Scalar(key) is { Length: > 0 } s ? ResolvePath(s) : null;
    }

    /// <summary>A scalar's text; a list or a mapping is an error (recorded, and read as absent, when collecting).</summary>
    private string? Scalar(string key)
    {
        var node = Get(key);
        return node switch
        {
            null => null,
            YamlScalarNode s => s.Value,
            _ => Fail<string>(Error(key, "expected a single value (a string), not a list or a mapping")),
        };
    }

    /// <summary>Throws the error, or (collecting every error of the file) records it and reads the value as absent.</summary>
    private T? Fail<T>(ConfigException error)
    {
        Document.Report(error);
        return default;
    }

    private void Record(string key, string type, string? fallback = null, bool required = false) =>
        Document.Recorder?.Record(Describe(key), type, fallback, required);

    /// <summary>A size as written in a configuration: the largest binary unit that divides it (16MiB).</summary>
    private static string ExactSize(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        var u = 0;
        while (u < units.Length - 1 && bytes != 0 && bytes % 1024 == 0)
        {
            bytes /= 1024;
            u++;
        }

        return string.Create(CultureInfo.InvariantCulture, $"{bytes}{units[u]}");
    }

    private static string Range(int min, int max) =>
        (min, max) switch
        {
            (int.MinValue, int.MaxValue) => "integer",
            (_, int.MaxValue) => $"integer ≥ {min}",
            _ => $"integer {min}–{max}",
        };

    public string ResolvePath(string value) => System.IO.Path.GetFullPath(System.IO.Path.Combine(_baseDirectory, ExpandHome(value)));

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "Named for the value it reads, beside String and Bool; every kind's parser calls it.")]
    public int? Int(string key, int min = int.MinValue, int max = int.MaxValue)
    {
        Record(key, Range(min, max));
        return IntValue(key, min, max);
    }

    /// <summary>A whole number with a default, which the configuration reference shows.</summary>
    public int IntOr(string key, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        Record(key, Range(min, max), fallback.ToString(CultureInfo.InvariantCulture));
        return IntValue(key, min, max) ?? fallback;
    }

    private int? IntValue(string key, int min, int max)
    {
        var s = Scalar(key);
        if (s is null)
        {
            return null;
        }

        if (!int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
        {
            return Fail<int?>(Error(key, $"'{s}' is not a whole number"));
        }

        return v < min || v > max ? Fail<int?>(Error(key, $"{v} is out of range ({min}..{max})")) : v;
    }

    public bool? Bool(string key)
    {
        Record(key, "boolean");
        return BoolValue(key);
    }

    /// <summary>true or false with a default, which the configuration reference shows.</summary>
    public bool BoolOr(string key, bool fallback)
    {
        Record(key, "boolean", fallback ? "true" : "false");
        return BoolValue(key) ?? fallback;
    }

    private bool? BoolValue(string key)
    {
        var s = Scalar(key);
        return s switch
        {
            null => null,
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            _ => Fail<bool?>(Error(key, $"'{s}' is not true or false")),
        };
    }

    public long? Size(string key)
    {
        Record(key, "size");
        return Quantity<long>(key, Quantities.TryParseSize);
    }

    /// <summary>A size with a default, which the configuration reference shows.</summary>
    public long SizeOr(string key, long fallback)
    {
        Record(key, "size", ExactSize(fallback));
        return Quantity<long>(key, Quantities.TryParseSize) ?? fallback;
    }

    /// <summary>
    /// A server's http(s) URL with nothing after the host and port: no credentials (they go in user/password), no path,
    /// no query. <paramref name="example"/> shows one in the error.
    /// </summary>
    public Uri? ServerUrl(string key, string example)
    {
        Record(key, "http(s) URL");
        var text = Scalar(key);
        if (text is null)
        {
            return null;
        }

        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.UserInfo.Length == 0
               && uri.AbsolutePath.Trim('/').Length == 0 && uri.Query.Length == 0
            ? uri
            : Fail<Uri>(Error(key, $"'{text}' is not a server's URL without credentials, path or query, like {example} (credentials go in user and password)"));
    }

    public TimeSpan? Duration(string key)
    {
        Record(key, "duration");
        return Quantity<TimeSpan>(key, Quantities.TryParseDuration);
    }

    /// <summary>A duration with a default, which the configuration reference shows.</summary>
    public TimeSpan DurationOr(string key, TimeSpan fallback)
    {
        Record(key, "duration", Quantities.FormatDuration(fallback));
        return Quantity<TimeSpan>(key, Quantities.TryParseDuration) ?? fallback;
    }

    public int? Percent(string key)
    {
        Record(key, "percentage");
        return Quantity<int>(key, Quantities.TryParsePercent);
    }

    /// <summary>A timeout: longer than zero and at most 24 days (what a timer can hold).</summary>
    public TimeSpan Timeout(string key, TimeSpan fallback)
    {
        Record(key, "duration (at most 24d)", Quantities.FormatDuration(fallback));
        var timeout = Quantity<TimeSpan>(key, Quantities.TryParseDuration) ?? fallback;
        return timeout <= TimeSpan.Zero || timeout > TimeSpan.FromDays(24)
            ? Fail<TimeSpan?>(Error(key, "must be longer than zero and at most 24d")) ?? fallback
            : timeout;
    }

    /// <summary><c>all</c> (null) or a list of names.</summary>
    public IReadOnlyList<string>? AllOrList(string key)
    {
        Record(key, "all, or a list of names", "all");
        return StringListValue(key) is { } listed && !(listed.Count == 1 && listed[0] == "all") ? listed : null;
    }

    private delegate bool TryParse<T>(string text, out T value, out string error);

    private T? Quantity<T>(string key, TryParse<T> parse) where T : struct
    {
        var s = Scalar(key);
        if (s is null)
        {
            return null;
        }

        return parse(s, out var v, out var err) ? v : Fail<T?>(Error(key, err));
    }

    public SecretRef? Secret(string key)
    {
        Record(key, "secret (env:NAME, file:PATH)");
        var s = Scalar(key);
        if (s is null)
        {
            return null;
        }

        var secret = new SecretRef(s, LocationOf(key));
        Document.Secrets.Add(secret);
        return secret;
    }

    public T? Enum<T>(string key, params (string Name, T Value)[] choices) where T : struct
    {
        Record(key, Choices(choices));
        return EnumValue(key, choices);
    }

    /// <summary>One of some names, with a default, which the configuration reference shows.</summary>
    public T EnumOr<T>(string key, T fallback, params (string Name, T Value)[] choices) where T : struct
    {
        Record(key, Choices(choices), choices.FirstOrDefault(c => EqualityComparer<T>.Default.Equals(c.Value, fallback)).Name);
        return EnumValue(key, choices) ?? fallback;
    }

    private static string Choices<T>((string Name, T Value)[] choices) => "one of " + string.Join(", ", choices.Select(c => c.Name));

    private T? EnumValue<T>(string key, (string Name, T Value)[] choices) where T : struct
    {
        var s = Scalar(key);
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

        return Fail<T?>(Error(key, $"'{s}' is not one of: {string.Join(", ", choices.Select(c => c.Name))}"));
    }

    /// <summary>A list of strings; a single scalar is accepted as a list of one.</summary>
    public IReadOnlyList<string>? StringList(string key)
    {
        Record(key, "list of strings");
        return StringListValue(key);
    }

    private List<string>? StringListValue(string key)
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
                        return Fail<List<string>>(new ConfigException(At(item), $"{Describe(key)}: every item must be a string"));
                    }

                    list.Add(v2);
                }

                return list;
            default:
                return Fail<List<string>>(Error(key, "expected a list of strings"));
        }
    }

    /// <summary>A list whose items are each a string or a mapping (e.g. <c>smoke: ["SELECT …", {database: app, sql: "…"}]</c>).</summary>
    public IReadOnlyList<(string? Text, ConfigMap? Map, ConfigLocation Location)>? MixedList(string key)
    {
        Record(key, "list of strings or mappings");
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
        Record(key, "mapping of names to values");
        var node = Get(key);
        if (node is null)
        {
            return null;
        }

        if (node is not YamlMappingNode map)
        {
            return Fail<List<(string, string, ConfigLocation)>>(Error(key, "expected a mapping of names to values"));
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
        Record(key, "mapping");
        var node = Get(key);
        return node switch
        {
            null => null,
            YamlMappingNode m => Child(m, $"{Path}.{key}".TrimStart('.')),
            YamlScalarNode { Value: null or "" } => null,
            _ => Fail<ConfigMap>(Error(key, "expected a mapping (key: value pairs)")),
        };
    }

    public IReadOnlyList<ConfigMap> MapList(string key)
    {
        Record(key, "list of mappings");
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

    /// <summary>
    /// Every key of the mapping that nothing read is an error (each one, when collecting). A key read here clears
    /// the doubt of the reference's key check, so a key the reference does not list yet is never refused.
    /// </summary>
    public void EnsureAllKeysKnown(string? hint = null)
    {
        foreach (var (k, _) in _node.Children)
        {
            var name = (k as YamlScalarNode)?.Value ?? "";
            if (_known.Contains(name))
            {
                Document.Clear(At(k));
                continue;
            }

            if (Document.IsSuspect(At(k)))
            {
                Document.Confirm(At(k));
                continue;
            }

            var suggestion = Text.Spelling.Closest(name, _known);
            var more = suggestion is not null ? $" (did you mean '{suggestion}'?)" : hint is not null ? $" ({hint})" : "";
            Document.Report(new ConfigException(At(k), $"{Describe(name)}: unknown key{more}") { UnknownKey = true });
        }
    }

    private string Describe(string key) => string.IsNullOrEmpty(Path) ? key : $"{Path}.{key}";

    private YamlNode? Get(string key)
    {
        Known(key);
        return Find(key);
    }

    /// <summary>A key the parser reads is valid, whatever the reference's key check noted about it.</summary>
    private void Known(string key)
    {
        if (_known.Add(key) && _node.Children.Keys.FirstOrDefault(k => k is YamlScalarNode { Value: { } n } && n == key) is { } keyNode)
        {
            Document.Clear(At(keyNode));
        }
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
}
