namespace Backstop.Sources.Postgres;

/// <summary>
/// A libpq connection string with every value single-quoted (backslash and quote escaped), passed as <c>-d</c> to
/// pg_dump, pg_dumpall, pg_restore and psql. libpq reads a <c>-d</c> value holding '=' as a connection string, so a
/// database named <c>host=other port=5433 dbname=evil</c> given bare would connect elsewhere with PGPASSWORD; quoted
/// inside a well-formed string it is only ever a name. The password never goes here (PGPASSWORD, in the child's
/// environment).
/// </summary>
internal static class Conninfo
{
    public static string Of(string host, int port, string user, string? database)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(user);
        var s = $"host={Quote(host)} port={port.ToString(System.Globalization.CultureInfo.InvariantCulture)} user={Quote(user)}";
        return database is null ? s : s + $" dbname={Quote(database)}";
    }

    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
    }
}
