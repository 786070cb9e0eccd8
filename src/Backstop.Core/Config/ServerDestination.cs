using System.Globalization;
namespace Backstop.Core.Config;

/// <summary>
/// A server named by a URI (<c>--to postgresql://user@host:5432/db</c>, <c>mysql://…</c>, <c>http://host:5984/db</c>,
/// <c>catalog.url</c>), parsed in one place: the scheme must be one the reader takes, a password in the URI is refused
/// (it would show in <c>ps</c> and be printed), the port defaults per scheme, and the query's settings
/// (<c>?sslmode=verify-full&amp;sslrootcert=…</c>) are kept.
/// </summary>
public sealed record ServerDestination(string Scheme, string Host, int Port, string User, string Database)
{
    /// <param name="schemes">The schemes the kind takes, each with its default port.</param>
    /// <param name="example">A destination of that kind, for the error.</param>
    /// <param name="defaultUser">The user when the URI names none (the source's own).</param>
    /// <param name="error">Makes the error for a URI that is not right (where it was given: a flag, a config key).</param>
    public static ServerDestination Parse(string destination, IReadOnlyDictionary<string, int> schemes, string example, string? defaultUser,
        Func<string, Exception>? error = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(schemes);
        error ??= message => new ConfigException("--to" + message);
        if (!Uri.TryCreate(destination, UriKind.Absolute, out var uri) || !schemes.TryGetValue(uri.Scheme, out var defaultPort) || uri.Host.Length == 0)
        {
            throw error($" {Redact(destination)}: name a server like {example}");
        }

        if (uri.UserInfo.Contains(':', StringComparison.Ordinal))
        {
            throw error(": leave the password out of the URI (it would be visible to every user and printed); the configured password, or the tool's own variable (PGPASSWORD), is used");
        }

        return Build(uri, defaultPort, defaultUser);
    }

    /// <summary>The URI as it may be printed: what follows the user name up to the authority's last '@' goes (a password, even with '@' in it).</summary>
    public static string Redact(string destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var sep = destination.IndexOf("://", StringComparison.Ordinal);
        if (sep < 0)
        {
            return destination;
        }

        var start = sep + 3;
        var end = destination.IndexOfAny(['/', '?', '#'], start) is var e and >= 0 ? e : destination.Length;
        var at = destination.LastIndexOf('@', end - 1, end - start);
        return at < 0 ? destination : destination[..start] + destination[start..at].Split(':')[0] + destination[at..];
    }

    private static ServerDestination Build(Uri uri, int defaultPort, string? defaultUser)
    {
        var port = uri.IsDefaultPort || uri.Port < 0 ? defaultPort : uri.Port;
        var user = uri.UserInfo.Length > 0 ? Uri.UnescapeDataString(uri.UserInfo) : defaultUser ?? Environment.UserName;
        var query = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            query[Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq])] = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..]);
        }

        return new ServerDestination(uri.Scheme, uri.Host, port, user, Uri.UnescapeDataString(uri.AbsolutePath.Trim('/'))) { Query = query };
    }

    /// <summary>The URI's query settings (<c>sslmode</c>, <c>sslrootcert</c>, …), unescaped.</summary>
    public IReadOnlyDictionary<string, string> Query { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The database named, or an error saying how to name one.</summary>
    public string RequireDatabase(string example) =>
        Database.Length > 0 ? Database : throw new ConfigException($"--to: name the database to restore into, like {example}");

    /// <summary>The placeholders a stock-tool recipe takes: URL, HOST, PORT, USER, DB (never a password).</summary>
    public IReadOnlyDictionary<string, string> Places => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["URL"] = $"{Scheme}://{Host}:{Port.ToString(CultureInfo.InvariantCulture)}",
        ["HOST"] = Host,
        ["PORT"] = Port.ToString(CultureInfo.InvariantCulture),
        ["USER"] = User,
        ["DB"] = Database,
    };
}
