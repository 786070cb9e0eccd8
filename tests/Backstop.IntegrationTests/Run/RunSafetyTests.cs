using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Run;

/// <summary>No lock, a killed run, a signal: the audits' concurrency and cleanup findings.</summary>
public sealed class RunSafetyTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private void Config(string script) =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("slow", script) +
                         "  - { name: files, kind: files, paths: [./data] }\n");

    private bool PartialExists() => Sandbox.FilesUnder(_box["backups"]).Any(f => f.EndsWith(".partial", StringComparison.Ordinal));

    [Fact]
    public void Two_runs_started_together_one_exits_75_naming_the_holder()
    {
        _box.Write("data/a.txt", "a");
        Config("head -c 100000 /dev/urandom; sleep 4");
        using var first = _box.Start("run");
        RunningCli.WaitUntil(PartialExists, "the first run to start writing");
        var second = _box.Run("run");
        Assert.Equal(75, second.ExitCode);
        Assert.Contains("another backstop run holds the lock", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("run with --wait[=DURATION] to wait for it", second.Stderr, StringComparison.Ordinal);
        Assert.Contains($"pid {first.Pid}", second.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", second.All, StringComparison.Ordinal);
        var done = first.Wait();
        Assert.True(done.ExitCode == 0, done.ToString());
    }

    [Fact]
    public void Run_wait_queues_behind_the_holder_and_says_so_and_a_wait_that_runs_out_still_exits_75()
    {
        _box.Write("data/a.txt", "a");
        Config("head -c 100000 /dev/urandom; sleep 4");
        using var first = _box.Start("run");
        RunningCli.WaitUntil(PartialExists, "the first run to start writing");
        var impatient = _box.Run("run", "--wait=1s");
        Assert.Equal(75, impatient.ExitCode);
        Assert.Contains("still held after waiting", impatient.Stderr, StringComparison.Ordinal);

        var queued = _box.Run("run", "--wait");
        Assert.True(queued.ExitCode == 0, queued.ToString());
        Assert.Contains("waiting up to 1d for the lock: another backstop run holds the lock", queued.Stderr, StringComparison.Ordinal);
        Assert.True(first.Wait().ExitCode == 0);
        Assert.Equal(2, System.Text.Json.JsonDocument.Parse(_box.Run("list", "--json").Stdout).RootElement.GetProperty("snapshots").EnumerateArray()
            .Count(s => s.GetProperty("source").GetString() == "slow" && s.GetProperty("valid").GetBoolean())); // the queued run backed up after the first

        var bad = _box.Run("run", "--wait=soon");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--wait soon", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void After_kill_9_the_next_run_cleans_up_and_earlier_snapshots_stay_good()
    {
        _box.Write("data/a.txt", "first");
        _box.Write("flag", "");
        Config("if [ -f flag ]; then echo quick; else head -c 3000000 /dev/urandom; sleep 60; fi");
        var good = _box.Run("run");
        Assert.True(good.ExitCode == 0, good.ToString());

        File.Delete(_box["flag"]);
        using (var victim = _box.Start("run", "--source", "slow"))
        {
            RunningCli.WaitUntil(PartialExists, "the run to be writing its artifact");
            victim.KillHard();
        }

        Assert.Contains(Sandbox.FilesUnder(_box["backups"]), f => f.EndsWith(".partial", StringComparison.Ordinal));

        _box.Write("flag", "");
        var next = _box.Run("run");
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.Contains("took over the lock", next.Stdout, StringComparison.Ordinal);
        Assert.Contains("was interrupted by a run that died; recorded as failed", next.Stdout, StringComparison.Ordinal);
        Assert.Contains("a snapshot folder without MANIFEST.json", next.Stdout, StringComparison.Ordinal);

        // Every snapshot folder left has its manifest; nothing partial remains.
        var files = Sandbox.FilesUnder(_box["backups"]);
        Assert.DoesNotContain(files, f => f.EndsWith(".partial", StringComparison.Ordinal));
        foreach (var folder in files.Select(f => Path.GetDirectoryName(f)!).Distinct())
        {
            Assert.Contains(Path.Combine(folder, "MANIFEST.json"), files);
        }

        var verify = _box.Run("verify", "--deep");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        var list = _box.Snapshots();
        Assert.Contains(list, s => s.GetProperty("state").GetString() == "failed" &&
                                   s.GetProperty("error").GetString()!.Contains("interrupted", StringComparison.Ordinal));
    }

    [Fact]
    public void Sigterm_mid_run_removes_what_it_wrote_and_records_the_snapshot_failed()
    {
        _box.Write("data/a.txt", "a");
        Config("head -c 3000000 /dev/urandom; sleep 60");
        using (var run = _box.Start("run", "--source", "slow"))
        {
            RunningCli.WaitUntil(PartialExists, "the run to be writing its artifact");
            run.Signal("TERM");
            var r = run.Wait(TimeSpan.FromSeconds(30));
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("interrupted", r.Stderr, StringComparison.Ordinal);
        }

        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
        Assert.Empty(Directory.GetFileSystemEntries(_box["state/staging"]));
        var list = _box.Snapshots().Single();
        Assert.Equal("failed", list.GetProperty("state").GetString());
        Assert.Contains("cancelled", list.GetProperty("error").GetString(), StringComparison.Ordinal);
        // The lock was released: the next run does not have to take it over.
        Assert.DoesNotContain("took over", _box.Run("run", "--source", "files").All, StringComparison.Ordinal);
    }
    [Fact]
    public void Ctrl_c_stops_a_run_and_its_child_within_2_seconds()
    {
        _box.Write("data/a.txt", "a");
        var marker = "^sleep 60." + Random.Shared.Next(100000, 999999).ToString(System.Globalization.CultureInfo.InvariantCulture); // this test's sleep only
        Config($"head -c 3000000 /dev/urandom; {marker[1..]}");
        using var run = _box.Start("run", "--source", "slow");
        RunningCli.WaitUntil(PartialExists, "the run to be writing its artifact");
        RunningCli.WaitUntil(() => Sandbox.Exec("pgrep", "-f", marker).ExitCode == 0, "the child to be running");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        run.Signal("INT");
        var r = run.Wait(TimeSpan.FromSeconds(30));
        clock.Stop();
        Assert.Equal(130, r.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"stopped after {clock.Elapsed.TotalSeconds:0.0}s");
        Assert.NotEqual(0, Sandbox.Exec("pgrep", "-f", marker).ExitCode); // the child is gone too
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void Ctrl_c_stops_a_restore_within_2_seconds_and_leaves_nothing_at_the_destination()
    {
        _box.Shell("mkdir -p data && head -c 300000000 /dev/urandom > data/big.bin");
        _box.WriteConfig(Yaml.LocalTarget() + "compression: { level: 1 }\nsources:\n  - { name: files, kind: files, paths: [./data] }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        using var restore = _box.Start("restore", "--source", "files", "--to", _box["out"]);
        RunningCli.WaitUntil(() => Directory.Exists(_box["out"]) && Sandbox.FilesUnder(_box["out"]).Count > 0, "the restore to be writing");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        restore.Signal("INT");
        var r = restore.Wait(TimeSpan.FromSeconds(30));
        clock.Stop();
        Assert.Equal(130, r.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"stopped after {clock.Elapsed.TotalSeconds:0.0}s");
        Assert.True(!Directory.Exists(_box["out"]) || Sandbox.FilesUnder(_box["out"]).Count == 0, string.Join(", ", Directory.Exists(_box["out"]) ? Sandbox.FilesUnder(_box["out"]) : []));
    }
}
