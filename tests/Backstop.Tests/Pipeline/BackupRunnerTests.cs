using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Run;
using Backstop.Core.Storage;
using Backstop.Core.Verify;
using Backstop.Targets.Memory;
using Backstop.Tests.Support;

namespace Backstop.Tests.Pipeline;

/// <summary>The pipeline in-process, with memory targets: fast, and every failure path reachable.</summary>
public sealed class BackupRunnerTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly TestPlugins _plugins = new();

    public void Dispose() => _dir.Dispose();

    private BackstopConfig Config(string sources, int minCopies = 1, params string[] targets)
    {
        var t = string.Join("\n", targets.Select(n => $"  - {{ name: {n}, kind: test, timeout: 2s, retries: 1 }}"));
        var yaml = $"catalog: ./catalog.db\npolicy: {{ min_copies: {minCopies}, rpo: 1h }}\ntargets:\n{t}\nsources:\n{sources}\n";
        return ConfigLoader.Parse(yaml, _dir.Write("backstop.yaml", yaml), _plugins.Registry);
    }

    private static string Command(string name, string script, string extra = "") =>
        $"  - {{ name: {name}, kind: command, command: [/bin/sh, -c, '{script}'], artifact: out.txt{extra} }}";

    private async Task<(IReadOnlyList<SnapshotInfo> Results, CatalogStore Catalog)> RunAsync(BackstopConfig config, CancellationToken ct = default)
    {
        var catalog = CatalogStore.Open(config.CatalogPath);
        var results = await new BackupRunner(config, _plugins.Registry, catalog, new RunObserver()).RunAsync([], ct);
        return (results, catalog);
    }

    private MemoryTarget Memory(string name)
    {
        var t = new MemoryTarget(name);
        _plugins.Targets[name] = t;
        return t;
    }

    private FaultyTarget Faulty(string name)
    {
        var t = new FaultyTarget(name);
        _plugins.Targets[name] = t;
        return t;
    }

    [Fact]
    public async Task A_proven_snapshot_has_its_copy_verified_and_its_manifest_written_last()
    {
        var target = Memory("m");
        var (results, catalog) = await RunAsync(Config(Command("app", "printf hello-backstop"), 1, "m"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Committed, s.State);
            Assert.Equal(["m"], s.VerifiedTargets);
            Assert.Equal(14, s.RawBytes);
            var keys = target.Objects.Keys.ToList();
            Assert.Equal([$"app/{s.Id}/MANIFEST.json", $"app/{s.Id}/out.txt.zst"], keys.Order().ToList());
            var manifest = Manifest.Parse(target.Objects[$"app/{s.Id}/MANIFEST.json"]);
            Assert.Equal(s.Artifacts[0].Sha256, manifest.Artifacts[0].Sha256);
            Assert.Equal(System.Security.Cryptography.SHA256.HashData(target.Objects[$"app/{s.Id}/out.txt.zst"]),
                Convert.FromHexString(manifest.Artifacts[0].Sha256));
            Assert.True(Assert.Single(catalog.Snapshots()).IsValid(1));
        }
    }

    [Fact]
    public async Task A_target_that_silently_corrupts_never_gets_a_verified_copy()
    {
        var target = Faulty("nas");
        target.CorruptSilently = true;
        var (results, catalog) = await RunAsync(Config(Command("app", "printf hello-backstop"), 1, "nas"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Failed, s.State);
            Assert.Contains("read back differs from the bytes written (XXH3-128)", s.Error, StringComparison.Ordinal);
            Assert.Empty(target.Inner.Objects);
            Assert.Equal(SourceState.Never, StatusReport.Compute(Config(Command("app", "x"), 1, "nas"), catalog, DateTimeOffset.UtcNow)[0].State);
        }
    }

    [Fact]
    public async Task A_full_target_fails_the_copy_with_the_numbers_and_leaves_nothing()
    {
        var target = Faulty("nas");
        target.FailWrites = new IOException("No space left on device", 28);
        var (results, catalog) = await RunAsync(Config(Command("app", "head -c 3000000 /dev/urandom"), 1, "nas"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Failed, s.State);
            Assert.Contains("target 'nas' is full: no space left on device", s.Error, StringComparison.Ordinal);
            Assert.Contains("free", s.Error, StringComparison.Ordinal);
            Assert.Empty(target.Inner.Objects);
            Assert.Empty(target.Inner.Pending);
        }
    }

    [Fact]
    public async Task One_failing_target_of_two_is_a_degraded_snapshot_when_one_copy_is_enough()
    {
        Memory("local");
        Faulty("nas").FailWrites = new IOException("connection reset");
        var config = Config(Command("app", "printf data"), 1, "local", "nas");
        var (results, catalog) = await RunAsync(config);
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Committed, s.State);
            Assert.Equal(["local"], s.VerifiedTargets);
            var status = StatusReport.Compute(config, catalog, DateTimeOffset.UtcNow)[0];
            Assert.Equal(SourceState.Degraded, status.State);
            Assert.Contains(status.Reasons, r => r.StartsWith("no verified copy on target 'nas' (failed: ", StringComparison.Ordinal)
                                                 && r.Contains("connection reset", StringComparison.Ordinal));
            var nas = status.LastValid!.Copies["nas"];
            Assert.Equal("failed", nas.State);
            Assert.Contains("connection reset", nas.Error, StringComparison.Ordinal);
            Assert.Equal(new CopyStatus("verified", null), status.LastValid.Copies["local"]);
            Assert.NotEmpty(StatusReport.DegradedReasons(config.Sources[0], s));
        }
    }

    [Fact]
    public async Task Without_an_expect_block_an_emptied_source_fails_and_accept_shrink_takes_it_once_and_restarts_history()
    {
        Memory("m");
        var config = Config("  - { name: app, kind: test }", 1, "m");
        using var catalog = CatalogStore.Open(config.CatalogPath);
        async Task<SnapshotInfo> Run(bool accept = false) =>
            Assert.Single(await new BackupRunner(config, _plugins.Registry, catalog, new RunObserver()) { AcceptShrink = accept }.RunAsync([], default));

        _plugins.Reported = new() { ["items"] = 30 };
        Assert.Equal(SnapshotState.Committed, (await Run()).State);

        _plugins.Reported = new() { ["items"] = 0 };
        var emptied = await Run();
        Assert.Equal(SnapshotState.Failed, emptied.State);
        Assert.Contains("items fell to 0 from 30", emptied.Error, StringComparison.Ordinal);
        Assert.Contains("--source app --accept-shrink", emptied.Error, StringComparison.Ordinal);

        var accepted = await Run(accept: true);
        Assert.Equal(SnapshotState.Committed, accepted.State);
        Assert.Contains(accepted.Warnings, w => w.StartsWith("accepted: items fell to 0 from 30", StringComparison.Ordinal));
        Assert.Empty(StatusReport.DegradedReasons(config.Sources[0], accepted));

        // History restarts at the accepted snapshot: the same emptiness is not refused again.
        Assert.Equal(SnapshotState.Committed, (await Run()).State);
    }

    [Fact]
    public async Task Facts_the_format_check_did_not_rederive_are_marked_reported_in_the_catalog_and_manifest()
    {
        var target = Memory("m");
        _plugins.Reported = new() { ["items"] = 3 };
        var (unchecked_, catalog) = await RunAsync(Config("  - { name: app, kind: test }", 1, "m"));
        using (catalog)
        {
            var s = Assert.Single(unchecked_);
            Assert.Equal(["items"], catalog.Snapshot(s.Id)!.Artifacts[0].Reported);
            Assert.Equal(["items"], Manifest.Parse(target.Objects[$"app/{s.Id}/MANIFEST.json"]).Artifacts[0].Reported);
        }

        _plugins.Found = () => new Dictionary<string, long> { ["items"] = 3 };
        var (checkedRun, catalog2) = await RunAsync(Config("  - { name: app2, kind: test }", 1, "m"));
        using (catalog2)
        {
            Assert.Empty(catalog2.Snapshot(Assert.Single(checkedRun).Id)!.Artifacts[0].Reported);
        }
    }

    [Fact]
    public async Task A_first_snapshot_that_holds_nothing_is_degraded_unless_allow_empty()
    {
        Memory("m");
        _plugins.Reported = new() { ["items"] = 0 };
        var (results, catalog) = await RunAsync(Config("  - { name: app, kind: test }", 1, "m"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Committed, s.State);
            var status = StatusReport.Compute(Config("  - { name: app, kind: test }", 1, "m"), catalog, DateTimeOffset.UtcNow)[0];
            Assert.Equal(SourceState.Degraded, status.State);
            Assert.Contains(status.Reasons, r => r.Contains("the first snapshot holds nothing (items 0)", StringComparison.Ordinal));
        }

        var allowed = Config("  - { name: other, kind: test, expect: { allow_empty: true } }", 1, "m");
        using var catalog2 = CatalogStore.Open(allowed.CatalogPath);
        var s2 = Assert.Single(await new BackupRunner(allowed, _plugins.Registry, catalog2, new RunObserver()).RunAsync([], default));
        Assert.Empty(StatusReport.DegradedReasons(allowed.Sources[0], s2));
    }

    [Fact]
    public async Task A_heal_never_copies_a_source_copy_that_no_longer_matches()
    {
        var local = Memory("local");
        var nas = Faulty("nas");
        nas.FailWrites = new IOException("connection reset");
        var config = Config(Command("app", "printf data-to-heal"), 1, "local", "nas");
        using var catalog = CatalogStore.Open(config.CatalogPath);
        var first = Assert.Single(await new BackupRunner(config, _plugins.Registry, catalog, new RunObserver()).RunAsync([], default));
        var key = $"app/{first.Id}/out.txt.zst";

        // The only good copy rots on the local disk (same size, other bytes); the NAS is back.
        var rotten = local.Objects[key].ToArray();
        rotten[^1] ^= 0xff;
        local.Replace(key, rotten);
        nas.FailWrites = null;
        await Task.Delay(1100);
        await new BackupRunner(config, _plugins.Registry, catalog, new RunObserver()).RunAsync([], default);

        Assert.DoesNotContain(key, nas.Inner.Objects.Keys); // nothing committed from the rotten copy
        var copy = catalog.Snapshot(first.Id)!.Artifacts[0].Copies.Single(c => c.Target == "nas");
        Assert.NotEqual(CopyState.Verified, copy.State);
        Assert.Contains("the copy to heal from (copy on target 'local'", copy.Error, StringComparison.Ordinal);
        Assert.Contains("no longer matches", copy.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_format_check_tool_that_fails_in_a_deep_verify_never_calls_a_good_copy_corrupt()
    {
        Memory("m");
        _plugins.Found = () => new Dictionary<string, long> { ["items"] = 1 };
        var config = Config("  - { name: app, kind: test }", 1, "m");
        using var catalog = CatalogStore.Open(config.CatalogPath);
        var s = Assert.Single(await new BackupRunner(config, _plugins.Registry, catalog, new RunObserver()).RunAsync([], default));

        _plugins.Found = () => throw new Backstop.Core.Plugins.CheckToolException("redis-check-rdb refused an RDB whose own checks pass");
        var report = await new VerifyRunner(config, _plugins.Registry, catalog).RunAsync([], deep: true, default);
        var copy = Assert.Single(report.Copies);
        Assert.Equal(CopyState.Failed, copy.State);
        Assert.Contains("matches its SHA-256, but its format check could not run", copy.Error, StringComparison.Ordinal);
        Assert.Equal(s.Id, copy.Snapshot);
    }

    [Fact]
    public async Task Min_copies_not_reached_fails_the_snapshot_and_removes_the_good_copy()
    {
        var local = Memory("local");
        Faulty("nas").FailWrites = new IOException("connection reset");
        var (results, catalog) = await RunAsync(Config(Command("app", "printf data"), 2, "local", "nas"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Failed, s.State);
            Assert.Contains("1 of 2 target(s) hold a verified copy, 2 needed", s.Error, StringComparison.Ordinal);
            Assert.Contains("connection reset", s.Error, StringComparison.Ordinal);
            Assert.Empty(local.Objects);
        }
    }

    [Fact]
    public async Task A_failing_command_records_why_and_stores_nothing()
    {
        var target = Memory("m");
        var (results, catalog) = await RunAsync(Config(Command("app", "echo connection refused >&2; exit 3"), 1, "m"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Failed, s.State);
            Assert.Contains("exited with code 3: connection refused", s.Error, StringComparison.Ordinal);
            Assert.Empty(target.Objects);
        }
    }

    [Fact]
    public async Task Folders_without_a_manifest_are_removed_by_the_next_run_when_nobody_can_still_be_writing_them()
    {
        var target = Memory("m");
        var old = DateTimeOffset.UtcNow.AddDays(-2);
        target.Replace("app/20250101T000000Z-abcd/out.txt.zst", [1, 2, 3], old);
        target.Replace("app/20250101T000001Z-abcd/out.txt.zst", [1, 2, 3], old);
        target.Replace("app/20250101T000001Z-abcd/MANIFEST.json", [1], old);
        target.Replace("app/20250101T000002Z-abcd/out.txt.zst", [1, 2, 3]); // unknown and recent: another host may be writing it
        target.Replace("other-config-source/20250101T000000Z-abcd/x.zst", [1], old);
        target.Replace("someone-else/notes.txt", [1], old);
        var (_, catalog) = await RunAsync(Config(Command("app", "printf x"), 1, "m"));
        catalog.Dispose();
        Assert.DoesNotContain(target.Objects.Keys, k => k.StartsWith("app/20250101T000000Z-abcd/", StringComparison.Ordinal));
        Assert.Contains("app/20250101T000001Z-abcd/MANIFEST.json", target.Objects.Keys);
        Assert.Contains("app/20250101T000002Z-abcd/out.txt.zst", target.Objects.Keys);
        Assert.Contains("other-config-source/20250101T000000Z-abcd/x.zst", target.Objects.Keys);
        Assert.Contains("someone-else/notes.txt", target.Objects.Keys);
    }

    [Fact]
    public async Task The_staging_of_a_committed_snapshot_and_a_dead_restores_spool_are_removed_by_the_next_run()
    {
        var config = Config(Command("app", "printf data"), 1, "m");
        Memory("m");
        var (first, c1) = await RunAsync(config);
        c1.Dispose();
        var id = Assert.Single(first).Id;
        var spent = Path.Combine(config.StagingPath, id); // killed after the commit, before its staging was removed
        Directory.CreateDirectory(spent);
        await File.WriteAllTextAsync(Path.Combine(spent, "app.dump"), "a whole dump");
        var deadSpool = Path.Combine(config.StagingPath, ".backstop-spool-999999999-0badf00d-db.dump.zst"); // no such process
        var liveSpool = Path.Combine(config.StagingPath, $".backstop-spool-{Environment.ProcessId}-0badf00d-db.dump.zst");
        await File.WriteAllTextAsync(deadSpool, "spooled");
        await File.WriteAllTextAsync(liveSpool, "spooled");

        var (_, c2) = await RunAsync(config);
        c2.Dispose();
        Assert.False(Directory.Exists(spent));
        Assert.False(File.Exists(deadSpool));
        Assert.True(File.Exists(liveSpool)); // a running restore's
    }

    [Fact]
    public async Task Temporary_objects_left_in_a_committed_snapshot_by_a_killed_upload_are_removed_by_the_next_run()
    {
        var target = Memory("m");
        var config = Config(Command("app", "printf data"), 1, "m");
        var (first, c1) = await RunAsync(config);
        c1.Dispose();
        var id = Assert.Single(first).Id;
        await using (var upload = await target.BeginPutAsync($"app/{id}/.out.txt.zst.0badf00d.partial", CancellationToken.None))
        {
            await upload.WriteAsync(new byte[] { 1, 2 }, CancellationToken.None);
            await upload.CommitAsync(CancellationToken.None);
        }

        var (_, c2) = await RunAsync(config);
        c2.Dispose();
        Assert.DoesNotContain($"app/{id}/.out.txt.zst.0badf00d.partial", target.Objects.Keys);
        Assert.Contains($"app/{id}/out.txt.zst", target.Objects.Keys);
        Assert.Contains($"app/{id}/MANIFEST.json", target.Objects.Keys);
    }

    [Fact]
    public async Task A_target_whose_writes_hang_and_ignore_cancellation_fails_its_copy_at_the_timeout()
    {
        Memory("local");
        Faulty("nas").HangWrites = true;
        var config = Config(Command("app", "printf data"), 1, "local", "nas");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (results, catalog) = await RunAsync(config);
        using (catalog)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Committed, s.State);
            var nas = s.Artifacts[0].Copies.Single(c => c.Target == "nas");
            Assert.Equal(CopyState.Failed, nas.State);
            Assert.Contains("target 'nas': write of app/", nas.Error, StringComparison.Ordinal);
            Assert.Contains("did not finish within 2s", nas.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_next_run_heals_a_failed_copy_from_a_verified_one_and_records_it()
    {
        var local = Memory("local");
        var nas = Faulty("nas");
        nas.FailWrites = new IOException("connection reset by peer");
        var config = Config(Command("app", "printf data-to-keep"), 1, "local", "nas");
        var (first, c1) = await RunAsync(config);
        c1.Dispose();
        var id = Assert.Single(first).Id;
        Assert.Equal(["local"], first[0].VerifiedTargets);
        Assert.DoesNotContain($"app/{id}/out.txt.zst", nas.Inner.Objects.Keys);

        nas.FailWrites = null;
        var (_, catalog) = await RunAsync(config);
        using (catalog)
        {
            var healed = catalog.Snapshots("app").Single(s => s.Id == id);
            Assert.Equal(["local", "nas"], healed.VerifiedTargets);
            Assert.Equal(local.Objects[$"app/{id}/out.txt.zst"], nas.Inner.Objects[$"app/{id}/out.txt.zst"]);
            Assert.Equal(local.Objects[$"app/{id}/MANIFEST.json"], nas.Inner.Objects[$"app/{id}/MANIFEST.json"]);
            Assert.Contains(catalog.Events(), e => e.Message.Contains("healed onto 'nas'", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_heal_onto_a_target_that_corrupts_is_recorded_failed_and_never_verified()
    {
        Memory("local");
        var nas = Faulty("nas");
        nas.FailWrites = new IOException("no route to host");
        var config = Config(Command("app", "printf data"), 1, "local", "nas");
        var (_, c1) = await RunAsync(config);
        c1.Dispose();
        nas.FailWrites = null;
        nas.CorruptSilently = true;
        var (_, catalog) = await RunAsync(config);
        using (catalog)
        {
            var first = catalog.Snapshots("app")[0];
            Assert.Equal(["local"], first.VerifiedTargets);
            Assert.Equal(CopyState.Corrupt, first.Artifacts[0].Copies.Single(c => c.Target == "nas").State);
            Assert.DoesNotContain($"app/{first.Id}/MANIFEST.json", nas.Inner.Objects.Keys);
        }
    }

    [Fact]
    public async Task A_committed_snapshot_whose_manifest_vanished_is_never_swept()
    {
        var target = Memory("m");
        var config = Config(Command("app", "printf data"), 1, "m");
        var (first, c1) = await RunAsync(config);
        c1.Dispose();
        var id = Assert.Single(first).Id;
        await target.DeleteAsync($"app/{id}/MANIFEST.json", CancellationToken.None);
        var (_, c2) = await RunAsync(config);
        c2.Dispose();
        Assert.Contains($"app/{id}/out.txt.zst", target.Objects.Keys);
    }

    [Fact]
    public async Task A_target_that_cannot_be_reached_fails_only_its_copy_when_others_suffice()
    {
        Memory("local");
        Faulty("nas").FailProbe = "connection to 127.0.0.1:22 refused";
        var config = Config(Command("app", "printf data"), 1, "local", "nas");
        var (results, catalog) = await RunAsync(config);
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Committed, s.State);
            var nas = s.Artifacts[0].Copies.Single(c => c.Target == "nas");
            Assert.Equal(CopyState.Failed, nas.State);
            Assert.Contains("connection to 127.0.0.1:22 refused", nas.Error, StringComparison.Ordinal);
            Assert.Equal(SourceState.Degraded, StatusReport.Compute(config, catalog, DateTimeOffset.UtcNow)[0].State);
        }
    }

    [Fact]
    public async Task Too_few_reachable_targets_fail_at_preflight_before_any_capture()
    {
        Memory("local");
        Faulty("nas").FailProbe = "connection refused";
        var (results, catalog) = await RunAsync(Config(Command("app", "touch captured; printf data"), 2, "local", "nas"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Failed, s.State);
            Assert.Contains("target 'nas': connection refused (1 of 2 targets ready, 2 needed)", s.Error, StringComparison.Ordinal);
            Assert.False(File.Exists(_dir["captured"]));
        }
    }

    private sealed class BrokenDisplay : RunObserver
    {
        public override void SourceFinished(SnapshotInfo result) => throw new IOException("Broken pipe");

        public override void ArtifactFinished(ArtifactProgress progress) => throw new IOException("Broken pipe");
    }

    [Fact]
    public async Task A_display_that_fails_never_undoes_a_proven_snapshot()
    {
        var target = Memory("m");
        var config = Config(Command("app", "printf data"), 1, "m");
        using var catalog = CatalogStore.Open(config.CatalogPath);
        var results = await new BackupRunner(config, _plugins.Registry, catalog, new BrokenDisplay()).RunAsync([], CancellationToken.None);
        Assert.Equal(SnapshotState.Committed, Assert.Single(results).State);
        Assert.Contains(target.Objects.Keys, k => k.EndsWith("MANIFEST.json", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_snapshot_left_running_by_a_dead_run_is_recorded_as_failed()
    {
        Memory("m");
        var config = Config(Command("app", "printf x"), 1, "m");
        using (var catalog = CatalogStore.Open(config.CatalogPath))
        {
            catalog.BeginSnapshot("20250101T000000Z-dead", "app", "command", DateTimeOffset.UtcNow.AddMinutes(-5), "host");
        }

        var (_, c) = await RunAsync(config);
        using (c)
        {
            var dead = c.Snapshot("20250101T000000Z-dead")!;
            Assert.Equal(SnapshotState.Failed, dead.State);
            Assert.Contains("interrupted", dead.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Cancelling_a_run_removes_what_it_wrote_and_records_the_snapshot_failed()
    {
        var target = Memory("m");
        var config = Config(Command("app", "head -c 2000000 /dev/urandom; sleep 30"), 1, "m");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1.5));
        var catalog = CatalogStore.Open(config.CatalogPath);
        using (catalog)
        {
            var run = new BackupRunner(config, _plugins.Registry, catalog, new RunObserver()).RunAsync([], cts.Token);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
            var s = Assert.Single(catalog.Snapshots());
            Assert.Equal(SnapshotState.Failed, s.State);
            Assert.Contains("cancelled", s.Error, StringComparison.Ordinal);
            Assert.Empty(target.Objects);
            Assert.Empty(target.Pending);
        }
    }

    [Fact]
    public async Task A_command_that_hangs_is_killed_at_its_timeout()
    {
        Memory("m");
        var (results, catalog) = await RunAsync(Config(Command("app", "sleep 30", ", timeout: 1s"), 1, "m"));
        using (catalog)
        {
            Assert.Contains("timed out after 1s and was killed", Assert.Single(results).Error, StringComparison.Ordinal);
        }
    }

    private const string TestSource = "  - { name: t, kind: test }";

    [Fact]
    public async Task Content_that_does_not_hold_what_the_source_reported_fails_the_snapshot()
    {
        var target = Memory("m");
        _plugins.Content = new byte[3_000_000];
        _plugins.Reported = new() { ["items"] = 38 };
        _plugins.Found = () => new Dictionary<string, long> { ["items"] = 3 };
        var (results, catalog) = await RunAsync(Config(TestSource, 1, "m"));
        using (catalog)
        {
            var s = Assert.Single(results);
            Assert.Equal(SnapshotState.Failed, s.State);
            Assert.Equal("artifact test.bin does not hold what the source reported: items: 3 in the content, 38 reported by the source", s.Error);
            Assert.Empty(target.Objects);
        }
    }

    [Fact]
    public async Task Content_that_fails_its_format_check_fails_the_snapshot()
    {
        Memory("m");
        _plugins.Found = () => throw new Backstop.Core.Plugins.BackupException("not a tar: bad header checksum");
        var (results, catalog) = await RunAsync(Config(TestSource, 1, "m"));
        using (catalog)
        {
            Assert.Equal("artifact test.bin fails its format check: not a tar: bad header checksum", Assert.Single(results).Error);
        }
    }

    [Fact]
    public async Task Content_whose_check_agrees_is_committed()
    {
        Memory("m");
        _plugins.Found = () => new Dictionary<string, long> { ["items"] = 1 };
        var (results, catalog) = await RunAsync(Config(TestSource, 1, "m"));
        using (catalog)
        {
            Assert.Equal(SnapshotState.Committed, Assert.Single(results).State);
        }
    }
}
