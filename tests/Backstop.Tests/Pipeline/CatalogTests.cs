using Backstop.Core.Catalog;
using Backstop.Tests.Support;

namespace Backstop.Tests.Pipeline;

public class CatalogTests
{
    [Fact]
    public void Opening_twice_migrates_once_and_keeps_data()
    {
        using var dir = new TempDir();
        var path = dir["c/catalog.db"];
        using (var c = CatalogStore.Open(path))
        {
            c.BeginSnapshot("20250101T000000Z-0001", "s", "files", DateTimeOffset.UtcNow, "h");
        }

        using (var c = CatalogStore.Open(path))
        {
            Assert.Single(c.Snapshots());
            Assert.Equal([("s", "files")], c.Sources());
        }
    }

    [Fact]
    public void A_snapshot_is_recorded_with_its_artifacts_and_copies_in_one_go()
    {
        using var dir = new TempDir();
        using var c = CatalogStore.Open(dir["catalog.db"]);
        var now = DateTimeOffset.UtcNow;
        c.BeginSnapshot("20250101T000000Z-0001", "s", "files", now, "h");
        var facts = new Dictionary<string, long> { ["files"] = 3 };
        c.FinishSnapshot(new SnapshotInfo("20250101T000000Z-0001", "s", "files", SnapshotState.Committed, now, now, "h", 100, 50, facts, ["w"], null,
            [new ArtifactInfo("files.tar", "files.tar.zst", 100, 50, "ab", "zstd", facts, [new CopyInfo("local", CopyState.Verified, now, null)])]));
        var s = Assert.Single(c.Snapshots("s"));
        Assert.Equal(SnapshotState.Committed, s.State);
        Assert.Equal(3, s.Facts["files"]);
        Assert.Equal(["w"], s.Warnings);
        Assert.Equal(["local"], s.VerifiedTargets);
        c.SetCopy(s.Id, "files.tar", new CopyInfo("local", CopyState.Missing, now, "gone"));
        Assert.Empty(c.Snapshot(s.Id)!.VerifiedTargets);
    }

    [Fact]
    public void A_catalog_from_a_newer_backstop_is_refused()
    {
        using var dir = new TempDir();
        var path = dir["catalog.db"];
        CatalogStore.Open(path).Dispose();
        using (var raw = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            raw.Open();
            using var cmd = raw.CreateCommand();
            cmd.CommandText = "PRAGMA user_version = 99";
            cmd.ExecuteNonQuery();
        }

        var e = Assert.Throws<Backstop.Core.Plugins.BackupException>(() => CatalogStore.Open(path));
        Assert.Contains("newer than this backstop knows", e.Message, StringComparison.Ordinal);
    }
}
