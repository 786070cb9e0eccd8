using Backstop.Core.Plugins;
using Backstop.Targets.Local;
using Backstop.Targets.Memory;
using Backstop.Tests.Support;

namespace Backstop.Tests.Targets;

public sealed class LocalTargetConformance : TargetConformance, IDisposable
{
    private readonly TempDir _dir = new();

    public LocalTargetConformance() => Target = new LocalTarget("local", _dir["root"]);

    protected override ITarget Target { get; }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Temporary_files_are_hidden_partials_beside_the_final_name()
    {
        await using var upload = await Target.BeginPutAsync("s/1/f.zst", CancellationToken.None);
        var partials = Directory.GetFiles(_dir["root/s/1"]);
        Assert.Matches(@"/\.f\.zst\.[0-9a-f]{8}\.partial$", Assert.Single(partials));
    }

    [Fact]
    public async Task Deleting_the_last_object_removes_the_empty_folders()
    {
        await PutAsync("s/1/f.zst", [1]);
        await Target.DeleteAsync("s/1/f.zst", CancellationToken.None);
        Assert.False(Directory.Exists(_dir["root/s"]));
        Assert.True(Directory.Exists(_dir["root"]));
    }

    [Fact]
    public async Task Keys_cannot_escape_the_root()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Target.BeginPutAsync("../outside", CancellationToken.None));
    }
}

public sealed class MemoryTargetConformance : TargetConformance
{
    protected override ITarget Target { get; } = new MemoryTarget("memory");
}
