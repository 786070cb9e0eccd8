using System.Globalization;

namespace Backstop.Core.Config;

/// <summary>
/// <c>catalog: {url: postgresql://user@host:5432/db, password: env:NAME}</c>: a shared catalog on PostgreSQL. The URL's
/// query takes libpq's TLS settings (<c>sslmode</c>, <c>sslrootcert</c>, <c>sslcert</c>, <c>sslkey</c>).
/// </summary>
public sealed record CatalogServer(ServerDestination Server, SecretRef? Password)
{
    public static readonly IReadOnlyDictionary<string, int> Schemes = new Dictionary<string, int>(StringComparer.Ordinal) { ["postgresql"] = 5432, ["postgres"] = 5432 };

    public const string Example = "postgresql://backstop@db.example:5432/backstop";

    /// <summary>The query settings a catalog URL takes.</summary>
    public static readonly IReadOnlyList<string> QueryKeys = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

    public static readonly IReadOnlyList<string> SslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

    /// <summary>The query's settings must be libpq's TLS ones, with a known sslmode; <paramref name="error"/> makes the message's exception.</summary>
    public static void CheckQuery(ServerDestination server, Func<string, Exception> error)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(error);
        foreach (var (key, value) in server.Query)
        {
            if (!QueryKeys.Contains(key))
            {
                throw error($"'{key}' is not a setting here; the URL takes {string.Join(", ", QueryKeys)}");
            }

            if (key == "sslmode" && !SslModes.Contains(value))
            {
                throw error($"sslmode '{value}' is not one of {string.Join(", ", SslModes)}");
            }
        }
    }

    /// <summary>The URL as printed (never a password: the URL holds none).</summary>
    public string Display => $"postgresql://{Server.User}@{Server.Host}:{Server.Port.ToString(CultureInfo.InvariantCulture)}/{Server.Database}";
}
