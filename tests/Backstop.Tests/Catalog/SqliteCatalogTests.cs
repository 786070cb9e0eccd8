using Backstop.Core.Catalog;
using Backstop.Tests.Support;
using Microsoft.Data.Sqlite;

namespace Backstop.Tests.Catalog;

/// <summary>The catalog conformance suite on the embedded engine, and what only a file has: its migrations from every old version.</summary>
public sealed class SqliteCatalogTests : CatalogConformance, IDisposable
{
    private readonly TempDir _dir = new();

    private string Path => _dir["state/catalog.db"];

    protected override CatalogStore Open() => CatalogStore.Open(Path);

    protected override void SetSchemaVersion(int version) => Exec($"PRAGMA user_version = {version}");

    public void Dispose() => _dir.Dispose();

    private void Exec(string sql)
    {
        using var raw = new SqliteConnection($"Data Source={Path};Pooling=False");
        raw.Open();
        using var cmd = raw.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public void A_catalog_of_schema_12_keeps_its_artifacts_order_when_migrated()
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        foreach (var (version, sql) in new SqliteCatalog(Path).Steps.Where(s => s.Version <= 12))
        {
            Exec(sql + $"\nPRAGMA user_version = {version};");
        }

        Exec("""
             INSERT INTO sources(name, kind) VALUES ('s', 'files');
             INSERT INTO snapshots(id, source, state, started_at, finished_at, host, pid) VALUES ('20260301T020000Z-0001', 's', 'committed', '2026-03-01T02:00:00.000Z', '2026-03-01T02:00:01.000Z', 'h', 1);
             INSERT INTO artifacts(snapshot_id, name, file_name, raw_bytes, stored_bytes, sha256, compression, facts) VALUES ('20260301T020000Z-0001', 'z', 'z.zst', 1, 1, 'a', 'zstd', '{}');
             INSERT INTO artifacts(snapshot_id, name, file_name, raw_bytes, stored_bytes, sha256, compression, facts) VALUES ('20260301T020000Z-0001', 'a', 'a.zst', 1, 1, 'a', 'zstd', '{}');
             """);
        using var c = Open();
        Assert.Equal(["z", "a"], c.Snapshots().Single().Artifacts.Select(a => a.Name));
    }
}
