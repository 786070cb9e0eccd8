using Backstop.Core.Plugins;
using Backstop.Targets.Local;
using Backstop.Targets.Memory;
using Backstop.Tests.Support;

namespace Backstop.Tests.Targets;

public sealed class LocalTargetConformance : TargetConformance, IDisposable
{
    private readonly TempDir _dir = new();

    public LocalTargetConformance()
    {
        Directory.CreateDirectory(_dir["root"]);
        Target = new LocalTarget("local", _dir["root"]);
    }

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
    public async Task The_sweep_removes_empty_folders_under_idle_sources_only()
    {
        Directory.CreateDirectory(_dir["root/s/20250101T000000Z-0001/deeper"]);
        Directory.CreateDirectory(_dir["root/busy/20250101T000000Z-0002"]);
        await PutAsync("s/20250101T000000Z-0003/f.zst", [1]);
        var said = await Target.SweepLeftoversAsync(["s/"], CancellationToken.None);
        Assert.Equal(2, said.Count); // the folder and the one inside it
        Assert.False(Directory.Exists(_dir["root/s/20250101T000000Z-0001"]));
        Assert.True(Directory.Exists(_dir["root/busy/20250101T000000Z-0002"])); // a source with a snapshot running is not asked
        Assert.True(File.Exists(_dir["root/s/20250101T000000Z-0003/f.zst"]));
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
    public async Task A_folder_whose_parent_is_missing_is_never_created()
    {
        var unmounted = new LocalTarget("nas", _dir["mnt/nas/backstop"]);
        var e = await Assert.ThrowsAsync<BackupException>(() => unmounted.ProbeAsync(CancellationToken.None));
        Assert.Contains("nor does its parent", e.Message, StringComparison.Ordinal);
        Assert.Contains("mounted", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<BackupException>(() => unmounted.BeginPutAsync("s/1/f.zst", CancellationToken.None));
        Assert.False(Directory.Exists(_dir["mnt"]));

        // An empty parent is an unmounted mount point's look: still refused.
        Directory.CreateDirectory(_dir["mnt/nas"]);
        e = await Assert.ThrowsAsync<BackupException>(() => unmounted.ProbeAsync(CancellationToken.None));
        Assert.Contains("is empty and not a mount point, as an unmounted mount point is", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_dir["mnt/nas/backstop"]));

        // The leaf alone is created when its parent is there and holds something.
        _dir.Write("mnt/nas/other-share-data.txt", "x");
        await unmounted.ProbeAsync(CancellationToken.None);
        Assert.True(Directory.Exists(_dir["mnt/nas/backstop"]));
    }

    [Fact]
    public async Task A_marker_must_be_in_the_folder_before_and_during_a_run()
    {
        var share = new LocalTarget("nas", _dir["share"], ".backstop-target");
        var e = await Assert.ThrowsAsync<BackupException>(() => share.ProbeAsync(CancellationToken.None));
        Assert.Contains("marker", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_dir["share"])); // never created when a marker is configured

        Directory.CreateDirectory(_dir["share"]);
        e = await Assert.ThrowsAsync<BackupException>(() => share.ProbeAsync(CancellationToken.None));
        Assert.Contains("the marker file .backstop-target is not in", e.Message, StringComparison.Ordinal);
        _dir.Write("share/.backstop-target", "");
        await share.ProbeAsync(CancellationToken.None);

        // Unmounted mid-run: the next object is refused rather than written onto the mount point.
        File.Delete(_dir["share/.backstop-target"]);
        await Assert.ThrowsAsync<BackupException>(() => share.BeginPutAsync("s/1/f.zst", CancellationToken.None));
        Assert.False(Directory.Exists(_dir["share/s"]));
    }

    [Fact]
    public async Task A_read_back_reads_the_disk_not_the_page_cache()
    {
        var data = new byte[4 << 20];
        Random.Shared.NextBytes(data);
        await PutAsync("s/1/big.zst", data); // committed: written and fsynced, so its pages are clean and still cached
        var file = _dir["root/s/1/big.zst"];
        Assert.True(CachedPages(file) > 0, "a freshly written file should be in the page cache");
        await using (await Target.OpenReadAsync("s/1/big.zst", CancellationToken.None))
        {
            Assert.Equal(0, CachedPages(file)); // dropped before the first byte is read
        }
    }

    /// <summary>Resident pages of a file, from util-linux's fincore.</summary>
    private static long CachedPages(string file)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("fincore", ["--bytes", "--noheadings", "--output", "PAGES", file]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return long.Parse(output, System.Globalization.CultureInfo.InvariantCulture);
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
