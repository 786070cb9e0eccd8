using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Restore;
using Backstop.Core.Retention;
using Backstop.Core.Run;
using Backstop.Core.Storage;
using Backstop.Core.Verify;
using Backstop.Targets.Memory;
using Backstop.Tests.Support;

namespace Backstop.Tests.Pipeline;

/// <summary>Verify, prune and restore meeting at their worst moments, made to happen deterministically through hooks.</summary>
public sealed class InterleavingTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly TestPlugins _plugins = new();
    private readonly MemoryTarget _target = new("m");

    public InterleavingTests() => _plugins.Targets["m"] = _target;

    public void Dispose() => _dir.Dispose();

    private BackstopConfig Config(string extra = "")
    {
        var yaml = $"catalog: ./catalog.db\npolicy: {{ min_copies: 1, rpo: 1h }}\n{extra}targets:\n  - {{ name: m, kind: test }}\nsources:\n  - {{ name: app, kind: test }}\n";
        return ConfigLoader.Parse(yaml, _dir.Write("backstop.yaml", yaml), _plugins.Registry);
    }

    private async Task<SnapshotInfo> BackUpAsync(BackstopConfig config, CatalogStore catalog) =>
        Assert.Single(await new BackupRunner(config, _plugins.Registry, catalog, new RunObserver()).RunAsync([], default));

    private static CopyInfo Copy(CatalogStore catalog, string snapshot) => catalog.Snapshot(snapshot)!.Artifacts[0].Copies.Single();

    [Fact]
    public async Task A_verify_never_resurrects_a_copy_pruned_while_it_ran()
    {
        var config = Config();
        using var catalog = CatalogStore.Open(config.CatalogPath);
        var s = await BackUpAsync(config, catalog);
        var verify = new VerifyRunner(config, _plugins.Registry, catalog)
        {
            // Checked (present, right size), then pruned before the result is recorded.
            BeforeRecording = () =>
            {
                catalog.SetCopy(s.Id, s.Artifacts[0].Name, new CopyInfo("m", CopyState.Pruned, DateTimeOffset.UtcNow, "pruned: test"));
                return Task.CompletedTask;
            },
        };
        var report = await verify.RunAsync([], deep: false, default);
        Assert.Equal(CopyState.Pruned, Copy(catalog, s.Id).State);
        Assert.Empty(report.Copies);
    }

    [Fact]
    public async Task A_verify_never_overwrites_a_newer_check()
    {
        var config = Config();
        using var catalog = CatalogStore.Open(config.CatalogPath);
        var s = await BackUpAsync(config, catalog);
        var key = Layout.Key("app", s.Id, s.Artifacts[0].FileName);
        var data = _target.Objects[key];
        await _target.DeleteAsync(key, default); // this pass finds it missing…
        var verify = new VerifyRunner(config, _plugins.Registry, catalog)
        {
            BeforeRecording = () =>
            {
                // …while a heal puts it back and records a newer check.
                _target.Replace(key, data);
                catalog.SetCopy(s.Id, s.Artifacts[0].Name, new CopyInfo("m", CopyState.Verified, DateTimeOffset.UtcNow.AddSeconds(1), null));
                return Task.CompletedTask;
            },
        };
        await verify.RunAsync([], deep: false, default);
        Assert.Equal(CopyState.Verified, Copy(catalog, s.Id).State);

        // Without the interleaving the same pass records what it finds.
        await _target.DeleteAsync(key, default);
        await new VerifyRunner(config, _plugins.Registry, catalog).RunAsync([], deep: false, default);
        Assert.Equal(CopyState.Missing, Copy(catalog, s.Id).State);
    }

    [Fact]
    public async Task A_restore_that_marks_between_the_prunes_check_and_its_marking_keeps_the_snapshot()
    {
        var config = Config("retention: { last: 1 }\n");
        using var catalog = CatalogStore.Open(config.CatalogPath);
        var old = await BackUpAsync(config, catalog);
        await Task.Delay(1100);
        await BackUpAsync(config, catalog);
        IDisposable? mark = null;
        var pruner = new Pruner(config, _plugins.Registry, catalog, new RunObserver())
        {
            BeforeMarkingPruned = id => mark = RestoreMarks.Mark(config, id),
        };
        var lines = await pruner.RunAsync([], dryRun: false, force: false, default);
        using (mark)
        {
            var line = Assert.Single(lines, l => l.Snapshot == old.Id);
            Assert.True(line.Keep);
            Assert.StartsWith("being restored (pid", line.Why, StringComparison.Ordinal);
            Assert.Equal(CopyState.Verified, Copy(catalog, old.Id).State);
            Assert.Contains(Layout.Key("app", old.Id, old.Artifacts[0].FileName), _target.Objects.Keys);
        }

        // Once the restore is gone, the next prune removes it.
        var again = await new Pruner(config, _plugins.Registry, catalog, new RunObserver()).RunAsync([], dryRun: false, force: false, default);
        Assert.False(Assert.Single(again, l => l.Snapshot == old.Id).Keep);
        Assert.Equal(CopyState.Pruned, Copy(catalog, old.Id).State);
    }
}
