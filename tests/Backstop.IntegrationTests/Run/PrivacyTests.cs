using Backstop.IntegrationTests.Support;
using Microsoft.Data.Sqlite;

namespace Backstop.IntegrationTests.Run;

/// <summary>What Backstop writes is its user's alone (umask 077 and explicit modes), but for what is shared on purpose.</summary>
public sealed class PrivacyTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private void Sample()
    {
        Assert.Equal(0, _box.Shell("umask 022 && mkdir -p data/sub && printf a > data/a.txt && printf b > data/sub/b.txt").ExitCode);
        using var c = new SqliteConnection($"Data Source={_box["app.db"]};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'), ('b');";
        cmd.ExecuteNonQuery();
    }

    /// <summary>Every file and folder under a path, with its mode in octal.</summary>
    private static List<(string Path, string Mode)> Modes(string root) =>
        [.. Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Prepend(root)
            .Select(p => (p, Convert.ToString((int)File.GetUnixFileMode(p), 8).PadLeft(4, '0')))];

    [Fact]
    public void After_a_run_a_drill_and_metrics_every_file_is_0600_and_every_folder_0700_but_the_textfile()
    {
        Sample();
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n  - { name: db, kind: sqlite, path: ./app.db }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Run("drill").ExitCode);
        var metrics = _box.Run("metrics", "--textfile", _box["backstop.prom"]);
        Assert.True(metrics.ExitCode == 0, metrics.ToString());
        var written = Modes(_box["state"]).Concat(Modes(_box["backups"])).ToList();
        Assert.Contains(written, w => w.Path.EndsWith("MANIFEST.json", StringComparison.Ordinal));
        Assert.Contains(written, w => w.Path.Contains("/drills/", StringComparison.Ordinal)); // the evidence files
        Assert.All(written, w => Assert.True(Directory.Exists(w.Path) ? w.Mode == "0700" : w.Mode == "0600", $"{w.Path} is {w.Mode}"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            File.GetUnixFileMode(_box["backstop.prom"])); // 0644: node_exporter reads it, and it holds no secret
    }

    [Fact]
    public void Group_shares_the_catalog_and_its_folder_with_a_second_user_and_nothing_else()
    {
        Assert.True(Environment.UserName == "root", "this test changes a file's group, which needs root (CI runs as root)");
        Sample();
        _box.WriteConfig("group: nogroup\n" + Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Run("status").ExitCode);
        var gid = Sandbox.Exec("getent", "group", "nogroup").Stdout.Split(':')[2];
        string Stat(string path) => Sandbox.Exec("stat", "-c", "%a %g", path).Stdout.Trim();
        Assert.Equal($"2770 {gid}", Stat(_box["state"]));
        Assert.Equal($"660 {gid}", Stat(_box["state/catalog.db"]));
        if (File.Exists(_box["state/catalog.db-wal"]))
        {
            Assert.Equal($"660 {gid}", Stat(_box["state/catalog.db-wal"]));
        }

        Assert.Equal("700", Stat(_box["backups"]).Split(' ')[0]); // the backups stay private
        var bad = _box.Run(["config", "check"], null);
        Assert.Equal(0, bad.ExitCode);
        _box.WriteConfig("group: no-such-group-here\n" + Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        var r = _box.Run("config", "check");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("backstop.yaml:1:8", r.All, StringComparison.Ordinal);
        Assert.Contains("no group named 'no-such-group-here'", r.All, StringComparison.Ordinal);
    }
}

/// <summary>A local target's parent that is empty: an unmounted mount point is refused, a freshly mounted empty disk is used.</summary>
public sealed class MountPointTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public void A_freshly_mounted_empty_disk_takes_backups_and_an_empty_folder_that_is_no_mount_point_is_refused()
    {
        Assert.Equal(0, _box.Shell("mkdir -p data empty && printf a > data/a.txt").ExitCode);
        _box.WriteConfig(Yaml.LocalTarget("./empty/backstop") + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        var refused = _box.Run("run");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("is empty and not a mount point", refused.All, StringComparison.Ordinal);

        _box.Tmpfs("disk", "8m"); // an empty file system, mounted: its root is empty and is a mount point
        _box.WriteConfig(Yaml.LocalTarget("./disk/backstop") + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        var r = _box.Run("run");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(Directory.Exists(_box["disk/backstop/files"]));
    }
}

/// <summary>No path is followed where someone else may plant a link: the metrics textfile and the drill evidence.</summary>
public sealed class PlantedLinkTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public void A_link_planted_in_the_textfile_folder_is_never_followed_at_the_temporary_or_the_final_name()
    {
        Assert.Equal(0, _box.Shell("mkdir -p data textfiles && printf a > data/a.txt && chmod 1777 textfiles && printf 'precious' > victim").ExitCode);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);

        // Another user of the shared folder guesses the temporary name of the past (.NAME.PID.tmp) as soon as the
        // process exists, and puts a link at the final name.
        File.CreateSymbolicLink(_box["textfiles/backstop.prom"], _box["victim"]);
        using var metrics = _box.Start("metrics", "--textfile", _box["textfiles/backstop.prom"]);
        File.CreateSymbolicLink(_box[$"textfiles/.backstop.prom.{metrics.Pid}.tmp"], _box["victim"]);
        var r = metrics.Wait(TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("precious", File.ReadAllText(_box["victim"]));
        var written = new FileInfo(_box["textfiles/backstop.prom"]);
        Assert.Null(written.LinkTarget); // the link was replaced by the file, never written through
        Assert.Contains("backstop_source_state", File.ReadAllText(written.FullName), StringComparison.Ordinal);
    }
}

/// <summary>Staging is adopted only when it is a real folder of Backstop's user.</summary>
public sealed class StagingAdoptionTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public void A_staging_path_that_is_a_symlink_is_refused_and_nothing_is_written_through_it()
    {
        Assert.Equal(0, _box.Shell("mkdir -p data elsewhere state && printf a > data/a.txt && ln -s ../elsewhere state/staging").ExitCode);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        var r = _box.Run("run");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("must be a folder of backstop's own, but it is a symlink", r.All, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(_box["elsewhere"]));
    }
}

