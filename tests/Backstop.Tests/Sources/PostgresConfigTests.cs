using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Postgres;
using Backstop.Targets.Local;

namespace Backstop.Tests.Sources;

public class PostgresConfigTests
{
    private static readonly PluginRegistry Registry = new([new PostgresSourceKind()], [new LocalTargetKind()]);

    private static PostgresOptions Parse(string source) =>
        (PostgresOptions)ConfigLoader.Parse(
            $"targets: [{{ name: l, kind: local, path: /b }}]\nsources:\n  - {{ name: pg, kind: postgres, {source} }}\n",
            "/etc/backstop.yaml", Registry).Sources[0].Options;

    [Fact]
    public void Defaults_back_up_every_database_on_localhost()
    {
        var o = Parse("user: backup");
        Assert.Null(o.Databases);
        Assert.Equal("127.0.0.1", o.Host);
        Assert.Equal(5432, o.Port);
        Assert.True(o.ExactRows); // counted in the dump's own snapshot unless exact_rows: false
        Assert.Null(o.Password);
    }

    [Fact]
    public void Estimated_rows_cannot_be_used_by_min_rows()
    {
        Assert.False(Parse("exact_rows: false").ExactRows);
        var e = Assert.Throws<ConfigException>(() => Parse("exact_rows: false, expect: { min_rows: 10 }"));
        Assert.Contains("min_rows: needs exact row counts", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Databases_all_or_a_list()
    {
        Assert.Null(Parse("databases: all").Databases);
        Assert.Equal(["gx", "ledger"], Parse("databases: [gx, ledger]").Databases);
    }

    [Fact]
    public void Tools_paths_are_relative_to_the_configuration()
    {
        Assert.Equal("/etc/bin/pg_dump", Parse("tools: { pg_dump: ./bin/pg_dump }").Tools["pg_dump"]);
    }

    [Theory]
    [InlineData("sslmode: sometimes", "'sometimes' is not one of: disable, allow, prefer, require, verify-ca, verify-full")]
    [InlineData("tools: { psql: /usr/bin/psql }", "sources[0].tools.psql: unknown key")]
    [InlineData("port: 99999", "99999 is out of range")]
    [InlineData("databases: [\"\"]", "a database name cannot be empty")]
    [InlineData("expect: { min_documents: 3 }", "min_documents: unknown key")]
    public void Mistakes_are_refused_where_they_are(string source, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(source));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("/etc/backstop.yaml:3:", e.Message, StringComparison.Ordinal);
    }
}
