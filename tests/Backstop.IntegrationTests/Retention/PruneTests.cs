using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Retention;

/// <summary>Retention from the command line: nothing good is ever deleted, and every decision says why.</summary>
public sealed class PruneTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private void Config(string retention, string script = "date +%s%N") =>
        _box.WriteConfig(Yaml.LocalTarget() + $"retention: {retention}\n" + "sources:\n" + Yaml.Command("app", script));

    /// <summary>Builds a history: runs that leave retention to the prune verb under test.</summary>
    private void RunTimes(int n, int exitCode)
    {
        for (var i = 0; i < n; i++)
        {
            Assert.Equal(exitCode, _box.Run("run", "--no-prune").ExitCode);
            Thread.Sleep(1100); // snapshot ids are per second
        }
    }

    private List<string> StoredSnapshots() =>
        Directory.Exists(_box["backups/app"]) ? Directory.GetDirectories(_box["backups/app"]).Select(d => Path.GetFileName(d)).Order().ToList() : [];

    [Fact]
    public void Dry_run_says_why_each_stays_or_goes_and_prune_removes_only_those()
    {
        Config("{ last: 2 }");
        RunTimes(4, 0);
        var before = StoredSnapshots();
        Assert.Equal(4, before.Count);

        var dry = _box.Run("prune", "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.Contains($"keep   app {before[3]} on local: newest valid snapshot; last 2", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains($"keep   app {before[2]} on local: last 2", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains($"would remove app {before[0]} on local: matches no rule (last 2)", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains("2 snapshot copies would be removed (dry run: nothing was)", dry.Stdout, StringComparison.Ordinal);
        Assert.Equal(before, StoredSnapshots());

        var prune = _box.Run("prune");
        Assert.True(prune.ExitCode == 0, prune.ToString());
        Assert.Equal(before[2..], StoredSnapshots());
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode); // pruned copies are not "missing"
        var status = JsonDocument.Parse(_box.Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];
        Assert.Equal("ok", status.GetProperty("state").GetString());
        Assert.Equal(0, _box.Run("run", "--no-prune").ExitCode); // and the next run neither heals nor sweeps them back
        Assert.Equal(3, StoredSnapshots().Count);

        var gone = _box.Run("restore", "--source", "app", "--snapshot", before[0], "--to", _box["out/"]);
        Assert.Equal(1, gone.ExitCode);
        Assert.Contains($"snapshot {before[0]} was pruned from every target (pruned: matches no rule", gone.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["out"])); // nothing written, not even the folder
    }

    [Fact]
    public void A_prune_the_target_refuses_exits_1_naming_the_cause_and_the_next_run_finishes_it()
    {
        Config("{ last: 1 }");
        RunTimes(3, 0);
        var before = StoredSnapshots();
        _box.ReadOnly("backups");
        var prune = _box.Run("prune");
        Assert.True(prune.ExitCode == 1, prune.ToString());
        Assert.Contains($"removal pending app {before[0]} on local: matches no rule (last 1)", prune.Stdout, StringComparison.Ordinal);
        Assert.Contains("Read-only file system", prune.Stdout, StringComparison.Ordinal); // the target's own reason
        Assert.Contains($"keep   app {before[2]} on local", prune.Stdout, StringComparison.Ordinal);
        Assert.Contains("0 snapshot copies removed", prune.Stdout, StringComparison.Ordinal);
        Assert.Contains("2 snapshot copies could not be removed", prune.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", prune.All, StringComparison.Ordinal);
        Assert.Equal(before, StoredSnapshots());

        _box.Unmount("backups");
        var run = _box.Run("run", "--no-prune");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("pruned earlier, the target refused its removal then", run.Stdout, StringComparison.Ordinal);
        var after = StoredSnapshots();
        Assert.Equal(2, after.Count);
        Assert.Equal(before[2], after[0]);
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
    }

    [Fact]
    public void A_run_applies_retention_to_the_sources_it_backed_up_and_a_failed_run_prunes_nothing()
    {
        Config("{ last: 2 }");
        RunTimes(2, 0);
        var first = StoredSnapshots()[0];
        var third = _box.Run("run");
        Assert.True(third.ExitCode == 0, third.ToString());
        Assert.Contains($"app: pruned snapshot {first} from 'local': matches no rule (last 2)", third.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, StoredSnapshots().Count);
        Assert.DoesNotContain(first, StoredSnapshots());
        Thread.Sleep(1100);

        var kept = StoredSnapshots();
        Config("{ last: 2 }", "exit 3");
        var failed = _box.Run("run");
        Assert.Equal(1, failed.ExitCode);
        Assert.DoesNotContain("pruned", failed.Stdout, StringComparison.Ordinal);
        Assert.Equal(kept, StoredSnapshots()); // a failed backup prunes nothing

        Config("{ last: 2 }");
        Assert.Equal(0, _box.Run("run", "--no-prune").ExitCode);
        Assert.Equal(3, StoredSnapshots().Count);
    }

    [Fact]
    public void A_snapshot_being_restored_is_kept_by_a_prune_meanwhile_and_removed_by_a_later_one()
    {
        Config("{ last: 1 }");
        RunTimes(2, 0);
        var before = StoredSnapshots();
        var copy = Path.Combine(_box["backups/app"], before[0], "dump.out.zst");
        File.Move(copy, copy + ".aside");
        Assert.Equal(0, Sandbox.Exec("mkfifo", copy).ExitCode); // the restore waits on it: midway, on any machine
        using (var restore = _box.Start("restore", "--source", "app", "--snapshot", before[0], "--to", _box["out/"]))
        {
            RunningCli.WaitUntil(() => File.Exists(_box[$"state/restoring/{before[0]}-{restore.Pid}"]), "the restore to mark its snapshot");
            var prune = _box.Run("prune");
            Assert.True(prune.ExitCode == 0, prune.ToString());
            Assert.Contains($"keep   app {before[0]} on local: being restored (pid {restore.Pid}); matches no rule (last 1)", prune.Stdout, StringComparison.Ordinal);
            Assert.Equal(before, StoredSnapshots());
            restore.KillHard();
        }

        File.Delete(copy);
        File.Move(copy + ".aside", copy);
        var later = _box.Run("prune");
        Assert.True(later.ExitCode == 0, later.ToString());
        Assert.Contains($"removed app {before[0]} on local", later.Stdout, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_box["state/restoring"])); // the dead restore's mark is gone too
    }

    [Fact]
    public void Prune_never_removes_the_last_valid_snapshot_when_the_newest_runs_failed()
    {
        Config("{ last: 1 }");
        RunTimes(3, 0);
        var good = StoredSnapshots();
        Config("{ last: 1 }", "exit 3");
        RunTimes(2, 1);

        var refused = _box.Run("prune");
        Assert.Equal(0, refused.ExitCode);
        Assert.Contains("is not valid", refused.Stdout, StringComparison.Ordinal);
        Assert.Contains("nothing pruned until a run succeeds (or use --force)", refused.Stdout, StringComparison.Ordinal);
        Assert.Equal(good, StoredSnapshots());

        var forced = _box.Run("prune", "--force");
        Assert.True(forced.ExitCode == 0, forced.ToString());
        Assert.Contains("failed: never counts, holds no data", forced.Stdout, StringComparison.Ordinal);
        Assert.Equal([good[^1]], StoredSnapshots()); // the newest valid one stays, whatever failed after it
        var restore = _box.Run("restore", "--source", "app", "--to", _box["restored/"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
    }

    [Fact]
    public void Even_forced_prune_keeps_the_newest_valid_snapshot_on_every_target()
    {
        // min_copies 2: the newest snapshot's copy on 'a' is found corrupt, so it is not valid; the one before is.
        _box.WriteConfig("catalog: ./state/catalog.db\npolicy: { min_copies: 2 }\nretention: { last: 1 }\ntargets:\n" +
                         "  - { name: a, kind: local, path: ./a }\n  - { name: b, kind: local, path: ./b }\nsources:\n" + Yaml.Command("app", "date +%s%N"));
        RunTimes(2, 0);
        var ids = Directory.GetDirectories(_box["b/app"]).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        var corrupt = Path.Combine(_box["a/app"], ids[1]!, "dump.out.zst");
        File.AppendAllText(corrupt, "x");
        Assert.Equal(1, _box.Run("verify").ExitCode);

        var forced = _box.Run("prune", "--force");
        Assert.True(forced.ExitCode == 0, forced.ToString());
        Assert.Contains($"keep   app {ids[0]} on b: newest valid snapshot (2 verified copies); never pruned, also with --force", forced.Stdout, StringComparison.Ordinal);
        Assert.True(Directory.Exists(Path.Combine(_box["b/app"], ids[0]!)));
        Assert.True(Directory.Exists(Path.Combine(_box["a/app"], ids[0]!)));
        // status counts the truth: the newest restores from b (1 verified copy of the 2 asked), so the source is degraded.
        var status = JsonDocument.Parse(_box.Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];
        Assert.Equal(ids[1], status.GetProperty("last_valid").GetProperty("snapshot").GetString());
        Assert.Equal(1, status.GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
        Assert.Equal("degraded", status.GetProperty("state").GetString());
    }

    [Fact]
    public void Without_rules_nothing_is_pruned_and_bad_rules_are_configuration_errors()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo x"));
        RunTimes(2, 0);
        var none = _box.Run("prune");
        Assert.Equal(0, none.ExitCode);
        Assert.Contains("no retention rules configured; nothing pruned", none.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, StoredSnapshots().Count);

        Config("{ last: 2, dayly: 7 }");
        var bad = _box.Run("prune");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("dayly", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("backstop.yaml:", bad.Stderr, StringComparison.Ordinal);
    }
}
