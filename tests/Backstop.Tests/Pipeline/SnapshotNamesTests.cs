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
}
