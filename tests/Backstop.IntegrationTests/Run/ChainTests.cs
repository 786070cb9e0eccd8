using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Run;

/// <summary>
/// Incremental files: a full, then levels that store only what changed, restored by Backstop and by the stock GNU tar
/// chain that <c>restore --explain</c> prints, each compared with the live tree entry by entry.
/// </summary>
public sealed class ChainTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private const string TwoTargets =
        "catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n" +
        "  - { name: a, kind: local, path: ./backups-a }\n  - { name: b, kind: local, path: ./backups-b }\n";

    private CliResult Run(params string[] args)
    {
        var r = _box.Run(args);
        Assert.True(r.ExitCode == 0, string.Join(' ', args) + ": " + r);
        return r;
    }

    private JsonElement Newest() => _box.Snapshots().Last(s => s.GetProperty("state").GetString() == "committed");

    private static long Fact(JsonElement snapshot, string name) => snapshot.GetProperty("facts").GetProperty(name).GetInt64();

    /// <summary>Every entry under a folder: path, type, mode, size, link count, link target, mtime (ns), and each file's SHA-256.</summary>
    private string Tree(string folder)
    {
        var r = _box.Shell($"cd '{folder}' && find . -mindepth 1 -printf '%P %y %m %s %n %l %T@\\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r sha256sum");
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }

    [Fact]
    public void Gnu_tar_restores_every_chain_literally_with_deletions_renames_links_and_types_swapped()
    {
        var setup = _box.Shell("""
            set -e
            mkdir -p data/sub data/gone data/empty data/x-becomes-folder-later data/y
            printf 'one' > data/a.txt
            printf 'untouched' > data/sub/keep.txt
            printf 'bee' > data/sub/b.txt
            printf 'g' > data/gone/g.txt
            printf 'shared' > data/h1 && ln data/h1 data/sub/h2
            ln -s a.txt data/link && ln -s nowhere data/dangling
            printf 'y' > data/y/inside
            rmdir data/x-becomes-folder-later && printf 'x' > data/x
            """);
        Assert.True(setup.ExitCode == 0, setup.ToString());
        _box.WriteConfig(TwoTargets + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Run("run");
        var full = Newest();
        Assert.Equal(0, full.GetProperty("level").GetInt32());

        // Level 1: a change, a deletion, a rename, a file replaced by a folder and a folder by a file, a new hard link.
        var change = _box.Shell("""
            set -e
            sleep 0.01
            printf 'one, changed' > data/a.txt
            rm -r data/gone
            mv data/sub/b.txt data/sub/renamed.txt
            rm data/x && mkdir data/x && printf 'now a folder' > data/x/inner
            rm -r data/y && printf 'now a file' > data/y
            ln data/h1 data/h3
            printf 'new' > data/new.txt && mkdir data/new-empty
            """);
        Assert.True(change.ExitCode == 0, change.ToString());
        Run("run");
        var one = Newest();
        Assert.Equal(1, one.GetProperty("level").GetInt32());
        Assert.Equal(full.GetProperty("snapshot").GetString(), one.GetProperty("parent").GetString());
        Assert.True(Fact(one, "changed_files") < Fact(one, "files"), one.ToString());

        // Level 2: nothing changed: no file stored, the tree's facts the same.
        Run("run");
        var two = Newest();
        Assert.Equal(2, two.GetProperty("level").GetInt32());
        Assert.Equal(0, Fact(two, "changed_files"));
        Assert.Equal(Fact(one, "files"), Fact(two, "files"));
        Assert.Equal(Fact(one, "bytes"), Fact(two, "bytes"));

        // Level 3: a deletion only.
        Assert.Equal(0, _box.Shell("rm data/a.txt data/link").ExitCode);
        Run("run");
        Assert.Equal(3, Newest().GetProperty("level").GetInt32());
        var live = Tree(_box["data"]);

        // The printed chain, run literally with stock tools.
        var explain = Run("restore", "--source", "f", "--explain", "--to", _box["stock"]);
        Assert.Contains("is level 3 of a chain", explain.Stdout, StringComparison.Ordinal);
        Assert.Equal(4, explain.Stdout.Split('\n').Count(l => l.Contains("tar -x --incremental", StringComparison.Ordinal)));
        var stock = _box.Shell(string.Join("\n", explain.Stdout.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).Prepend("set -e")));
        Assert.True(stock.ExitCode == 0, stock.ToString());
        Assert.Equal(live, Tree(_box["stock"] + _box["data"]));

        // ls of the newest level: the tree as it is now, each file with the level that holds it.
        var ls = Run("ls", "latest");
        Assert.Contains($"{_box["data"]}/sub/keep.txt  (level 0, {full.GetProperty("snapshot").GetString()})", ls.Stdout, StringComparison.Ordinal);
        Assert.Contains($"{_box["data"]}/sub/renamed.txt  (level 1, {one.GetProperty("snapshot").GetString()})", ls.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("a.txt", ls.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("b.txt", ls.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("/gone", ls.Stdout, StringComparison.Ordinal);
        Assert.Equal(live.Split('\n').Count(l => l.Contains(" f ", StringComparison.Ordinal)), ls.Stdout.Split('\n').Count(l => l.StartsWith('-') || l.StartsWith('h'))); // a hard link's other names show as h

        // A partial restore of a level: what --include names, from whichever level holds it.
        Run("restore", "--source", "f", "--include", _box["data"] + "/sub/**", "--include", _box["data"] + "/h1", "--to", _box["part"]); // h1: sub/h2 is a hard link to it
        Assert.Equal("untouched", File.ReadAllText(_box["part"] + _box["data/sub/keep.txt"]));
        Assert.False(File.Exists(_box["part"] + _box["data/new.txt"]));

        // A selection that takes a folder's files but not the folder: a name renamed away at a level is not brought back.
        Run("restore", "--source", "f", "--include", _box["data"] + "/sub/*.txt", "--to", _box["part2"]);
        Assert.True(File.Exists(_box["part2"] + _box["data/sub/renamed.txt"]));
        Assert.True(File.Exists(_box["part2"] + _box["data/sub/keep.txt"]));
        Assert.False(File.Exists(_box["part2"] + _box["data/sub/b.txt"]));

        // Backstop's own restore of the chain.
        var restore = Run("restore", "--source", "f", "--to", _box["mine"]);
        Assert.Contains("as recorded", restore.All, StringComparison.Ordinal);
        Assert.Equal(live, Tree(_box["mine"] + _box["data"]));

        // An older level restores its own state (before the deletion and with the rename).
        Run("restore", "--source", "f", "--snapshot", one.GetProperty("snapshot").GetString()!, "--to", _box["level1"]);
        Assert.True(File.Exists(_box["level1"] + _box["data/a.txt"]));
        Assert.True(File.Exists(_box["level1"] + _box["data/sub/renamed.txt"]));
        Assert.False(File.Exists(_box["level1"] + _box["data/sub/b.txt"]));
        Assert.False(Directory.Exists(_box["level1"] + _box["data/gone"]));
    }

    [Fact]
    public void A_corrupt_middle_level_is_found_by_verify_deep_and_the_chain_restores_from_the_other_target()
    {
        _box.Write("data/a.txt", "first");
        _box.WriteConfig(TwoTargets + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Run("run");
        _box.Write("data/b.txt", "second");
        Run("run");
        var middle = Newest().GetProperty("snapshot").GetString()!;
        _box.Write("data/c.txt", "third");
        Run("run");
        var top = Newest();
        Assert.Equal(2, top.GetProperty("level").GetInt32());

        var stored = _box[$"backups-a/f/{middle}/files.tar.zst"];
        var bytes = File.ReadAllBytes(stored);
        bytes[bytes.Length / 2] ^= 0x20;
        File.WriteAllBytes(stored, bytes);

        var deep = _box.Run("verify", "--deep");
        Assert.Equal(1, deep.ExitCode);
        Assert.Contains("corrupt", deep.Stdout, StringComparison.Ordinal);

        // The newest level's own copies are fine, but on 'a' a level under it is not: it restores from 'b' alone.
        var newest = Newest();
        Assert.Equal(["b"], newest.GetProperty("verified_copies").EnumerateArray().Select(t => t.GetString()!).ToArray());
        var restore = Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Contains("from 'b'", restore.All, StringComparison.Ordinal);
        Assert.Equal("third", File.ReadAllText(_box["out"] + _box["data/c.txt"]));
        Assert.Equal("second", File.ReadAllText(_box["out"] + _box["data/b.txt"]));

        // The next run heals the middle level onto 'a' before it adds a level, so the chain goes on on both targets.
        _box.Write("data/d.txt", "fourth");
        var next = Run("run");
        Assert.Contains("healed snapshot", next.All, StringComparison.Ordinal);
        var after = Newest();
        Assert.Equal(3, after.GetProperty("level").GetInt32());
        Assert.Equal(["a", "b"], after.GetProperty("verified_copies").EnumerateArray().Select(t => t.GetString()!).Order().ToArray());
    }

    [Fact]
    public void Retention_keeps_every_parent_a_kept_level_needs_and_run_full_starts_a_new_chain()
    {
        _box.Write("data/a.txt", "first");
        _box.WriteConfig(Yaml.LocalTarget() + "retention: { last: 1 }\nsources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Run("run", "--no-prune");
        _box.Write("data/b.txt", "second");
        Run("run", "--no-prune");
        _box.Write("data/c.txt", "third");
        Run("run", "--no-prune");
        var ids = _box.Snapshots().Select(s => s.GetProperty("snapshot").GetString()!).ToList();

        var dry = Run("prune", "--dry-run");
        Assert.Contains($"kept: parent of {ids[2]}", dry.All, StringComparison.Ordinal);
        Assert.DoesNotContain("remove", dry.Stdout.Split('\n').Where(l => l.Contains(ids[0], StringComparison.Ordinal)).FirstOrDefault() ?? "", StringComparison.Ordinal);
        Run("prune");
        Assert.All(ids, id => Assert.True(Directory.Exists(_box[$"backups/f/{id}"]), id));

        // A new full: the old chain is no longer needed by the one snapshot kept, and goes.
        var full = Run("run", "--full", "--no-prune");
        Assert.Contains("a full snapshot (level 0): run --full", full.All, StringComparison.Ordinal);
        Assert.Equal(0, Newest().GetProperty("level").GetInt32());
        Run("prune");
        Assert.All(ids, id => Assert.False(Directory.Exists(_box[$"backups/f/{id}"]), id));
        var restore = Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Equal("third", File.ReadAllText(_box["out"] + _box["data/c.txt"]));
    }

    [Fact]
    public void Incremental_off_keeps_every_snapshot_full_and_a_lost_catalog_gets_its_chains_back_from_the_manifests()
    {
        _box.Write("data/a.txt", "first");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n  - { name: g, kind: files, paths: [./data], incremental: { full_every: 0 } }\n");
        Run("run");
        _box.Write("data/b.txt", "second");
        Run("run");
        var snapshots = _box.Snapshots();
        Assert.All(snapshots.Where(s => s.GetProperty("source").GetString() == "g"), s => Assert.Equal(0, s.GetProperty("level").GetInt32()));
        Assert.DoesNotContain(snapshots.Where(s => s.GetProperty("source").GetString() == "g").SelectMany(s => s.GetProperty("artifacts").EnumerateArray()),
            a => a.GetProperty("name").GetString() == "files.listing");
        var level = snapshots.Last(s => s.GetProperty("source").GetString() == "f");
        Assert.Equal(1, level.GetProperty("level").GetInt32());

        File.Delete(_box["state/catalog.db"]);
        Run("catalog", "rebuild");
        var rebuilt = _box.Snapshots().Last(s => s.GetProperty("source").GetString() == "f");
        Assert.Equal(1, rebuilt.GetProperty("level").GetInt32());
        Assert.Equal(level.GetProperty("parent").GetString(), rebuilt.GetProperty("parent").GetString());
        Assert.Equal("valid", rebuilt.GetProperty("condition").GetString());
        Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Equal("second", File.ReadAllText(_box["out"] + _box["data/b.txt"]));

        // A new machine has no listing cache: the chain goes on from the listing stored on the target.
        Directory.Delete(_box["state/private/source-f/listings"], recursive: true);
        _box.Write("data/c.txt", "third");
        var next = Run("run", "--source", "f");
        Assert.Contains("f: the listing of " + level.GetProperty("snapshot").GetString() + " was read from 'local'", next.All, StringComparison.Ordinal);
        var after = _box.Snapshots().Last(s => s.GetProperty("source").GetString() == "f");
        Assert.Equal(2, after.GetProperty("level").GetInt32());
        Assert.Equal(1, Fact(after, "changed_files"));
    }

    [Fact]
    public void A_level_killed_with_sigkill_mid_upload_leaves_the_chain_intact_and_the_next_run_continues_it()
    {
        _box.Write("data/a.txt", "first");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Run("run");
        var full = Newest().GetProperty("snapshot").GetString()!;
        Assert.Equal(0, _box.Shell("head -c 400000000 /dev/urandom > data/big.bin").ExitCode);
        using (var victim = _box.Start("run"))
        {
            RunningCli.WaitUntil(() => Sandbox.FilesUnder(_box["backups"]).Any(f => f.EndsWith(".partial", StringComparison.Ordinal)), "the level to be uploading");
            victim.KillHard();
        }

        _box.Write("data/b.txt", "second");
        var next = Run("run");
        Assert.Contains("was interrupted by a run that died; recorded as failed", next.All, StringComparison.Ordinal);
        var level = Newest();
        Assert.Equal(1, level.GetProperty("level").GetInt32());
        Assert.Equal(full, level.GetProperty("parent").GetString());
        Assert.Equal(2, Fact(level, "changed_files")); // big.bin and b.txt: the killed level stored nothing the chain counts on
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
        Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Equal(400000000, new FileInfo(_box["out"] + _box["data/big.bin"]).Length);
        Assert.Equal("second", File.ReadAllText(_box["out"] + _box["data/b.txt"]));
        Assert.Single(Directory.GetDirectories(_box["state/private/source-f/listings"])); // the killed level's listing went with the commit
    }

    [Fact]
    public void A_damaged_listing_on_this_machine_is_said_and_the_artifact_stored_whole_never_compared_with_it()
    {
        _box.Write("data/a.txt", "first");
        _box.Write("data/b.txt", "second");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Run("run");
        var cached = Directory.GetFiles(_box["state/private/source-f/listings"], "files.listing", SearchOption.AllDirectories).Single();
        File.WriteAllBytes(cached, File.ReadAllBytes(cached)[..30]); // cut short, as a full disk leaves it

        var run = Run("run");
        Assert.Contains("files.tar is stored whole: the parent's listing", run.All, StringComparison.Ordinal);
        var snapshot = Newest();
        Assert.Equal(Fact(snapshot, "files"), Fact(snapshot, "changed_files"));
        var tar = snapshot.GetProperty("artifacts").EnumerateArray().Single(a => a.GetProperty("name").GetString() == "files.tar");
        Assert.Equal(0, tar.GetProperty("level").GetInt32()); // restores alone
        Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Equal("second", File.ReadAllText(_box["out"] + _box["data/b.txt"]));
    }

    [Fact]
    public void A_changed_file_that_vanishes_mid_level_restores_as_the_level_below_holds_it_and_the_facts_say_so()
    {
        // At the level, data/a/00-big (changed, large) is read first; while it is, data/a/zz-file (changed too, and
        // already named in its folder's entry) is deleted. The level cannot store it, and its folder lists it: a restore
        // keeps the copy the full holds, and the level's facts count that copy, so the restore matches them.
        Assert.Equal(0, _box.Shell("mkdir -p data/a && printf 'full' > data/a/zz-file && printf x > data/a/00-big").ExitCode);
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Run("run");
        Assert.Equal(0, _box.Shell("head -c 200000000 /dev/urandom > data/a/00-big && printf 'changed at the level' > data/a/zz-file").ExitCode);
        using (var run = _box.Start("run"))
        {
            SwappedEntryTests.WaitUntilOpen(run.Pid, _box["data/a/00-big"]);
            File.Delete(_box["data/a/zz-file"]);
            var r = run.Wait(TimeSpan.FromSeconds(120));
            Assert.True(r.ExitCode is 0 or 3, r.ToString());
            Assert.Contains("zz-file vanished before it was read", r.All, StringComparison.Ordinal);
            Assert.Contains("this snapshot restores the copy the level below holds (4 bytes)", r.All, StringComparison.Ordinal);
        }

        Assert.Equal(1, Newest().GetProperty("level").GetInt32());
        var restore = Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.Contains("as recorded", restore.All, StringComparison.Ordinal);
        Assert.Equal("full", File.ReadAllText(_box["out"] + _box["data/a/zz-file"]));
    }

    [Fact]
    public void Incremental_on_a_kind_that_stores_whole_snapshots_is_a_config_error_with_its_place()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: c, kind: command, command: [/bin/echo, hi], artifact: out.txt, incremental: { full_every: 7d } }\n");
        var r = _box.Run("run");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("backstop.yaml:", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("'command' sources store every snapshot whole", r.Stderr, StringComparison.Ordinal);
    }
}
