using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

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
        Assert.Contains($"pid {first.Pid}", second.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", second.All, StringComparison.Ordinal);
        var done = first.Wait();
        Assert.True(done.ExitCode == 0, done.ToString());
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
}
