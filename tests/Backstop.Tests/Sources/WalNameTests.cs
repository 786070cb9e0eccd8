using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Tests.Sources;

/// <summary>What a file handed to wal-push is: its timeline folder and LSN range, from PostgreSQL's names; anything else refused.</summary>
public sealed class WalNameTests
{
    private static IContinuousArchive Source(string mode = "physical")
    {
        var registry = Cli.Plugins.Registry;
        var config = ConfigLoader.Parse($"targets: [{{ name: local, kind: local, path: /tmp/x }}]\nsources: [{{ name: pg, kind: postgres, mode: {mode} }}]\n",
            "/etc/backstop/backstop.yaml", registry);
        return registry.Source("postgres")!.Create(config.Sources[0]).Capability<IContinuousArchive>()!;
    }

    [Theory]
    [InlineData("000000010000000000000004", 16L << 20, "00000001", 0x4000000L, 0x5000000L)]
    [InlineData("00000002000000160000003F", 16L << 20, "00000002", (0x16L << 32) + 0x3F000000L, (0x16L << 32) + 0x40000000L)]
    [InlineData("000000010000000000000004", 64L << 20, "00000001", 0x10000000L, 0x14000000L)]
    [InlineData("00000002.history", 42L, "00000002", 0L, 0L)]
    [InlineData("000000010000000000000002.00000028.backup", 300L, "00000001", 0L, 0L)]
    [InlineData("000000010000000000000009.partial", 16L << 20, "00000001", 0L, 0L)] // ends at a promotion: places nothing in the chain
    public void A_wal_file_name_gives_its_timeline_and_range(string name, long size, string folder, long start, long end)
    {
        var item = Source().Identify(name, size);
        Assert.Equal((folder, name, start, end), (item.Folder, item.Name, item.Start, item.End));
    }

    [Theory]
    [InlineData("../../etc/passwd", 10L)]
    [InlineData("000000010000000000000004/../x", 10L)]
    [InlineData("00000001000000000000000g", 16L << 20)]
    [InlineData("000000010000000000000004", 12345L)]
    [InlineData("backstop.yaml", 10L)]
    public void Anything_else_is_refused_before_it_becomes_a_key(string name, long size)
    {
        Assert.Throws<BackupException>(() => Source().Identify(name, size));
    }

    [Fact]
    public void A_dump_source_keeps_no_wal_archive()
    {
        var e = Assert.Throws<ConfigException>(() => Source("dump").Identify("000000010000000000000004", 16L << 20));
        Assert.Contains("mode: physical", e.Message, StringComparison.Ordinal);
    }
}
