#:property PublishAot=false
#:project ../src/Backstop.Core/Backstop.Core.csproj
// Builds a catalog for the serve benchmark: N command sources × M snapshots each (hourly, newest ending now), each
// with two artifacts copied to two targets, through the catalog's own schema (CatalogStore.Open runs the
// migrations), then the rows in one transaction. Every 50th snapshot failed; the newest of every 20th source too.
// Usage: dotnet run gen-catalog.cs -- CATALOG [sources] [snapshots-per-source]
using System.Globalization;
using Backstop.Core.Catalog;
using Microsoft.Data.Sqlite;

var path = args[0];
var sources = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200;
var perSource = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1000;
CatalogStore.Open(path).Dispose();
using var db = new SqliteConnection($"Data Source={path}");
db.Open();
using var tx = db.BeginTransaction();
SqliteCommand Prepare(string sql, params string[] names)
{
    var c = db.CreateCommand();
    c.Transaction = tx;
    c.CommandText = sql;
    foreach (var n in names)
    {
        c.Parameters.Add(new SqliteParameter(n, null));
    }

    return c;
}

var src = Prepare("INSERT INTO sources(name, kind) VALUES ($n, 'command')", "$n");
var snap = Prepare("INSERT INTO snapshots(id, source, state, started_at, finished_at, host, pid, raw_bytes, stored_bytes, facts, warnings, error) " +
                   "VALUES ($id, $s, $st, $a, $f, 'bench', 1, $r, $sb, $facts, '[]', $e)", "$id", "$s", "$st", "$a", "$f", "$r", "$sb", "$facts", "$e");
var art = Prepare("INSERT INTO artifacts(snapshot_id, name, file_name, raw_bytes, stored_bytes, sha256, compression, facts, reported) " +
                  "VALUES ($id, $n, $fn, $r, $sb, $h, 'zstd', $facts, '[]')", "$id", "$n", "$fn", "$r", "$sb", "$h", "$facts");
var copy = Prepare("INSERT INTO copies(snapshot_id, artifact, target, state, checked_at, error) VALUES ($id, $a, $t, $st, $c, $e)", "$id", "$a", "$t", "$st", "$c", "$e");
string T(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
void Run(SqliteCommand c, params object?[] values)
{
    for (var i = 0; i < values.Length; i++)
    {
        c.Parameters[i].Value = values[i] ?? DBNull.Value;
    }

    c.ExecuteNonQuery();
}

var now = DateTimeOffset.UtcNow;
var rng = new Random(20261129);
for (var s = 0; s < sources; s++)
{
    var name = $"src-{s:D3}";
    Run(src, name);
    for (var i = 0; i < perSource; i++)
    {
        var started = now.AddHours(-(perSource - i)).AddMinutes(5);
        var failed = i % 50 == 17 || (i == perSource - 1 && s % 20 == 19);
        var id = $"{started.UtcDateTime:yyyyMMdd'T'HHmmss'Z'}-{s:D4}";
        var raw = 1_000_000L + rng.Next(100_000);
        Run(snap, id, name, failed ? "failed" : "committed", T(started), T(started.AddSeconds(42)), raw * 2, raw, "{\"files\":120,\"bytes\":" + raw + "}",
            failed ? "the command exited with 1" : null);
        foreach (var a in new[] { "dump.out", "extra.out" })
        {
            Run(art, id, a, a + ".zst", raw, raw / 2, Convert.ToHexStringLower(BitConverter.GetBytes(rng.NextInt64())).PadRight(64, '0'), "{\"bytes\":" + raw + "}");
            foreach (var t in new[] { "local", "nas" })
            {
                Run(copy, id, a, t, failed ? "failed" : "verified", T(started.AddSeconds(42)), failed ? "the snapshot failed" : null);
            }
        }
    }
}

tx.Commit();
Console.WriteLine($"{path}: {sources} sources × {perSource} snapshots");
