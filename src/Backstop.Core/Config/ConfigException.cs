namespace Backstop.Core.Config;

/// <summary>Where something is in a configuration file (1-based line and column).</summary>
public readonly record struct ConfigLocation(string File, long Line, long Column)
{
    public override string ToString() => Line > 0 ? $"{File}:{Line}:{Column}" : File;
}

/// <summary>A configuration or usage error: exit code 2, printed without a stack trace.</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string message) : base(message) { }

    public ConfigException(ConfigLocation location, string message)
        : base($"{location}: {message}") => Location = location;

    public ConfigLocation? Location { get; }
}
