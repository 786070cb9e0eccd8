namespace Backstop.Core.Text;

/// <summary>
/// Words of a recipe a person pastes into a shell: a stored file's name may hold anything a server's database name
/// held (<c>x$(touch${IFS}pwned)</c>), so every name is one single-quoted word unless it is plainly safe.
/// </summary>
public static class ShellWord
{
    /// <summary>One shell word, whatever it holds: single quotes, with each ' written as '\''.</summary>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>The value as it is when every character is one a shell never interprets, else <see cref="Quote"/>d.</summary>
    public static string QuoteIfNeeded(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '+' or '%' or '@' or ',' or ':' or '/' or '=')
            ? value
            : Quote(value);
    }
}
