using Backstop.Core.Config;

namespace Backstop.Sources.Scratch;

/// <summary>
/// <c>drill: {smoke: ["SELECT …", {database: NAME, sql: "SELECT …"}]}</c> for the SQL kinds: a plain string runs in the
/// snapshot's only database; a mapping names the database. Each must run and return a first row whose first column
/// is true or a non-zero number.
/// </summary>
public static class SmokeQueries
{
    /// <summary>The <c>drill.smoke</c> keys, for the configuration reference.</summary>
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("drill.smoke", "[\"SELECT count(*) > 0 FROM orders\", {database: billing, sql: \"SELECT count(*) > 0 FROM invoices\"}]",
            "Queries run in the restored databases; each must return true or a non-zero number first. A string runs in the only database"),
        new("drill.smoke[].database", "", "The database a query runs in"),
        new("drill.smoke[].sql", "", "The query") { Default = "required" },
    ];

    public static IReadOnlyList<(string? Database, string Sql)> Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var list = new List<(string?, string)>();
        foreach (var (text, item, location) in map.MixedList("smoke") ?? [])
        {
            if (text is not null)
            {
                list.Add((null, text.Trim().Length > 0 ? text : throw new ConfigException(location, $"{map.Path}.smoke: a smoke query cannot be empty")));
                continue;
            }

            var sql = item!.String("sql");
            var database = item.String("database");
            item.EnsureAllKeysKnown("a smoke query is a string, or {database: NAME, sql: \"SELECT …\"}");
            if (sql is null || sql.Trim().Length == 0)
            {
                throw new ConfigException(location, $"{item.Path}: sql is required (the query; its first column must be true or a non-zero number)");
            }

            list.Add((database, sql));
        }

        return list;
    }

    /// <summary>True for true, and for a number that is not zero; false for false, zero, NULL, text and anything else.</summary>
    public static bool Passes(object? value) => value switch
    {
        bool b => b,
        sbyte or byte or short or ushort or int or uint or long or ulong => Convert.ToDecimal(value, System.Globalization.CultureInfo.InvariantCulture) != 0,
        float f => f != 0 && !float.IsNaN(f),
        double d => d != 0 && !double.IsNaN(d),
        decimal m => m != 0,
        _ => false,
    };
}
