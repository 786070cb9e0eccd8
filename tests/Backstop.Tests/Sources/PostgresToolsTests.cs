using Backstop.Sources.Postgres;

namespace Backstop.Tests.Sources;

/// <summary>Debian's pg_wrapper is skipped once its version is known; every other tool path is kept as given.</summary>
public sealed class PostgresToolsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("backstop-pgtools-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static int? InstalledMajor() =>
        Directory.Exists(PostgresTools.ClusterDir)
            ? Directory.GetDirectories(PostgresTools.ClusterDir)
                .Select(d => int.TryParse(Path.GetFileName(d), out var m) ? m : (int?)null)
                .Where(m => m is not null && File.Exists(Path.Combine(PostgresTools.ClusterDir, m.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), "bin", "pg_dump")))
                .Max()
            : null;

    [Fact]
    public void A_link_to_pg_wrapper_becomes_the_versions_own_binary_when_it_is_installed()
    {
        var wrapper = Path.Combine(_dir, "pg_wrapper");
        File.WriteAllText(wrapper, "#!/usr/bin/perl\n");
        var link = Path.Combine(_dir, "pg_dump");
        File.CreateSymbolicLink(link, "pg_wrapper");
        var major = InstalledMajor();
        if (major is { } m)
        {
            Assert.Equal($"{PostgresTools.ClusterDir}/{m}/bin/pg_dump", PostgresTools.Direct(link, m));
        }

        // A version whose binaries are not installed: the wrapper is kept (it will say what is missing).
        Assert.Equal(link, PostgresTools.Direct(link, 999));
    }

    [Fact]
    public void A_real_binary_or_a_link_to_anything_else_is_kept_as_given()
    {
        var real = Path.Combine(_dir, "pg_dump");
        File.WriteAllText(real, "#!/bin/sh\n");
        Assert.Equal(real, PostgresTools.Direct(real, 15));
        var other = Path.Combine(_dir, "my_pg_dump");
        File.CreateSymbolicLink(other, real);
        Assert.Equal(other, PostgresTools.Direct(other, 15));
    }
}
