using System.Globalization;
using Backstop.Core.Config;

namespace Backstop.Sources.Common;

/// <summary>
/// A server named by <c>--to</c> (<c>postgresql://user@host:5432/db</c>, <c>mysql://…</c>, <c>http://host:5984/db</c>),
/// parsed in one place by the source kinds that restore into servers: the scheme must be one the kind takes, a
/// password in the URI is refused (it would show in <c>ps</c> and be printed), the port defaults per scheme.
/// </summary>
public sealed record ServerDestination(string Scheme, string Host, int Port, string User, string Database)
{
    /// <param name="schemes">The schemes the kind takes, each with its default port.</param>
    /// <param name="example">A destination of that kind, for the error.</param>
    /// <param name="defaultUser">The user when the URI names none (the source's own).</param>
    public static ServerDestination Parse(string destination, IReadOnlyDictionary<string, int> schemes, string example, string? defaultUser)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(schemes);
        if (!Uri.TryCreate(destination, UriKind.Absolute, out var uri) || !schemes.TryGetValue(uri.Scheme, out var defaultPort) || uri.Host.Length == 0)
        {
            throw new ConfigException($"--to {destination}: this source restores into a server named like {example}");
        }

        if (uri.UserInfo.Contains(':', StringComparison.Ordinal))
        {
            throw new ConfigException("--to: leave the password out of the URI (it would be visible to every user and printed); the source's password, or the tool's own variable (PGPASSWORD), is used");
        }

        var port = uri.IsDefaultPort || uri.Port < 0 ? defaultPort : uri.Port;
        var user = uri.UserInfo.Length > 0 ? Uri.UnescapeDataString(uri.UserInfo) : defaultUser ?? Environment.UserName;
        return new ServerDestination(uri.Scheme, uri.Host, port, user, Uri.UnescapeDataString(uri.AbsolutePath.Trim('/')));
    }

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
