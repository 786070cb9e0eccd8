using System.Diagnostics;
using Backstop.IntegrationTests.Support;
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace Backstop.IntegrationTests.Faults;

/// <summary>
/// Disks failing under a run: staging, a local target and the catalog on small tmpfs file systems that fill at random
/// moments, a target remounted read-only mid-run, and EIO from the tests' own FUSE file system (<see cref="EioFs"/>;
/// device-mapper's error target is not available here). Each time: a clear error naming the place and the cause, nothing
/// reported good that is not, nothing lost (earlier snapshots verify deep), and once the disk is back the next run
/// cleans up and commits.
/// </summary>
public sealed class DiskFaultTests(ITestOutputHelper output) : IDisposable
{
    private const int Moments = 4;
    private readonly Sandbox _box = new();
    private readonly int _seed = Random.Shared.Next();

    public void Dispose() => _box.Dispose();

    private void Data(int megabytes, Random random)
    {
        var bytes = new byte[megabytes << 20];
        random.NextBytes(bytes);
        File.WriteAllBytes(_box.Write($"data/{Guid.NewGuid():N}.bin", ""), bytes);
    }

    private void Config(string catalog = "./state/catalog.db", string staging = "./state/staging", string target = "./backups") =>
        _box.WriteConfig($"catalog: {catalog}\nstaging: {staging}\npolicy: {{ min_copies: 1, rpo: 24h }}\ntargets:\n  - {{ name: local, kind: local, path: {target} }}\n" +
                         "sources:\n  - { name: files, kind: files, paths: [./data] }\n");

    private List<string> Committed() =>
        [.. _box.Snapshots().Where(s => s.GetProperty("state").GetString() == "committed").Select(s => s.GetProperty("snapshot").GetString()!)];

    /// <summary>Runs `run` and, at a random moment of it, does the fault; returns the run's result and whether the run was still going.</summary>
    private (CliResult Run, bool During) RunWithFaultAt(TimeSpan within, Random random, Action fault)
    {
        var moment = TimeSpan.FromMilliseconds(random.NextDouble() * within.TotalMilliseconds);
        using var run = _box.Start("run");
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < moment && !run.HasExited)
        {
            Thread.Sleep(5);
        }

