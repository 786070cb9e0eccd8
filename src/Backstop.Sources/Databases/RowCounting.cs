using Backstop.Core.Config;

namespace Backstop.Sources.Databases;

/// <summary>The <c>exact_rows</c> key the database kinds share (PostgreSQL, MySQL/MariaDB).</summary>
internal static class RowCounting
{
    /// <summary>
    /// Rows are counted exactly by default, inside the dump's own snapshot. <c>exact_rows: false</c> (very large
    /// databases) records the planner's estimate as <c>rows_estimated</c>, which no expectation ever uses: so
    /// <c>min_rows</c> with it is refused here.
    /// </summary>
    public static bool ExactRows(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var exact = map.BoolOr("exact_rows", true);
        if (!exact && map.Map("expect") is { } expect && expect.Has("min_rows"))
        {
            throw expect.Error("min_rows", "needs exact row counts, and exact_rows is false (rows are then the planner's estimates, recorded as rows_estimated); remove one of them");
        }

        return exact;
    }
}
