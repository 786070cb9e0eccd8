using System.Data.Common;
using System.Globalization;

namespace Backstop.Core.Catalog;

/// <summary>
/// A whole catalog copied into another engine's empty one (<c>backstop catalog migrate --to</c>): every table in the
/// order its references need, ids kept, in one transaction on the destination, then each table's rows counted on both
/// sides. Nothing is written to the source.
/// </summary>
public static class CatalogCopy
{
    /// <summary>Every table, parents before the tables that reference them.</summary>
    internal static readonly IReadOnlyList<string> Tables =
    [
        "sources", "snapshots", "artifacts", "copies", "snapshot_blobs", "blob_copies", "run_counts", "events", "drills", "notify_state",
        "notifications", "rehearsals", "archive", "archive_copies", "markers", "machines",
    ];

    /// <summary>Copies <paramref name="from"/> into <paramref name="to"/>, which must hold no snapshot; returns the rows per table.</summary>
    public static IReadOnlyList<(string Table, long Rows)> Copy(CatalogStore from, CatalogStore to, Action<string, long>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        var occupied = Tables.Where(t => to.Count(t) > 0).ToList();
        if (occupied.Count > 0)
        {
            throw new Plugins.BackupException(
                $"{to.Describe} is not empty ({string.Join(", ", occupied.Select(t => $"{to.Count(t).ToString(CultureInfo.InvariantCulture)} row(s) in {t}"))}): migrate into a new, empty database");
        }

        var counts = new List<(string, long)>();
        using (var tx = to.Connection.BeginTransaction())
        {
            foreach (var table in Tables)
            {
                var rows = CopyTable(from.Connection, to.Connection, tx, table);
                counts.Add((table, rows));
                progress?.Invoke(table, rows);
            }

            to.Engine.AfterCopy(to.Connection, tx, Tables);
            tx.Commit();
        }

        foreach (var (table, rows) in counts)
        {
            if (to.Count(table) is var there && there != rows || from.Count(table) is var here && here != rows)
            {
                throw new Plugins.BackupException($"the copy of table {table} does not match: {rows} row(s) copied, {from.Count(table)} in the source, {to.Count(table)} in {to.Describe}");
            }
        }

        return counts;
    }

    private static long CopyTable(DbConnection from, DbConnection to, DbTransaction tx, string table)
    {
        using var read = from.CreateCommand();
        read.CommandText = $"SELECT * FROM {table}";
        using var reader = read.ExecuteReader();
        var columns = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToList();
        using var write = to.CreateCommand();
        write.Transaction = tx;
        write.CommandText = $"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES ({string.Join(", ", columns.Select((_, i) => "@c" + i.ToString(CultureInfo.InvariantCulture)))})";
        var parameters = columns.Select((_, i) =>
        {
            var p = write.CreateParameter();
            p.ParameterName = "@c" + i.ToString(CultureInfo.InvariantCulture);
            write.Parameters.Add(p);
            return p;
        }).ToList();
        long rows = 0;
        while (reader.Read())
        {
            for (var i = 0; i < columns.Count; i++)
            {
                parameters[i].Value = reader.IsDBNull(i) ? DBNull.Value : reader.GetValue(i);
            }

            write.ExecuteNonQuery();
            rows++;
        }

        return rows;
    }
}