        var during = !run.HasExited;
        fault();
        var result = run.Wait(TimeSpan.FromMinutes(2));
        output.WriteLine($"fault at {moment.TotalMilliseconds:0} ms ({(during ? "during the run" : "after it")}): exit {result.ExitCode}: {result.All.Split('\n').LastOrDefault(l => l.Contains("FAILED", StringComparison.Ordinal) || l.Contains("committed", StringComparison.Ordinal))}");
        return (result, during);
    }

    /// <summary>A run that met the fault failed loudly with the cause, or committed what it could read back; never anything in between.</summary>
    private void Honest(CliResult run, IReadOnlyCollection<string> causes)
    {
        if (run.ExitCode == 0)
        {
            Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
            return;
        }

        Assert.True(run.ExitCode is 1 or 2 or 3, run.ToString());
        Assert.True(causes.Any(c => run.All.Contains(c, StringComparison.Ordinal)), $"the failure does not name its cause ({string.Join(" or ", causes)}): {run}");
        Assert.DoesNotContain("Unhandled exception", run.All, StringComparison.Ordinal);
        Assert.DoesNotContain("   at Backstop.", run.All, StringComparison.Ordinal);
    }

    /// <summary>Once the disk is back: a run commits, staging is empty, every folder on the target has its manifest, all verifies deep.</summary>
    private void Recovers(string target)
    {
        var next = _box.Run("run");
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_box["state/staging"]), e => !Path.GetFileName(e).StartsWith('.'));
        var files = Sandbox.FilesUnder(target);
        Assert.DoesNotContain(files, f => f.EndsWith(".partial", StringComparison.Ordinal));
        Assert.All(files.Where(f => f.Count(c => c == '/') == 2), f => Assert.Contains(f[..f.LastIndexOf('/')] + "/MANIFEST.json", files));
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
    }

    /// <summary>Adds rows of random bytes to a SQLite database (the sqlite source copies it into staging first).</summary>
    private void Rows(int megabytes, Random random)
    {
        using var db = new SqliteConnection($"Data Source={_box["app.db"]};Pooling=False");
        db.Open();
        using var create = db.CreateCommand();
        create.CommandText = "CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB)";
        create.ExecuteNonQuery();
        for (var i = 0; i < megabytes * 4; i++)
        {
            using var insert = db.CreateCommand();
            insert.CommandText = "INSERT INTO blobs (data) VALUES (@d)";
            var bytes = new byte[256 << 10];
            random.NextBytes(bytes);
            insert.Parameters.AddWithValue("@d", bytes);
            insert.ExecuteNonQuery();
        }
    }

    /// <summary>
    /// At <see cref="Moments"/> random moments of a run (after one good run): the data changes, the fault happens, the run
    /// ends, the fault is undone; the run was honest, nothing committed before is lost, and the next run recovers.
    /// </summary>
    private void AtRandomMoments(Action<Random> change, Action fault, Action undo, IReadOnlyCollection<string> causes, string target, Action? check = null)
    {
        var random = new Random(_seed);
        output.WriteLine($"seed {_seed}");
        var clock = Stopwatch.StartNew();
        Assert.Equal(0, _box.Run("run").ExitCode);
        var took = clock.Elapsed;
        var failed = 0;
        for (var i = 0; i < Moments; i++)
        {
            change(random);
            var before = Committed();
            var (run, _) = RunWithFaultAt(took, random, fault);
            undo();
            Honest(run, causes);
            failed += run.ExitCode == 0 ? 0 : 1;
            Assert.All(before, id => Assert.Contains(id, Committed())); // nothing committed before is lost
            check?.Invoke();
            Recovers(target);
        }

        output.WriteLine($"{failed} of {Moments} runs met the fault");
    }

    private Action Fill(string folder) => () => _box.Shell($"cat /dev/zero > {folder}/filler 2>/dev/null; true");

    private static Action Unfill(string folder) => () => File.Delete(Path.Combine(folder, "filler"));

    private static void CatalogIsWhole(string path)
    {
        using var db = new SqliteConnection($"Data Source={path};Pooling=False");
        db.Open();
        using var check = db.CreateCommand();
        check.CommandText = "PRAGMA integrity_check";
        Assert.Equal("ok", check.ExecuteScalar());
    }

    [Fact]
    public void Staging_that_fills_at_random_moments_fails_the_run_naming_it_and_the_next_run_cleans_up()
    {
        var staging = _box.Tmpfs("state/staging", "40m");
        Rows(6, new Random(_seed));
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: sqlite, path: ./app.db }\n");
        AtRandomMoments(r => Rows(2, r), Fill(staging), Unfill(staging),
            ["staging " + staging + " is full: no space left on device", "free space or set 'staging'"], _box["backups"]);
    }

    [Fact]
    public void A_local_target_that_fills_at_random_moments_fails_its_copy_and_leaves_nothing_half_written()
    {
        var target = _box.Tmpfs("backups", "64m");
        Data(6, new Random(_seed));
        Config();
        AtRandomMoments(r => Data(4, r), Fill(target), Unfill(target), ["no space left on device", "No space left on device", "is full", "B free at"], target);
    }

    [Fact]
    public void A_target_remounted_read_only_mid_run_fails_its_copy_named_and_the_next_run_removes_what_it_left()
    {
        var target = _box.Tmpfs("backups", "64m");
        Data(6, new Random(_seed));
        Config();
        AtRandomMoments(r => Data(4, r), () => Sandbox.Exec("mount", "-o", "remount,ro", target),
            () => Assert.Equal(0, Sandbox.Exec("mount", "-o", "remount,rw", target).ExitCode), ["Read-only file system", "read-only"], target);
    }

    [Fact]
    public void A_catalog_disk_that_fills_mid_run_fails_it_loudly_and_the_catalog_stays_whole()
    {
        var state = _box.Tmpfs("catalogdisk", "4m");
        Data(6, new Random(_seed));
        Config(catalog: "./catalogdisk/catalog.db");
        AtRandomMoments(r => Data(3, r), Fill(state), Unfill(state),
            ["disk is full", "the disk holding it is full", "disk of the catalog's folder is full", "a disk Backstop writes to is full"], _box["backups"], () =>
            {
                var status = _box.Run("status", "--json");
                Assert.True(status.ExitCode is 0 or 1, status.ToString());
                CatalogIsWhole(Path.Combine(state, "catalog.db"));
            });
    }

    [Fact]
    public void Kill_9_around_the_catalog_commit_leaves_a_whole_catalog_that_loses_nothing_committed()
    {
        // The last part of a run is its commit: the manifests, then one catalog transaction. Killed anywhere near it, the
        // catalog is whole (SQLite's WAL rolls back what was not committed), nothing committed before is lost, and a
        // snapshot is committed only if its copies are whole.
        var random = new Random(_seed);
        output.WriteLine($"seed {_seed}");
        Data(2, random);
        Config();
        Assert.Equal(0, _box.Run("run").ExitCode);
        var clock = Stopwatch.StartNew();
        Data(1, random);
        Assert.Equal(0, _box.Run("run").ExitCode);
        var took = clock.Elapsed;
        var killed = 0;
        for (var i = 0; i < 3 * Moments; i++)
        {
            Data(1, random);
            var before = Committed();
            using (var run = _box.Start("run"))
            {
                var moment = took * (0.6 + (random.NextDouble() * 0.45));
                var wait = Stopwatch.StartNew();
                while (wait.Elapsed < moment && !run.HasExited)
                {
                    Thread.Sleep(2);
                }

                if (!run.HasExited)
                {
                    run.KillHard();
                    killed++;
                }
            }

            CatalogIsWhole(_box["state/catalog.db"]);

            var after = Committed();
            Assert.All(before, id => Assert.Contains(id, after));
            Assert.Equal(0, _box.Run("verify").ExitCode); // whatever is committed, even by the killed run, is whole
        }

        output.WriteLine($"{killed} of {3 * Moments} runs killed near their commit");
        Recovers(_box["backups"]);
    }

    [Fact]
    public void EIO_reading_a_source_file_is_named_and_never_passes_for_a_whole_backup()
    {
        using var fs = new EioFs(_box["data-disk"], _box["data"]);
        File.WriteAllText(Path.Combine(_box["data"], "good.txt"), "good");
        File.WriteAllBytes(Path.Combine(_box["data"], "bad.bin"), new byte[200_000]);
        Config();
        fs.Fail("read bad.bin");
        var run = _box.Run("run");
        output.WriteLine(run.ToString());
        Assert.Contains("bad.bin", run.All, StringComparison.Ordinal);
        Assert.Contains("Input/output error", run.All, StringComparison.Ordinal);
        if (run.ExitCode == 0)
        {
            Assert.Contains("warn", run.All, StringComparison.OrdinalIgnoreCase);
        }

        fs.Fail();
        Recovers(_box["backups"]);
    }

    [Fact]
    public void EIO_from_the_target_on_write_or_read_back_fails_the_copy_and_the_disk_healed_lets_the_next_run_commit()
    {
        using var fs = new EioFs(_box["target-disk"], _box["backups"]);
        Data(2, new Random(_seed));
        Config();
        Assert.Equal(0, _box.Run("run").ExitCode);

        Data(1, new Random(_seed + 1));
        fs.Fail("write *");
        var write = _box.Run("run");
        Assert.Equal(1, write.ExitCode);
        Assert.Contains("Input/output error", write.All, StringComparison.Ordinal);
        Assert.Contains("target 'local'", write.All, StringComparison.Ordinal);

        fs.Fail("read files.tar");
        var read = _box.Run("run");
        output.WriteLine(read.ToString());
        Assert.Equal(1, read.ExitCode);
        Assert.Contains("Input/output error", read.All, StringComparison.Ordinal);
        var verify = _box.Run("verify", "--deep");
        Assert.Equal(1, verify.ExitCode); // the committed snapshot cannot be read back now: never reported good

        fs.Fail();
        Recovers(_box["backups"]);
    }
}