/// <summary>The files walker against entries swapped while it reads: never followed, never waited on.</summary>
public sealed class SwappedEntryTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>Waits until the process has the file open (its /proc fd links name it), then returns.</summary>
    internal static void WaitUntilOpen(int pid, string path)
    {
        RunningCli.WaitUntil(() =>
        {
            try
            {
                return Directory.GetFiles($"/proc/{pid}/fd").Any(fd => new FileInfo(fd).LinkTarget == path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }, $"backstop to open {path}", TimeSpan.FromSeconds(60));
    }

    [Fact]
    public void A_folder_swapped_for_a_symlink_mid_walk_is_never_followed_and_a_fifo_put_in_a_files_place_never_hangs()
    {
        // data/b/00-big is read first (large); while it is, data/b is moved away and replaced by a symlink to a folder
        // of secrets, and data/c/zz-file by a FIFO. A walker that opens by path would then read the secret through b,
        // and hang on the FIFO.
        Assert.Equal(0, _box.Shell("""
            set -e
            mkdir -p data/b data/c secrets
            head -c 96000000 /dev/urandom > data/b/00-big
            printf 'mine' > data/b/zz-file
            printf 'ordinary' > data/c/zz-file
            printf 'SECRET' > secrets/zz-file
            """).ExitCode);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        using var run = _box.Start("run");
        WaitUntilOpen(run.Pid, _box["data/b/00-big"]);
        Directory.Move(_box["data/b"], _box["data/b-moved"]);
        File.CreateSymbolicLink(_box["data/b"], _box["secrets"]);
        File.Delete(_box["data/c/zz-file"]);
        Assert.Equal(0, Sandbox.Exec("mkfifo", _box["data/c/zz-file"]).ExitCode);
        var r = run.Wait(TimeSpan.FromSeconds(120));
        Assert.True(r.ExitCode is 0 or 3, r.ToString());

        var restore = _box.Run("restore", "--source", "files", "--to", _box["out"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        var restored = Path.Combine(_box["out"], _box["data"].TrimStart('/'));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(restored, "b", "zz-file"))); // the folder that was listed, not the link's
        var fifo = Path.Combine(restored, "c", "zz-file"); // never read: nothing writes to it
        Assert.DoesNotContain("SECRET", string.Concat(Directory.GetFiles(restored, "*", SearchOption.AllDirectories)
            .Where(f => f != fifo && new FileInfo(f).Length < 100).Select(File.ReadAllText)), StringComparison.Ordinal);
        // The FIFO was never waited on (the run ended), and is what comes back: a FIFO, not the file that was there before.
        Assert.Equal("fifo", Sandbox.Exec("stat", "-c", "%F", Path.Combine(restored, "c", "zz-file")).Stdout.Trim());
    }
}

/// <summary>FIFOs and device nodes are kept, as GNU tar keeps them, and come back by Backstop's restore and by stock tar.</summary>
public sealed class SpecialFileTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static string Describe(string path) => Sandbox.Exec("stat", "-c", "%F %a %t:%T", path).Stdout.Trim();

    [Fact]
    public void A_fifo_and_a_device_node_are_backed_up_and_restored_by_backstop_and_by_stock_tar()
    {
        Assert.True(Environment.UserName == "root", "making a device node needs root (CI runs as root)");
        Assert.Equal(0, _box.Shell("mkdir -p data && printf a > data/a.txt && mkfifo -m 0620 data/pipe && mknod -m 0640 data/null-like c 1 3 && mknod -m 0600 data/disk b 7 200").ExitCode);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(3, _box.Snapshots().Single().GetProperty("facts").GetProperty("specials").GetInt64());

        var restore = _box.Run("restore", "--source", "files", "--to", _box["out"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        var restored = Path.Combine(_box["out"], _box["data"].TrimStart('/'));
        foreach (var name in new[] { "pipe", "null-like", "disk" })
        {
            Assert.Equal(Describe(_box[$"data/{name}"]), Describe(Path.Combine(restored, name)));
        }

        // The stock recipe, literally: GNU tar makes the same nodes.
        var explain = _box.Run("restore", "--source", "files", "--explain", "--to", _box["stock"]);
        var script = string.Join("\n", explain.Stdout.Split('\n').Where(l => !l.StartsWith('#')));
        var ran = Sandbox.ExecIn(_box.Root, "bash", "-e", "-c", script);
        Assert.True(ran.ExitCode == 0, ran + "\n" + script);
        foreach (var name in new[] { "pipe", "null-like", "disk" })
        {
            Assert.Equal(Describe(_box[$"data/{name}"]), Describe(Path.Combine(_box["stock"], _box["data"].TrimStart('/'), name)));
        }

        Assert.Equal(0, _box.Run("drill").ExitCode); // the specials are counted back
    }
}
