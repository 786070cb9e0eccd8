using System.Security.Cryptography;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Restore;

/// <summary>A backup is worth what its restore is worth: backstop's restore, and the stock recipe it explains.</summary>
public sealed class RestoreTests : IDisposable
{
    private readonly Sandbox _box = new();

    public RestoreTests()
    {
        var r = _box.Shell("""
            set -e
            mkdir -p data/sub && printf 'alpha' > data/a.txt && printf 'beta' > data/sub/b.txt && chmod 640 data/sub/b.txt
            ln -s ../a.txt data/sub/link && head -c 300000 /dev/urandom > data/blob.bin
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        _box.WriteConfig("catalog: ./state/catalog.db\ntargets:\n  - { name: first, kind: local, path: ./first }\n  - { name: second, kind: local, path: ./second }\n" +
                         "sources:\n  - { name: f, kind: files, paths: [./data] }\n" + Yaml.Command("cmd", "printf command-output"));
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
    }

    public void Dispose() => _box.Dispose();

    private static Dictionary<string, string> Hashes(string root) =>
        Directory.GetFiles(root, "*", SearchOption.AllDirectories).Where(f => new FileInfo(f).LinkTarget is null)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    private string Restored(string dest) => Path.Combine(dest, _box["data"].TrimStart('/'));

    [Fact]
    public void Files_restore_with_the_same_content_modes_and_links_and_say_so()
    {
        var r = _box.Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("files=3, bytes=300009, directories=", r.Stdout, StringComparison.Ordinal); // folders and symlinks are counted and compared too
        Assert.Contains(", as recorded", r.Stdout, StringComparison.Ordinal);
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["out"])));
        Assert.Equal("../a.txt", new FileInfo(Path.Combine(Restored(_box["out"]), "sub/link")).LinkTarget);
        Assert.Equal((UnixFileMode)0b110_100_000, File.GetUnixFileMode(Path.Combine(Restored(_box["out"]), "sub/b.txt")));
    }

    [Fact]
    public void A_non_empty_destination_is_refused_without_force()
    {
        _box.Write("out/keep.txt", "mine");
        var r = _box.Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("is not empty; choose an empty folder, or add --force", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(["keep.txt"], Sandbox.FilesUnder(_box["out"]));
        Assert.Equal(0, _box.Run("restore", "--source", "f", "--to", _box["out"], "--force").ExitCode);
        Assert.Equal("mine", File.ReadAllText(_box["out/keep.txt"]));
    }

    [Fact]
    public void A_corrupt_first_copy_falls_back_to_the_second_target()
    {
        RestoresFromSecondAfter(first =>
        {
            var bytes = File.ReadAllBytes(first);
            bytes[bytes.Length / 2] ^= 0x10;
            File.WriteAllBytes(first, bytes);
        }, "skipped copy on target 'first'");
    }

    /// <summary>Damages the copy on 'first', restores, and checks that the copy on 'second' gave the same files, saying why.</summary>
    private void RestoresFromSecondAfter(Action<string> damageFirst, string skipped)
    {
        damageFirst(Directory.GetFiles(_box["first"], "files.tar.zst", SearchOption.AllDirectories).Single());
        var r = _box.Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains(skipped, r.Stdout, StringComparison.Ordinal);
        Assert.Contains("from 'second'", r.Stdout, StringComparison.Ordinal);
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["out"])));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_box["out"]), e => Path.GetFileName(e).StartsWith(".backstop-restore-", StringComparison.Ordinal));
    }

    [Fact]
    public void Latest_is_the_newest_snapshot_with_a_verified_copy_even_short_of_min_copies_and_says_what_it_passed_over()
    {
        // Two copies required; the newest snapshot's copy on 'first' is found corrupt, the one on 'second' is good.
        _box.WriteConfig("catalog: ./state/catalog.db\npolicy: { min_copies: 2 }\ntargets:\n  - { name: first, kind: local, path: ./first }\n" +
                         "  - { name: second, kind: local, path: ./second }\nsources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Thread.Sleep(1100); // snapshot ids are per second
        File.WriteAllText(_box["data/a.txt"], "newest");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var copies = Directory.GetFiles(_box.Root, "files.tar.zst", SearchOption.AllDirectories).Where(f => File.ReadAllBytes(f).Length > 0)
            .GroupBy(f => Path.GetFileName(Path.GetDirectoryName(f))).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        var newest = copies[^1].Key!;
        var onFirst = copies[^1].Single(f => f.StartsWith(_box["first"], StringComparison.Ordinal));
        File.WriteAllBytes(onFirst, [.. File.ReadAllBytes(onFirst).Select((b, i) => i == 100 ? (byte)(b ^ 1) : b)]);
        Assert.Equal(1, _box.Run("verify", "--deep").ExitCode);

        var r = _box.Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"note: snapshot {newest} has 1 verified copy of the 2 required (copy on 'first' corrupt", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"of {newest} from 'second'", r.Stdout, StringComparison.Ordinal);
        Assert.Equal("newest", File.ReadAllText(Path.Combine(Restored(_box["out"]), "a.txt")));

        // With 'second' gone from the configuration, its copy cannot be read: the one before it is restored, and why said.
        _box.WriteConfig("catalog: ./state/catalog.db\npolicy: { min_copies: 1 }\ntargets:\n  - { name: first, kind: local, path: ./first }\n" +
                         "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        r = _box.Run("restore", "--source", "f", "--to", _box["without-second"]);
        Assert.True(r.ExitCode == 3, r.ToString()); // restored, but not the newest
        Assert.Contains($"note: snapshot {newest} is newer but verified only on 'second', no longer in", r.Stderr, StringComparison.Ordinal);
        Assert.Equal("alpha", File.ReadAllText(Path.Combine(Restored(_box["without-second"]), "a.txt")));
        _box.WriteConfig("catalog: ./state/catalog.db\npolicy: { min_copies: 2 }\ntargets:\n  - { name: first, kind: local, path: ./first }\n" +
                         "  - { name: second, kind: local, path: ./second }\nsources:\n  - { name: f, kind: files, paths: [./data] }\n");

        // With no good copy left anywhere, the one before it is restored, and the newer one named.
        var onSecond = copies[^1].Single(f => f.StartsWith(_box["second"], StringComparison.Ordinal));
        File.Delete(onSecond);
        Assert.Equal(1, _box.Run("verify").ExitCode);
        r = _box.Run("restore", "--source", "f", "--to", _box["older"]);
        Assert.True(r.ExitCode == 3, r.ToString()); // restored, but not the newest
        Assert.Contains($"note: snapshot {newest} is newer but has no verified copy (copy on 'first' corrupt", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"restoring {copies[^2].Key}", r.Stderr, StringComparison.Ordinal);
        Assert.Equal("alpha", File.ReadAllText(Path.Combine(Restored(_box["older"]), "a.txt")));
    }

    [Fact]
    public void With_every_copy_bad_nothing_is_written()
    {
        foreach (var copy in Directory.GetFiles(_box.Root, "files.tar.zst", SearchOption.AllDirectories))
        {
            File.WriteAllBytes(copy, [1, 2, 3]);
        }

        var r = _box.Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no copy of files.tar.zst", r.Stderr, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["out"]));
    }

    [Fact]
    public void A_copy_that_decodes_but_fails_its_hash_is_never_published_and_the_next_target_is_used()
    {
        // A zstd skippable frame appended: the content still decodes whole; only the SHA-256 tells.
        RestoresFromSecondAfter(first =>
        {
            using var f = new FileStream(first, FileMode.Append);
            f.Write([0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, (byte)'e', (byte)'v', (byte)'i', (byte)'l']);
        }, "skipped copy on 'first' is corrupt: SHA-256");
    }

    [Fact]
    public void A_copy_whose_content_restores_but_whose_tail_is_junk_is_discarded_and_the_next_target_used()
    {
        // The whole tar comes out before the junk after the frame is read: what was staged must go with the copy.
        RestoresFromSecondAfter(first => File.AppendAllText(first, "junk that is no zstd frame"), "skipped copy on target 'first'");
    }

    [Fact]
    public void A_restore_onto_a_full_disk_fails_naming_it_and_leaves_nothing_behind()
    {
        var small = _box.Tmpfs("small", "128k"); // the 300 kB blob cannot fit
        var r = _box.Run("restore", "--source", "f", "--to", Path.Combine(small, "out"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("No space left on device", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("what this restore wrote was removed: free space or fix the permissions there", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(small));

        Directory.CreateDirectory(Path.Combine(small, "mine"));
        Assert.Equal(1, _box.Run("restore", "--source", "f", "--to", small, "--force").ExitCode);
        Assert.Equal([Path.Combine(small, "mine")], Directory.GetFileSystemEntries(small));
    }

    [Fact]
    public void A_forced_restore_over_a_mount_point_copies_across_it_with_modes_and_leaves_no_staging()
    {
        var dest = _box["over"];
        var sub = Path.Combine(Restored(dest), "sub");
        Directory.CreateDirectory(sub);
        _box.Tmpfs(Path.GetRelativePath(_box.Root, sub), "1m"); // another file system inside the destination: rename cannot reach it
        File.WriteAllText(Path.Combine(sub, "b.txt"), "old");
        var r = _box.Run("restore", "--source", "f", "--to", dest, "--force");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(dest)));
        Assert.Equal((UnixFileMode)0b110_100_000, File.GetUnixFileMode(Path.Combine(sub, "b.txt")));
        Assert.Equal("../a.txt", new FileInfo(Path.Combine(sub, "link")).LinkTarget);
        Assert.Equal(File.GetLastWriteTimeUtc(_box["data/sub/b.txt"]), File.GetLastWriteTimeUtc(Path.Combine(sub, "b.txt")));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(dest, "*", SearchOption.AllDirectories),
            e => Path.GetFileName(e).StartsWith(".backstop-restore-", StringComparison.Ordinal));
    }

    [Fact]
    public void A_forced_restore_that_cannot_write_part_of_the_tree_stops_naming_it_and_leaves_no_staging()
    {
        var dest = _box["over"];
        var sub = Path.Combine(Restored(dest), "sub");
        Directory.CreateDirectory(sub);
        _box.ReadOnly(Path.GetRelativePath(_box.Root, sub));
        var r = _box.Run("restore", "--source", "f", "--to", dest, "--force");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot finish the restore into", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("Read-only file system", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.GetFileSystemEntries(dest, "*", SearchOption.AllDirectories),
            e => Path.GetFileName(e).StartsWith(".backstop-restore-", StringComparison.Ordinal));
    }

    [Fact]
    public void A_restore_killed_midway_leaves_only_a_hidden_staging_which_the_next_restore_removes()
    {
        Assert.Equal(0, _box.Shell("for i in $(seq 1 40); do head -c 2000000 /dev/urandom > data/big$i.bin; done").ExitCode);
        Assert.Equal(0, _box.Run("run").ExitCode);

        // The copy on 'first' is fed through a FIFO that stops after its first 20 MB, so the restore is midway when it
        // is killed, whatever the machine's speed (a race against a fast restore made this test flaky).
        var copy = Directory.GetFiles(_box["first"], "files.tar.zst", SearchOption.AllDirectories).MaxBy(f => new FileInfo(f).Length)!; // the second snapshot, with the big files
        var aside = copy + ".aside";
        File.Move(copy, aside);
        Assert.Equal(0, Sandbox.Exec("mkfifo", copy).ExitCode);
        using var release = new ManualResetEventSlim();
        var feeder = new Thread(() =>
        {
            try
            {
                using var fifo = new FileStream(copy, FileMode.Open, FileAccess.Write);
                using var from = File.OpenRead(aside);
                var buffer = new byte[1 << 20];
                for (var sent = 0; sent < 20; sent++)
                {
                    from.ReadExactly(buffer);
                    fifo.Write(buffer);
                }

                fifo.Flush();
                release.Wait(TimeSpan.FromMinutes(2));
            }
            catch (IOException)
            {
                // the reader was killed: a broken pipe
            }
        }) { IsBackground = true };
        feeder.Start();

        var dest = _box["killed"];
        using (var running = _box.Start(["restore", "--source", "f", "--to", dest], null))
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!(Directory.Exists(dest) && Directory.EnumerateFiles(dest, "big*", SearchOption.AllDirectories).Any()) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(5);
            }

            Assert.False(running.HasExited, "the restore ended before it was killed: " + (running.HasExited ? running.Wait().ToString() : ""));
            running.KillHard();
        }

        release.Set();
        Assert.True(feeder.Join(TimeSpan.FromSeconds(30)));
        File.Delete(copy);
        File.Move(aside, copy);

        var left = Directory.GetFileSystemEntries(dest);
        Assert.NotEmpty(left);
        Assert.All(left, e => Assert.StartsWith(".backstop-restore-", Path.GetFileName(e), StringComparison.Ordinal));
        var r = _box.Run("restore", "--source", "f", "--to", dest);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(dest)));
        Assert.Equal([Path.Combine(dest, _box["data"].TrimStart('/').Split('/')[0])], Directory.GetFileSystemEntries(dest));
    }

    [Fact]
    public void The_explained_recipe_run_literally_restores_the_same_files()
    {
        var explain = _box.Run("restore", "--source", "f", "--explain", "--to", _box["stock"]);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var script = string.Join("\n", explain.Stdout.Split('\n').Where(l => !l.StartsWith('#')));
        var r = _box.Shell("set -e\n" + script);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains(": OK", r.Stdout, StringComparison.Ordinal); // sha256sum -c
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["stock"])));
    }

    [Fact]
    public void A_command_artifact_restores_to_a_file_and_its_recipe_too()
    {
        var r = _box.Run("restore", "--source", "cmd", "--to", _box["restored/"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("command-output", File.ReadAllText(_box["restored/dump.out"]));
        Directory.CreateDirectory(_box["stock"]);
        var explain = _box.Run("restore", "--source", "cmd", "--explain", "--to", _box["stock"]);
        var script = string.Join("\n", explain.Stdout.Split('\n').Where(l => !l.StartsWith('#')));
        Assert.True(_box.Shell("set -e\n" + script).ExitCode == 0);
        Assert.Equal("command-output", File.ReadAllText(_box["stock/dump.out"]));
    }

    [Fact]
    public void A_file_restore_with_every_copy_bad_leaves_not_even_the_folders_it_made()
    {
        foreach (var copy in Directory.GetFiles(_box.Root, "dump.out.zst", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(copy);
            bytes[^1] ^= 0x40; // decodes to other bytes, or not at all
            File.WriteAllBytes(copy, bytes);
        }

        var r = _box.Run("restore", "--source", "cmd", "--to", _box["new/nested/"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no copy of dump.out.zst", r.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["new"]), string.Join(", ", Directory.Exists(_box["new"]) ? Sandbox.FilesUnder(_box["new"]) : []));
    }

    [Fact]
    public void A_copy_that_cannot_be_opened_is_skipped_never_blamed_on_the_destination()
    {
        RestoresFromSecondAfter(first =>
        {
            File.Delete(first);
            Directory.CreateDirectory(first); // opening it fails (EISDIR/EACCES), as an unreadable file would for a non-root user
        }, "could not be opened");
    }

    [Fact]
    public void Copies_only_on_targets_no_longer_configured_are_named_and_a_folder_at_a_file_path_is_refused()
    {
        Directory.CreateDirectory(_box["restored/dump.out"]);
        var r = _box.Run("restore", "--source", "cmd", "--to", _box["restored/"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("dump.out is a folder; the backup is a file: choose another --to", r.Stderr, StringComparison.Ordinal);

        _box.WriteConfig("catalog: ./state/catalog.db\ntargets:\n  - { name: third, kind: local, path: ./third }\n" +
                         "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        r = _box.Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("has verified copies only on 'first', 'second', no longer in", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("add the target back to restore from it", r.Stderr, StringComparison.Ordinal);

        var id = Directory.GetDirectories(_box["first/f"]).Select(Path.GetFileName).Single()!; // named: the copies are tried, and named
        r = _box.Run("restore", "--source", "f", "--snapshot", id, "--to", _box["out"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("copies on 'first', 'second', no longer in", r.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["out"]));
    }

    [Fact]
    public void A_non_root_restore_over_read_only_folders_with_force_succeeds_and_keeps_their_modes()
    {
        // Root could write anywhere: the restores run as nobody, over a tree with a folder nobody may write (0555).
        var r = _box.Shell("""
            set -e
            mkdir -p data/ro && printf 'locked' > data/ro/f.txt && chmod 555 data/ro
            """);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Shell("mkdir -p out && chmod -R a+rwX state first second out . && chmod 555 data/ro").ExitCode);
        Sandbox.Exec("chmod", "o+rx", Path.GetDirectoryName(_box.Root)!);
        CliResult AsNobody(params string[] args) => Sandbox.ExecIn(_box.Root, "setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--",
            "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp", "dotnet", Sandbox.BackstopDll, "--config", _box.Config, .. args]);

        var first = AsNobody("restore", "--source", "f", "--to", _box["out"]);
        Assert.True(first.ExitCode == 0, first.ToString());
        var again = AsNobody("restore", "--source", "f", "--to", _box["out"], "--force");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal("locked", File.ReadAllText(Path.Combine(Restored(_box["out"]), "ro/f.txt")));
        Assert.Equal((UnixFileMode)0b101_101_101, File.GetUnixFileMode(Path.Combine(Restored(_box["out"]), "ro")));
    }

    [Fact]
    public void Explain_refuses_an_unknown_artifact_and_a_password_in_the_uri_without_printing_it()
    {
        var unknown = _box.Run("restore", "--source", "f", "--explain", "--artifact", "nope", "--to", _box["x"]);
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("--artifact nope: snapshot", unknown.Stderr, StringComparison.Ordinal);
        Assert.Contains("has files.tar", unknown.Stderr, StringComparison.Ordinal);

        var password = _box.Run("restore", "--source", "f", "--explain", "--to", "postgresql://bob:hunter2@127.0.0.1:5432/app");
        Assert.Equal(2, password.ExitCode);
        Assert.Contains("leave the password out of the URI", password.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", password.All, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_snapshot_is_a_usage_error()
    {
        var r = _box.Run("restore", "--source", "f", "--snapshot", "20200101T000000Z-0000", "--to", _box["out"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("source 'f' has no snapshot of that id or prefix", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_copy_replaced_by_a_zstd_bomb_fills_nothing_and_is_named_corrupt()
    {
        // The command artifact is 14 bytes; on 'first' its copy becomes a valid zstd frame of 2 GB of zeros (a few KiB).
        var copy = Directory.GetFiles(_box["first/cmd"], "dump.out.zst", SearchOption.AllDirectories).Single();
        Assert.Equal(0, _box.Shell($"head -c 2000000000 /dev/zero | zstd -q -19 -c > {copy}").ExitCode);
        var r = _box.Run("restore", "--source", "cmd", "--to", _box["bomb"]);
        Assert.True(r.ExitCode == 0, r.ToString()); // from 'second'
        Assert.Contains("decodes to more than the 14 bytes its snapshot recorded", r.All, StringComparison.Ordinal);
        Assert.Equal("command-output", File.ReadAllText(_box["bomb"])); // a command artifact restores to the file named
        Assert.Equal("corrupt", _box.Snapshots().Single(s => s.GetProperty("source").GetString() == "cmd").GetProperty("artifacts")[0]
            .GetProperty("copies").EnumerateArray().Single(c => c.GetProperty("target").GetString() == "first").GetProperty("state").GetString());
    }
}
