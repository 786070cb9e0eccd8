using System.Text.Json;
using Backstop.Core.Catalog;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

/// <summary>
/// A real PostgreSQL whose archive_command is <c>backstop wal-push %p</c>, run by PostgreSQL itself as its own OS user
/// while the server writes: every segment shipped, read back and recorded with its LSN range; a target that is down
/// fails its own copy only while min_copies others take it, and holds the server's archiving back (PostgreSQL keeps the
/// segment and retries) when it is needed.
/// </summary>
public sealed class WalArchiveTests : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly PostgresServer _pg = new();

    public void Dispose()
    {
        _pg.Dispose();
        _box.Dispose();
    }

    /// <summary>The sandbox handed to postgres (archive_command runs as it), and the server archiving into it.</summary>
    private void Archiving(string targets, int minCopies)
    {
        _box.WriteConfig($"catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: {{ min_copies: {minCopies}, rpo: 24h }}\ntargets:\n{targets}" +
                         $"sources:\n  - {{ name: pg, kind: postgres, mode: physical, host: 127.0.0.1, port: {_pg.Port}, user: postgres, password: \"env:PG_TEST_PASSWORD\" }}\n");
        Directory.CreateDirectory(_box["state"]);
        Assert.Equal(0, Sandbox.Exec("chown", "-R", "postgres:postgres", _box.Root).ExitCode);
        var dotnet = Sandbox.Exec("sh", "-c", "command -v dotnet").Stdout.Trim();
        var command = $"DOTNET_CLI_HOME={_box.Root} HOME={_box.Root} {dotnet} {Sandbox.BackstopDll} -c {_box["backstop.yaml"]} wal-push %p";
        _pg.Sql("postgres", "ALTER SYSTEM SET archive_mode = on");
        _pg.Sql("postgres", $"ALTER SYSTEM SET archive_command = '{command.Replace("'", "''", StringComparison.Ordinal)}'");
        _pg.Restart();
    }

    private void Write(int segments)
    {
        _pg.Sql("postgres", "CREATE TABLE IF NOT EXISTS ledger (id bigserial PRIMARY KEY, memo text)");
        for (var i = 0; i < segments; i++)
        {
            _pg.Sql("postgres", "INSERT INTO ledger (memo) SELECT md5(g::text) FROM generate_series(1, 20000) g; SELECT pg_switch_wal();");
        }
    }

    private (long Archived, long Failed) Archiver()
    {
        var row = _pg.Scalar("postgres", "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver").Split(' ');
        return (long.Parse(row[0], System.Globalization.CultureInfo.InvariantCulture), long.Parse(row[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void PostgreSQL_archives_every_segment_through_wal_push_and_each_is_recorded_with_its_lsn_range()
    {
        Archiving("  - { name: nas, kind: local, path: ./nas }\n  - { name: usb, kind: local, path: ./usb }\n", minCopies: 2);
        Write(3);
        RunningCli.WaitUntil(() => Archiver().Archived >= 3, "PostgreSQL to archive three segments", TimeSpan.FromSeconds(60));
        Assert.Equal(0, Archiver().Failed);

        using var catalog = CatalogStore.Open(_box["state/catalog.db"]);
        var archive = catalog.Archive("pg");
        Assert.True(archive.Count >= 3);
        Assert.All(archive, a =>
        {
            Assert.Equal("00000001", a.Folder);
            Assert.Equal(16L << 20, a.End - a.Start);
            Assert.Equal(["nas", "usb"], a.Copies.Where(c => c.State == CopyState.Verified).Select(c => c.Target).Order());
            Assert.True(File.Exists(_box[$"nas/pg/wal/00000001/{a.Name}.zst"]));
        });
        // Consecutive segments cover consecutive LSN ranges.
        var ordered = archive.OrderBy(a => a.Start).ToList();
        Assert.All(ordered.Zip(ordered.Skip(1)), p => Assert.Equal(p.First.End, p.Second.Start));

        // The stored segment decompresses to what PostgreSQL wrote (its own tools read it: pg_waldump).
        var first = ordered[0];
        var dump = Sandbox.Exec("sh", "-c", $"zstd -dc '{_box[$"nas/pg/wal/00000001/{first.Name}.zst"]}' > '{_box[first.Name]}' && '{_pg.Bin}/pg_waldump' -n 1 '{_box[first.Name]}'");
        Assert.True(dump.ExitCode == 0, dump.ToString());
    }

    [Fact]
    public void A_target_that_is_down_never_stops_the_archive_while_min_copies_others_take_it_and_holds_it_back_when_needed()
    {
        // usb's marker is missing (its disk is not plugged in): the target refuses every copy.
        Archiving("  - { name: nas, kind: local, path: ./nas }\n  - { name: usb, kind: local, path: ./usb, marker: .backstop-target }\n", minCopies: 1);
        Write(2);
        RunningCli.WaitUntil(() => Archiver().Archived >= 2, "PostgreSQL to archive on the nas alone", TimeSpan.FromSeconds(60));
        using (var catalog = CatalogStore.Open(_box["state/catalog.db"]))
        {
            Assert.All(catalog.Archive("pg"), a =>
            {
                Assert.Equal(CopyState.Verified, a.Copies.Single(c => c.Target == "nas").State);
                Assert.Equal(CopyState.Failed, a.Copies.Single(c => c.Target == "usb").State);
            });
        }

        // Both needed now: PostgreSQL keeps the segment and retries, failing loudly in its log, until the usb is back.
        _box.WriteConfig(File.ReadAllText(_box["backstop.yaml"]).Replace("min_copies: 1", "min_copies: 2", StringComparison.Ordinal));
        Assert.Equal(0, Sandbox.Exec("chown", "postgres:postgres", _box["backstop.yaml"]).ExitCode);
        var archived = Archiver().Archived;
        Write(1);
        RunningCli.WaitUntil(() => Archiver().Failed >= 1, "the archiving to fail while the usb is away", TimeSpan.FromSeconds(60));
        Assert.Equal(archived, Archiver().Archived);
        Assert.Contains("is on 1 of the 2 target(s) min_copies needs", File.ReadAllText(Path.Combine(_pg.Root, "log")), StringComparison.Ordinal);

        Directory.CreateDirectory(_box["usb"]);
        File.WriteAllText(_box["usb/.backstop-target"], "");
        Assert.Equal(0, Sandbox.Exec("chown", "-R", "postgres:postgres", _box["usb"]).ExitCode);
        RunningCli.WaitUntil(() => Archiver().Archived > archived, "the retried segment to be archived once the usb is back", TimeSpan.FromSeconds(90));
    }
}
