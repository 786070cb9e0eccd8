using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>The files source against GNU tar: what it stores, tar restores as it was.</summary>
public sealed class FilesSourceTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private string Stored(string source) => Directory.GetFiles(_box[$"backups/{source}"], "files.tar.zst", SearchOption.AllDirectories).Single();

    [Fact]
    public void Hard_links_symlinks_modes_owners_and_times_survive_a_stock_restore()
    {
        var r = _box.Shell("""
            set -e
            mkdir -p data/sub data/empty data/cache
            printf 'hello' > data/a.txt
            ln data/a.txt data/sub/hard.txt
            ln -s ../a.txt data/sub/link.txt
            printf 'secret' > data/private.key && chmod 600 data/private.key
            printf 'x' > data/run.sh && chmod 755 data/run.sh
            chown 1234:2345 data/run.sh
            touch -d '2020-02-03 04:05:06' data/a.txt
            printf 'junk' > data/debug.log
            printf 'junk' > data/cache/c.bin
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data], exclude: ['*.log', 'cache'] }\n");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());

        var list = _box.Shell($"zstd -dc '{Stored("f")}' | tar -tvf -");
        Assert.Equal(0, list.ExitCode);
        Assert.DoesNotContain("debug.log", list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("cache", list.Stdout, StringComparison.Ordinal);

        var restore = _box.Shell($"mkdir -p out && zstd -dc '{Stored("f")}' | tar -xpf - -C out --numeric-owner && " +
                                 $"cd 'out{_box["data"]}' && stat -c '%n %a %u:%g %h %Y' a.txt sub/hard.txt private.key run.sh && readlink sub/link.txt && test -d empty");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        var lines = restore.Stdout.Split('\n');
        var aTime = new DateTimeOffset(2020, 2, 3, 4, 5, 6, TimeZoneInfo.Local.GetUtcOffset(new DateTime(2020, 2, 3))).ToUnixTimeSeconds();
        Assert.Equal($"a.txt 644 0:0 2 {aTime}", lines[0]);
        Assert.StartsWith("sub/hard.txt 644 0:0 2", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("private.key 600", lines[2], StringComparison.Ordinal);
        Assert.StartsWith("run.sh 755 1234:2345", lines[3], StringComparison.Ordinal);
        Assert.Equal("../a.txt", lines[4]);
    }

    [Fact]
    public void Facts_count_files_and_bytes_and_the_stored_tar_is_checked_against_them()
    {
        _box.Write("data/one.txt", "12345");
        _box.Write("data/two/two.txt", "1234567890");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data], expect: { min_files: 2 } }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var facts = _box.Snapshots()[0].GetProperty("facts");
        Assert.Equal(2, facts.GetProperty("files").GetInt64());
        Assert.Equal(15, facts.GetProperty("bytes").GetInt64());
        Assert.Equal(2, facts.GetProperty("directories").GetInt64());
    }

    [Fact]
    public void A_path_that_does_not_exist_fails_preflight()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./nope] }\n");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"path {_box["nope"]} cannot be read", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unreadable_file_fails_the_artifact_unless_excluded()
    {
        // Root reads everything, so run backstop as nobody over a tree nobody can mostly read.
        var r = _box.Shell("""
            set -e
            mkdir -p data state backups
            printf 'ok' > data/readable.txt
            printf 'no' > data/locked.txt && chmod 000 data/locked.txt
            chmod 777 state backups . && chmod 755 data
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n  - { name: g, kind: files, paths: [./data], exclude: [locked.txt] }\n");
        Sandbox.Exec("chmod", "o+rx", Path.GetDirectoryName(_box.Root)!);
        var run = Sandbox.ExecIn(_box.Root, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
            "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp", "dotnet", Sandbox.BackstopDll, "--config", _box.Config, "run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"source 'f': cannot read {_box["data/locked.txt"]}", run.All, StringComparison.Ordinal);
        Assert.Contains("fix its permissions or add it to 'exclude'", run.All, StringComparison.Ordinal);
        Assert.Contains("g: snapshot", run.All, StringComparison.Ordinal);
        Assert.Single(Directory.GetDirectories(_box["backups"]));
    }

    [Fact]
    public void A_name_that_is_not_utf8_an_xattr_a_capability_and_acls_come_back_both_ways()
    {
        // Latin-1 'é' (0xE9) from an old share: it used to fail the snapshot. A binary security.capability (cap_net_bind_service),
        // a user xattr whose value is not text, an access ACL naming uid 4242 and a folder's default ACL: every one used to be lost.
        var r = _box.Shell("""
            set -e
            mkdir -p data/shared
            printf 'x' > "data/caf$(printf '\351').txt"
            printf 'y' > data/good.txt
            printf 'bin' > data/ping && chmod 755 data/ping
            setfattr -n user.origin -v 0x00ff62696e617279 data/good.txt
            setfattr -n security.capability -v 0x0100000200040000000000000000000000000000 data/ping
            setfacl -m u:4242:r data/good.txt
            setfacl -d -m g:4343:rwx data/shared
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.DoesNotContain("vanished", run.All, StringComparison.Ordinal);

        // Backstop's own restore, then the recipe with stock GNU tar: the same bytes, attributes and ACLs in both.
        var restore = _box.Run("restore", "--source", "f", "--to", _box["mine"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        var stock = _box.Shell($"mkdir -p stock && zstd -dc '{Stored("f")}' | tar -x --incremental --xattrs --xattrs-include='*' --acls -pf - -C stock");
        Assert.True(stock.ExitCode == 0, stock.ToString());
        foreach (var dest in new[] { "mine", "stock" })
        {
            var check = _box.Shell($$"""
                set -e
                cd '{{dest}}{{_box["data"]}}'
                test "$(cat "caf$(printf '\351').txt")" = x
                getfattr --absolute-names --only-values -e hex -n user.origin good.txt | od -An -c | tr -d ' \n'; echo
                getfattr --absolute-names -e hex -n security.capability ping | grep =
                getfacl -n -c good.txt | tr '\n' ' '; echo
                getfacl -n -c -d shared | tr '\n' ' '; echo
                """);
            Assert.True(check.ExitCode == 0, dest + ": " + check);
            var lines = check.Stdout.Split('\n');
            Assert.Equal("\\0377binary", lines[0]);
            Assert.Equal("security.capability=0x0100000200040000000000000000000000000000", lines[1]);
            Assert.Equal("user::rw- user:4242:r-- group::r-- mask::r-- other::r--", lines[2].Trim());
            Assert.Equal("user::rwx group::r-x group:4343:rwx mask::rwx other::r-x", lines[3].Trim());
        }

        var ls = _box.Run("ls", "latest");
        Assert.True(ls.ExitCode == 0, ls.ToString());
        Assert.Contains("/caf\uFFFD.txt", ls.Stdout, StringComparison.Ordinal); // shown as UTF-8 reads it, stored as its bytes
    }

    [Fact]
    public void A_1_gib_sparse_file_is_stored_as_its_data_and_comes_back_sparse_and_identical_both_ways()
    {
        var r = _box.Shell("""
            set -e
            mkdir -p data
            truncate -s 1G data/disk.img
            printf 'boot' | dd of=data/disk.img conv=notrunc 2>/dev/null
            head -c 100000 /dev/urandom | dd of=data/disk.img bs=1 seek=500000000 conv=notrunc 2>/dev/null
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(new FileInfo(Stored("f")).Length < 1 << 20, $"{new FileInfo(Stored("f")).Length} bytes stored for 100 KB of data");
        var facts = _box.Snapshots()[0].GetProperty("facts");
        Assert.Equal(1L << 30, facts.GetProperty("bytes").GetInt64()); // the file's size, holes included

        var restore = _box.Run("restore", "--source", "f", "--to", _box["mine"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        var stock = _box.Shell($"mkdir -p stock && zstd -dc '{Stored("f")}' | tar -x --incremental --xattrs --xattrs-include='*' --acls -pf - -C stock");
        Assert.True(stock.ExitCode == 0, stock.ToString());
        foreach (var dest in new[] { "mine", "stock" })
        {
            var check = _box.Shell($"cmp data/disk.img '{dest}{_box["data"]}/disk.img' && stat -c '%s %b' '{dest}{_box["data"]}/disk.img'");
            Assert.True(check.ExitCode == 0, dest + ": " + check);
            var sizeAndBlocks = check.Stdout.Trim().Split(' ');
            Assert.Equal("1073741824", sizeAndBlocks[0]);
            Assert.True(long.Parse(sizeAndBlocks[1], System.Globalization.CultureInfo.InvariantCulture) * 512 < 4 << 20, $"{dest}: {sizeAndBlocks[1]} blocks allocated");
        }
    }

    [Fact]
    public void A_file_that_grows_while_read_is_a_warning_and_the_tar_stays_valid()
    {
        var r = _box.Shell("mkdir -p data && head -c 150000000 /dev/zero > data/growing.log && printf 'x' > data/other.txt");
        Assert.True(r.ExitCode == 0, r.ToString());
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        using var writer = System.Diagnostics.Process.Start("/bin/sh", ["-c", $"while :; do printf 'appended line\\n' >> '{_box["data/growing.log"]}'; done"]);
        try
        {
            var run = _box.Run("run");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Contains("growing.log grew while it was read; the copy holds its first", run.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            writer.Kill();
        }

        var warnings = _box.Snapshots()[0].GetProperty("warnings");
        Assert.Contains("grew while it was read", warnings[0].GetString(), StringComparison.Ordinal);
        var list = _box.Shell($"zstd -dc '{Stored("f")}' | tar -tf -");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Equal(3, list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // data/, growing.log, other.txt
        Assert.Contains("data/other.txt", list.Stdout, StringComparison.Ordinal);
    }
}
