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

    /// <summary>The URL as printed (never a password: the URL holds none).</summary>
    public string Display => $"postgresql://{Server.User}@{Server.Host}:{Server.Port.ToString(CultureInfo.InvariantCulture)}/{Server.Database}";
}
