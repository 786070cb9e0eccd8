using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Run;

/// <summary>Disk space never checked, in the audit: here a full target fails loudly with the numbers, and leaves nothing.</summary>
public sealed class DiskFullTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public void A_target_that_fills_up_during_the_run_fails_cleanly()
    {
        var target = _box.Tmpfs("small-target", "1m");
        _box.Shell("mkdir -p data && head -c 4000000 /dev/urandom > data/random.bin");
        _box.WriteConfig(Yaml.LocalTarget(target) + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("target 'local' is full: no space left on device", run.All, StringComparison.Ordinal);
        Assert.Contains("free", run.All, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(target));
        Assert.Empty(Directory.GetFileSystemEntries(_box["state/staging"]));
    }

    [Fact]
    public void Preflight_refuses_a_target_without_room_for_the_expected_size()
    {
        var target = _box.Tmpfs("small-target", "3m");
        _box.Shell("mkdir -p data && head -c 1500000 /dev/urandom > data/random.bin");
        _box.WriteConfig(Yaml.LocalTarget(target) + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var before = Sandbox.FilesUnder(target);
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("(×1.5) is needed; free space or move the target", run.All, StringComparison.Ordinal);
        Assert.Equal(before, Sandbox.FilesUnder(target));
    }
}
