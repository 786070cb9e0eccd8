namespace Backstop.Core.Config;

/// <summary>Where something is in a configuration file (1-based line and column).</summary>
public readonly record struct ConfigLocation(string File, long Line, long Column)
{
    public override string ToString() => Line > 0 ? $"{File}:{Line}:{Column}" : File;
}

/// <summary>A configuration or usage error: exit code 2, printed without a stack trace.</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string message) : base(message) => Reason = message;

    public ConfigException(ConfigLocation location, string message)
        : base($"{location}: {message}")
    {
        Location = location;
        Reason = message;
    }

    /// <summary>The message without its place.</summary>
    public string Reason { get; } = "";

    /// <summary>Several errors of one configuration file, found in one pass, in the order they are reported.</summary>
    public ConfigException(IReadOnlyList<ConfigException> errors)
        : base(string.Join(Environment.NewLine, (errors ?? []).Select(e => e.Message)))
    {
        Errors = errors ?? [];
        Reason = Message;
    }

    public ConfigLocation? Location { get; }

    /// <summary>The error is a key nothing reads (reported before what its absence causes).</summary>
    public bool UnknownKey { get; init; }

    /// <summary>Every error, when several were found in one pass; otherwise this one alone.</summary>
    public IReadOnlyList<ConfigException> Errors
    {
        get => field ?? [this];
        private init;
    }
}
