using Backstop.IntegrationTests.Support;
using Microsoft.Data.Sqlite;

namespace Backstop.IntegrationTests.Sources;

public sealed class SqliteSourceTests : IDisposable
{
    private readonly Sandbox _box = new();

    public SqliteSourceTests() => SQLitePCL.Batteries_V2.Init();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _box.Dispose();
    }

    private void Exec(string sql)
    {
        using var c = new SqliteConnection($"Data Source={_box["app.db"]};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private void CreateTables(int count)
    {
        for (var i = 0; i < count; i++)
        {
            Exec($"CREATE TABLE t{i}(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t{i}(v) VALUES ('a'), ('b'), ('c');");
        }
    }

    [Fact]
    public void A_database_that_lost_most_of_its_tables_fails_under_max_shrink()
    {
        CreateTables(38);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: sqlite, path: ./app.db, expect: { max_shrink: 50% } }\n");
        var first = _box.Run("run");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("tables=38", _box.Run("show", _box.Snapshots().Single().GetProperty("snapshot").GetString()!).Stdout, StringComparison.Ordinal);
        // The format check opened the stored bytes and counted both: neither is the source's word alone.
        Assert.Empty(_box.Snapshots().Single().GetProperty("artifacts")[0].GetProperty("reported").EnumerateArray());
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
        Assert.False(Directory.Exists(_box["state/private"]) && Directory.GetFiles(_box["state/private"], "*.db", SearchOption.AllDirectories).Length > 0);

        for (var i = 3; i < 38; i++)
        {
            Exec($"DROP TABLE t{i}");
        }

        Exec("VACUUM");
        var second = _box.Run("run");
        Assert.Equal(1, second.ExitCode);
        Assert.Contains("tables shrank by 92% (3 against a median of 38", second.All, StringComparison.Ordinal);
        Assert.Single(Directory.GetDirectories(_box["backups/db"]));
        Assert.Equal(1, _box.Run("status").ExitCode);
    }

    [Fact]
    public void Min_tables_refuses_an_empty_database()
    {
        Exec("CREATE TABLE IF NOT EXISTS x(a); DROP TABLE x;");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: sqlite, path: ./app.db, expect: { min_tables: 30 } }\n");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("the source reported 0 tables, fewer than expect.min_tables 30", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_a_database_fails_preflight()
    {
        _box.Write("app.db", "this is not sqlite");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: sqlite, path: ./app.db }\n");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("is not a SQLite 3 database", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void Staging_too_small_for_the_database_fails_before_capture_and_leaves_nothing()
    {
        CreateTables(5);
        Exec("CREATE TABLE big(b BLOB); INSERT INTO big SELECT randomblob(1000000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 4) SELECT x FROM c);");
        var staging = _box.Tmpfs("tiny-staging", "1m");
        _box.WriteConfig(Yaml.LocalTarget().Replace("staging: ./state/staging", $"staging: {staging}", StringComparison.Ordinal) +
                         "sources:\n  - { name: db, kind: sqlite, path: ./app.db }\n");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"staging {staging} has", run.All, StringComparison.Ordinal);
        Assert.Contains("free space or set 'staging' to a larger file system", run.All, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(staging));
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

}
