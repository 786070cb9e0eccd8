using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.IntegrationTests.Support;
using Backstop.Tests.Catalog;

namespace Backstop.IntegrationTests.Catalog;

/// <summary>The catalog conformance suite on a real PostgreSQL server, a new database for each test.</summary>
public sealed class PostgresCatalogTests : CatalogConformance, IClassFixture<PostgresServer>
{
    private readonly PostgresServer _pg;
    private readonly string _database = "catalog_" + Guid.NewGuid().ToString("N")[..10];

    public PostgresCatalogTests(PostgresServer pg)
    {
        _pg = pg;
        _pg.Sql("postgres", $"CREATE DATABASE {_database}");
    }

    internal static PostgresCatalog Engine(PostgresServer pg, string database, string machine = "test") =>
        new(new CatalogServer(ServerDestination.Parse($"postgresql://postgres@127.0.0.1:{pg.Port}/{database}", CatalogServer.Schemes, CatalogServer.Example, null),
            new SecretRef(PostgresServer.Password, default)), machine);

    protected override CatalogStore Open() => CatalogStore.Open(Engine(_pg, _database));

    protected override void SetSchemaVersion(int version) => _pg.Sql(_database, $"UPDATE backstop_schema SET version = {version}");

    [Fact]
    public void A_new_database_gets_the_whole_schema_once_when_agents_start_together()
    {
        var stores = Enumerable.Range(0, 6).AsParallel().WithDegreeOfParallelism(6).Select(_ => Open()).ToList();
        try
        {
            Assert.Equal(CatalogStore.SchemaVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), _pg.Scalar(_database, "SELECT string_agg(version::text, ',') FROM backstop_schema"));
            Assert.Equal("17", _pg.Scalar(_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));
        }
        finally
        {
            stores.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public void A_commit_needs_its_source_lock_still_held_by_this_session_even_after_the_session_was_let_go()
    {
        using var mine = Open();
        using var theirs = Open();
        var locks = Backstop.Core.Locking.FleetLocks.Open(mine)!;
        using var other = Backstop.Core.Locking.FleetLocks.Open(theirs)!;
        Assert.True(locks.TryTake(Backstop.Core.Locking.FleetLocks.SourceKey("s")));
        Assert.False(other.TryTake(Backstop.Core.Locking.FleetLocks.SourceKey("s")));
        Assert.True(other.HeldElsewhere(Backstop.Core.Locking.FleetLocks.SourceKey("s")));
        Assert.StartsWith("machine 'test', pid ", other.Holder(Backstop.Core.Locking.FleetLocks.SourceKey("s")), StringComparison.Ordinal);
        mine.Locks = locks;
        mine.BeginSnapshot("20260301T020000Z-0001", "s", "files", DateTimeOffset.UtcNow, "h");
        mine.Fence("s", "a step"); // held: passes

        locks.Dispose(); // the session is gone (a partition, a restarted server): the server lets the lock go
        Assert.Throws<Backstop.Core.Locking.LockLostException>(() => mine.Fence("s", "a step"));
        var now = DateTimeOffset.UtcNow;
        var e = Assert.Throws<Backstop.Core.Locking.LockLostException>(() => mine.FinishSnapshot(new Core.Catalog.SnapshotInfo("20260301T020000Z-0001", "s", "files",
            Core.Catalog.SnapshotState.Committed, now, now, "h", 1, 1, new Dictionary<string, long>(), [], null, []), "valid"));
        Assert.Contains("not committed", e.Message, StringComparison.Ordinal);
        Assert.Equal(Core.Catalog.SnapshotState.Running, mine.Snapshot("20260301T020000Z-0001")!.State);
        // Free for another agent once the server has ended the session (at once after a close, but not synchronously).
        RunningCli.WaitUntil(() => other.TryTake(Backstop.Core.Locking.FleetLocks.SourceKey("s")), "the lock let go by the server", TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void A_wrong_password_a_missing_database_and_a_stopped_server_are_said_with_the_fix()
    {
        var wrong = new PostgresCatalog(new CatalogServer(ServerDestination.Parse($"postgresql://postgres@127.0.0.1:{_pg.Port}/{_database}", CatalogServer.Schemes, CatalogServer.Example, null),
            new SecretRef("not-the-password", default)), "test");
        var e = Assert.Throws<Backstop.Core.Plugins.BackupException>(() => CatalogStore.Open(wrong));
        Assert.Contains("check catalog.password for user postgres", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("not-the-password", e.ToString(), StringComparison.Ordinal);

        e = Assert.Throws<Backstop.Core.Plugins.BackupException>(() => CatalogStore.Open(Engine(_pg, "nope")));
        Assert.Contains($"createdb -h 127.0.0.1 -p {_pg.Port} -U postgres nope", e.Message, StringComparison.Ordinal);

        var closed = PostgresServer.FreePort();
        var down = new PostgresCatalog(new CatalogServer(ServerDestination.Parse($"postgresql://postgres@127.0.0.1:{closed}/x", CatalogServer.Schemes, CatalogServer.Example, null), null), "test");
        e = Assert.Throws<Backstop.Core.Plugins.BackupException>(() => CatalogStore.Open(down));
        Assert.Contains($"check that PostgreSQL runs at 127.0.0.1:{closed}", e.Message, StringComparison.Ordinal);
    }
}
