using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Microsoft.Data.Sqlite;

namespace Backstop.IntegrationTests.Run;

/// <summary>
/// The audits' failures coming back through defaults (issue 10): an emptied or collapsed source with no expect block,
/// a target that is not mounted, a degraded run that a cron wrapper would have mailed as a success.
/// </summary>
public sealed class EmptiedSourceTests : IDisposable
{
    private readonly Sandbox _box = new();

    public EmptiedSourceTests() => SQLitePCL.Batteries_V2.Init();

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _box.Dispose();
    }

    private void Sql(string sql)
    {
        using var c = new SqliteConnection($"Data Source={_box["app.db"]};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public void An_emptied_folder_with_no_expect_block_fails_and_accept_shrink_takes_it_once()
    {
        _box.Shell("mkdir -p data/sub && for i in 1 2 3 4 5 6; do echo file $i > data/sub/f$i.txt; done");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        var first = _box.Run("run");
        Assert.True(first.ExitCode == 0, first.ToString());

        _box.Shell("rm -rf data/sub"); // what an unmounted disk looks like: the folder is there, empty
        var emptied = _box.Run("run");
        Assert.True(emptied.ExitCode == 1, emptied.ToString());
        Assert.Contains("files fell to 0 from 6", emptied.All, StringComparison.Ordinal);
        Assert.Contains("--source f --accept-shrink", emptied.All, StringComparison.Ordinal);
        var status = _box.Json("status").GetProperty("sources")[0];
        Assert.Equal("failing", status.GetProperty("state").GetString());
        Assert.Contains("files fell to 0", status.GetProperty("last_run").GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Single(Directory.GetDirectories(_box["backups/f"])); // nothing of the empty one is kept

        var everything = _box.Run("run", "--accept-shrink");
        Assert.Equal(2, everything.ExitCode);
        Assert.Contains("--accept-shrink: name the source", everything.Stderr, StringComparison.Ordinal);

        var accepted = _box.Run("run", "--source", "f", "--accept-shrink");
        Assert.True(accepted.ExitCode == 0, accepted.ToString());
        var shown = _box.Run("show", _box.Snapshots().Last().GetProperty("snapshot").GetString()!);
        Assert.Contains("accepted: files fell to 0 from 6", shown.Stdout, StringComparison.Ordinal);
        Assert.Equal("ok", _box.Json("status").GetProperty("sources")[0].GetProperty("state").GetString());
        var next = _box.Run("run");
        Assert.True(next.ExitCode == 0, next.ToString());
    }

    [Fact]
    public void A_sqlite_database_that_went_from_30_tables_to_1_fails_by_default()
    {
        for (var i = 0; i < 30; i++)
        {
            Sql($"CREATE TABLE t{i}(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t{i}(v) VALUES ('a'), ('b');");
        }

        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: sqlite, path: ./app.db }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        for (var i = 1; i < 30; i++)
        {
            Sql($"DROP TABLE t{i}");
        }

        var collapsed = _box.Run("run");
        Assert.True(collapsed.ExitCode == 1, collapsed.ToString());
        Assert.Contains("tables shrank by 96% (1 against a median of 30", collapsed.All, StringComparison.Ordinal);

        // The opt-out is explicit, per rule.
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: sqlite, path: ./app.db, expect: { max_shrink: none } }\n");
        var check = _box.Run("config", "check");
        Assert.Contains("max_shrink: none (no shrink check)", check.Stdout, StringComparison.Ordinal);
        Assert.Contains("a count (tables, rows) that falls to 0 from the last valid snapshot fails, in total and per artifact (default)", check.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, _box.Run("run").ExitCode);
    }

    [Fact]
    public void A_first_snapshot_of_an_empty_folder_is_degraded_and_run_exits_3()
    {
        Directory.CreateDirectory(_box["data"]);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.Contains("the first snapshot holds nothing (files 0)", run.Stderr, StringComparison.Ordinal);
        var status = _box.Run("status", "--json");
        Assert.Equal(1, status.ExitCode);
        Assert.Equal("degraded", JsonDocument.Parse(status.Stdout).RootElement.GetProperty("sources")[0].GetProperty("state").GetString());

        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data], expect: { allow_empty: true } }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
    }

    [Fact]
    public void Expect_mount_refuses_a_path_that_is_not_a_mount_point()
    {
        Directory.CreateDirectory(_box["disk"]);
        _box.Write("disk/a.txt", "on the root file system, not the disk");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./disk], expect: { mount: true } }\n");
        var refused = _box.Run("run");
        Assert.True(refused.ExitCode == 1, refused.ToString());
        Assert.Contains("is not a mount point (expect.mount is true)", refused.All, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["backups/f"]) && Directory.GetDirectories(_box["backups/f"]).Length > 0);

        File.Delete(_box["disk/a.txt"]);
        _box.Tmpfs("disk", "4m");
        _box.Write("disk/a.txt", "on the disk");
        var mounted = _box.Run("run");
        Assert.True(mounted.ExitCode == 0, mounted.ToString());

        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: sqlite, path: ./app.db, expect: { mount: true } }\n");
        var wrong = _box.Run("config", "check");
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("mount applies to files sources", wrong.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_target_on_an_unmounted_share_is_never_created_and_a_failed_copy_exits_3_with_its_reason()
    {
        _box.Write("data/a.txt", "hello");
        var yaml = "catalog: ./state/catalog.db\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n" +
                   "  - { name: local, kind: local, path: ./backups }\n" +
                   "  - { name: nas, kind: local, path: ./mnt/nas/backstop }\n" +
                   "sources:\n  - { name: f, kind: files, paths: [./data] }\n";
        _box.WriteConfig(yaml);
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.False(Directory.Exists(_box["mnt"]));
        Assert.Contains("nor does its parent", run.Stderr, StringComparison.Ordinal);

        var nas = _box.Json("status").GetProperty("sources")[0].GetProperty("last_valid").GetProperty("copies").GetProperty("nas");
        Assert.Equal("failed", nas.GetProperty("state").GetString());
        Assert.Contains("is the disk or share mounted?", nas.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, _box.Json("status").GetProperty("sources")[0].GetProperty("last_valid").GetProperty("copies")
            .GetProperty("local").GetProperty("error").ValueKind);

        var verify = _box.Run("verify");
        Assert.True(verify.ExitCode == 1, verify.ToString());
        Assert.Contains("no verified copy on target 'nas'", verify.All, StringComparison.Ordinal);

        // A marker guards a share whose mount point exists.
        Directory.CreateDirectory(_box["mnt/nas/backstop"]);
        _box.WriteConfig(yaml.Replace("path: ./mnt/nas/backstop }", "path: ./mnt/nas/backstop, marker: .backstop-target }", StringComparison.Ordinal));
        var unmarked = _box.Run("run");
        Assert.True(unmarked.ExitCode == 3, unmarked.ToString());
        Assert.Contains("the marker file .backstop-target is not in", unmarked.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(_box["mnt/nas/backstop"]));
        _box.Write("mnt/nas/backstop/.backstop-target", "");
        var marked = _box.Run("run");
        Assert.True(marked.ExitCode == 0, marked.ToString());
    }
}
