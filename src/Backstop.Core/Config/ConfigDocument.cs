using System.Text.RegularExpressions;

namespace Backstop.Core.Config;

/// <summary>
/// What the mappings of one configuration file share while it is read: the secrets met, and, when the loader asks
/// for every error in one pass, the errors found so far (a wrong value is recorded and read as absent, so that the
/// rest is still checked). The reference generator also records here the type and default of every key a parser
/// reads.
/// </summary>
public sealed partial class ConfigDocument
{
    private readonly List<ConfigException>? _errors;
    private readonly Dictionary<ConfigLocation, ConfigException> _suspects = [];

    /// <param name="collect">Record errors instead of throwing the first one.</param>
    /// <param name="recorder">Records every key read (the configuration reference).</param>
    public ConfigDocument(bool collect = false, KeyRecorder? recorder = null)
    {
        _errors = collect ? [] : null;
        Recorder = recorder;
    }

    public List<SecretRef> Secrets { get; } = [];

    public KeyRecorder? Recorder { get; }

    public bool Collecting => _errors is not null;

    /// <summary>Records an error (one per place in the file), or throws it when not collecting.</summary>
    public void Report(ConfigException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (_errors is null)
        {
            throw error;
        }

        // One error per place (a "required" key after its wrong value, an unknown kind after a missing one), but an
        // unknown key and what its absence causes may share one: a mapping starts where its first key does.
        if (error.Location is { } at && _errors.Any(e => e.Location == at && e.UnknownKey == error.UnknownKey))
        {
            return;
        }

        _errors.Add(error);
    }

    /// <summary>
    /// A key the reference does not list: an error unless the parser of its mapping turns out to read it (then the
    /// reference is behind, and the user is not punished for it).
    /// </summary>
    public void Suspect(ConfigException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        _suspects.TryAdd(error.Location!.Value, error);
    }

    public void Clear(ConfigLocation keyLocation) => _suspects.Remove(keyLocation);

    /// <summary>A noted key its parser did not read either: an error for good (an alias read by another parser cannot clear it).</summary>
    public void Confirm(ConfigLocation keyLocation)
    {
        if (_suspects.Remove(keyLocation, out var error))
        {
            Report(error);
        }
    }

    /// <summary>Whether an error was recorded (the key check's notes aside: the parse may still clear them).</summary>
    public bool HasErrors => _errors is { Count: > 0 };

    /// <summary>Whether the reference's key check already noted this key (its message lists the valid keys).</summary>
    public bool IsSuspect(ConfigLocation keyLocation) => _suspects.ContainsKey(keyLocation);

    /// <summary>Every error recorded, unknown keys included.</summary>
    public IReadOnlyList<ConfigException> Errors
    {
        get
        {
            var all = new List<ConfigException>(_errors ?? []);
            all.AddRange(_suspects.Values.Where(s => all.All(e => e.Location != s.Location || !e.UnknownKey)));
            return all;
        }
    }

    [GeneratedRegex(@"\[\d+\]")]
    internal static partial Regex IndexPattern();
}

/// <summary>The type and default of every key a parser reads, by path (<c>sources[].tools.pg_dump</c>).</summary>
public sealed class KeyRecorder
{
    private readonly Dictionary<string, KeyUse> _uses = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, KeyUse> Uses => _uses;

    public void Record(string path, string type, string? fallback, bool required = false)
    {
        path = ConfigDocument.IndexPattern().Replace(path, "[]");
        if (_uses.TryGetValue(path, out var old))
        {
            // A value read first as text and then as its type (max_shrink: none, or a percentage) keeps the type.
            type = type == "string" ? old.Type : type;
            fallback ??= old.Default;
            required |= old.Required;
        }

        _uses[path] = new KeyUse(type, fallback, required);
    }
}

/// <summary>How a key is read: its type, and the value used when it is absent (null when there is none, or it depends).</summary>
public sealed record KeyUse(string Type, string? Default, bool Required);
