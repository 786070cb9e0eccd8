using Backstop.Core.Catalog;
using Backstop.Core.Config;

namespace Backstop.Tests.Pipeline;

/// <summary>A snapshot as a person names it: its id, a prefix only it has, or its random suffix as copied from list.</summary>
public sealed class SnapshotNamesTests
{
    private static SnapshotInfo Snapshot(string id) =>
        new(id, "db", "sqlite", SnapshotState.Committed, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "h", 1, 1, new Dictionary<string, long>(), [], null, []);

    private static readonly IReadOnlyList<SnapshotInfo> OneDay =
        [Snapshot("20261205T010000Z-4ed8"), Snapshot("20261205T020000Z-9a1c"), Snapshot("20261205T030000Z-77b0")];

    [Fact]
    public void The_random_suffix_alone_names_one_snapshot_where_every_short_prefix_of_the_day_is_ambiguous()
    {
        Assert.Equal("20261205T020000Z-9a1c", SnapshotNames.Resolve(OneDay, "9a1c", "source 'db'")!.Id);
        Assert.Equal("20261205T010000Z-4ed8", SnapshotNames.Resolve(OneDay, "20261205T01", "source 'db'")!.Id);
        var ambiguous = Assert.Throws<ConfigException>(() => SnapshotNames.Resolve(OneDay, "2026", "source 'db'"));
        Assert.Contains("3 snapshots", ambiguous.Message, StringComparison.Ordinal);
        Assert.Contains("no snapshot of that id or prefix", Assert.Throws<ConfigException>(() => SnapshotNames.Resolve(OneDay, "ffff", "source 'db'")).Message,
            StringComparison.Ordinal);
        Assert.Null(SnapshotNames.Resolve(OneDay, "latest", "source 'db'"));
    }

    private static SnapshotInfo WithCopies(string id, params (string Target, CopyState State)[] copies) =>
        Snapshot(id) with
        {
            Artifacts = [new ArtifactInfo("db.sqlite", "db.sqlite.zst", 1, 1, "", "zstd", new Dictionary<string, long>(), [.. copies.Select(c => new CopyInfo(c.Target, c.State, DateTimeOffset.UnixEpoch, c.State == CopyState.Verified ? null : "it failed"))])],
        };

    [Fact]
    public void Latest_is_the_newest_snapshot_with_a_verified_copy_on_a_configured_target_for_every_verb()
    {
        IReadOnlyList<SnapshotInfo> history =
        [
            WithCopies("20261205T010000Z-aaaa", ("nas", CopyState.Verified), ("s3", CopyState.Verified)),
            WithCopies("20261205T020000Z-bbbb", ("nas", CopyState.Verified), ("s3", CopyState.Failed)), // short of min_copies: still the latest
            WithCopies("20261205T030000Z-cccc", ("nas", CopyState.Failed)), // committed once, its only copy since found bad
            WithCopies("20261205T040000Z-dddd", ("usb", CopyState.Verified)), // only on a target no longer configured
            Snapshot("20261205T050000Z-eeee") with { State = SnapshotState.Failed },
        ];
        var passed = new List<(string Id, string? Why)>();
        Assert.Equal("20261205T020000Z-bbbb", SnapshotNames.Latest(history, new HashSet<string> { "nas", "s3" }, "backstop.yaml", passed)!.Id);
        Assert.Equal(["20261205T030000Z-cccc", "20261205T040000Z-dddd"], passed.Select(p => p.Id));
        Assert.Contains("has no verified copy", passed[0].Why, StringComparison.Ordinal);
        Assert.Contains("verified only on 'usb', no longer in backstop.yaml", passed[1].Why, StringComparison.Ordinal);
        Assert.Null(SnapshotNames.Latest(history, new HashSet<string> { "elsewhere" }, "backstop.yaml"));
    }
}
