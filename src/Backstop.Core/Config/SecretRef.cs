namespace Backstop.Core.Config;

/// <summary>
/// A secret as written in the configuration: <c>env:NAME</c>, <c>file:/path</c>, or (discouraged) the value itself.
/// The value is read only when needed and never printed: <see cref="ToString"/> shows where it comes from.
/// </summary>
public sealed record SecretRef(string Reference, ConfigLocation Location)
{
    public string Resolve()
    {
        if (Reference.StartsWith("env:", StringComparison.Ordinal))
        {
            var name = Reference[4..];
            return Environment.GetEnvironmentVariable(name) is { Length: > 0 } v
                ? v
                : throw new ConfigException(Location, $"the secret comes from the environment variable {name}, which is not set");
        }

        if (Reference.StartsWith("file:", StringComparison.Ordinal))
        {
            var path = Reference[5..];
            try
            {
                return File.ReadAllText(path).TrimEnd('\r', '\n');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigException(Location, $"the secret file {path} cannot be read: {e.Message}");
            }
        }

        return Reference;
    }

    public override string ToString() =>
        Reference.StartsWith("env:", StringComparison.Ordinal) || Reference.StartsWith("file:", StringComparison.Ordinal)
            ? Reference
            : "(inline secret)";
}
