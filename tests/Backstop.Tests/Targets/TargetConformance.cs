using System.Security.Cryptography;
using Backstop.Core.Plugins;

namespace Backstop.Tests.Targets; // compiled into both test projects: fast targets here, server-backed ones there

/// <summary>What every target must do, run against each one (like restic's backend test suite).</summary>
public abstract class TargetConformance
{
    protected abstract ITarget Target { get; }

    private static CancellationToken Ct => CancellationToken.None;

    protected async Task PutAsync(string key, byte[] data)
    {
        await using var upload = await Target.BeginPutAsync(key, Ct);
        for (var i = 0; i < data.Length; i += 1 << 20)
        {
            await upload.WriteAsync(data.AsMemory(i, Math.Min(1 << 20, data.Length - i)), Ct);
        }

        await upload.CommitAsync(Ct);
    }

    protected async Task<byte[]> ReadAsync(string key)
    {
        await using var s = await Target.OpenReadAsync(key, Ct);
        var m = new MemoryStream();
        await s.CopyToAsync(m, Ct);
        return m.ToArray();
    }

    private async Task<List<ObjectInfo>> ListAsync(string prefix)
    {
        var list = new List<ObjectInfo>();
        await foreach (var o in Target.ListAsync(prefix, Ct))
        {
            list.Add(o);
        }

        return list;
    }

    [Fact]
    public async Task Put_then_read_stat_list_and_delete()
    {
        await Target.ProbeAsync(Ct);
        var data = RandomNumberGenerator.GetBytes(100_000);
        await PutAsync("src/20250101T000000Z-0001/a.zst", data);
        Assert.Equal(data, await ReadAsync("src/20250101T000000Z-0001/a.zst"));
        Assert.Equal(100_000, (await Target.StatAsync("src/20250101T000000Z-0001/a.zst", Ct))!.Size);
        Assert.Equal(["src/20250101T000000Z-0001/a.zst"], (await ListAsync("src/")).Select(o => o.Key));
        await Target.DeleteAsync("src/20250101T000000Z-0001/a.zst", Ct);
        Assert.Null(await Target.StatAsync("src/20250101T000000Z-0001/a.zst", Ct));
        Assert.Empty(await ListAsync("src/"));
    }

    /// <summary>An upload abandoned before its first byte (a run killed there) leaves nothing a sweep keeps; objects stay.</summary>
    [Fact]
    public async Task A_sweep_removes_what_an_abandoned_upload_left_and_keeps_every_object()
    {
        await Target.ProbeAsync(Ct);
        await PutAsync("src/20250101T000000Z-0002/keep.zst", [1, 2, 3]);
        await (await Target.BeginPutAsync("src/20250101T000000Z-0003/lost.zst", Ct)).DisposeAsync();
        await Target.SweepLeftoversAsync(["src/"], Ct);
        Assert.Equal(["src/20250101T000000Z-0002/keep.zst"], (await ListAsync("src/")).Select(o => o.Key));
        Assert.Equal([1, 2, 3], await ReadAsync("src/20250101T000000Z-0002/keep.zst"));
        Assert.Empty(await Target.SweepLeftoversAsync(["src/"], Ct)); // nothing more to remove
        await PutAsync("src/20250101T000000Z-0003/again.zst", [4]); // a folder swept can be written again
        Assert.Equal([4], await ReadAsync("src/20250101T000000Z-0003/again.zst"));
    }

    [Fact]
    public async Task An_object_is_invisible_at_its_key_until_committed_and_gone_if_abandoned()
    {
        await using (var upload = await Target.BeginPutAsync("s/x/pending.zst", Ct))
        {
            await upload.WriteAsync(new byte[] { 1, 2, 3 }, Ct);
            Assert.Null(await Target.StatAsync("s/x/pending.zst", Ct));
        }

        Assert.Null(await Target.StatAsync("s/x/pending.zst", Ct));
        Assert.Empty(await ListAsync("s/"));
    }

    [Fact]
    public async Task A_missing_object_is_reported_as_missing()
    {
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => Target.OpenReadAsync("nope/nope/nope", Ct));
        Assert.Null(await Target.StatAsync("nope/nope/nope", Ct));
        await Target.DeleteAsync("nope/nope/nope", Ct);
    }

    [Fact]
    public async Task Large_objects_stream_through()
    {
        var data = new byte[24 << 20];
        new Random(3).NextBytes(data);
        await PutAsync("big/1/blob", data);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(await ReadAsync("big/1/blob")));
    }

    [Fact]
    public async Task Unicode_names_round_trip()
    {
        await PutAsync("données/2025/résumé-日本.zst", [42]);
        Assert.Equal([42], await ReadAsync("données/2025/résumé-日本.zst"));
        Assert.Single(await ListAsync("données/"));
    }

    [Fact]
    public async Task Concurrent_puts_do_not_mix()
    {
        var blobs = Enumerable.Range(0, 8).Select(i => RandomNumberGenerator.GetBytes(50_000 + i)).ToArray();
        // Not "c/1/1": rclone 1.60 resolves "remote:c/1/" as the file c/1/1 when one exists, and refuses the move into
        // that folder. Backstop's keys never name a file like its folder (source/snapshot-id/artifact.zst).
        await Task.WhenAll(blobs.Select((b, i) => PutAsync($"c/1/blob-{i}", b)));
        for (var i = 0; i < blobs.Length; i++)
        {
            Assert.Equal(blobs[i], await ReadAsync($"c/1/blob-{i}"));
        }
    }

    [Fact]
    public async Task List_filters_by_prefix()
    {
        await PutAsync("a/1/x", [1]);
        await PutAsync("ab/1/x", [1]);
        await PutAsync("b/1/x", [1]);
        Assert.Equal(["a/1/x"], (await ListAsync("a/")).Select(o => o.Key));
    }

    [Fact]
    public async Task An_empty_object_is_refused_and_leaves_nothing()
    {
        await using (var upload = await Target.BeginPutAsync("e/1/empty", Ct))
        {
            await Assert.ThrowsAsync<BackupException>(() => upload.CommitAsync(Ct));
        }

        Assert.Null(await Target.StatAsync("e/1/empty", Ct));
        Assert.Empty(await ListAsync("e/"));
    }

    [Fact]
    public async Task A_committed_object_replaces_nothing_half_way_and_reads_back_whole()
    {
        await PutAsync("r/1/obj", [1, 2, 3]);
        await PutAsync("r/1/obj", [4, 5, 6, 7]);
        Assert.Equal([4, 5, 6, 7], await ReadAsync("r/1/obj"));
        Assert.Single(await ListAsync("r/"));
    }
}
