using System.Text;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Drill;
using Backstop.Core.Plugins;
using Backstop.Sources.Scratch;
using Backstop.Sources.Postgres;
using Backstop.Targets.Local;

namespace Backstop.Tests.Drill;

public class DrillUnitTests
{
    private static readonly PluginRegistry Registry = new([new PostgresSourceKind(), new Backstop.Sources.Files.FilesSourceKind()], [new LocalTargetKind()]);

    private static BackstopConfig Parse(string yaml) => ConfigLoader.Parse("targets: [{ name: l, kind: local, path: /b }]\n" + yaml, "/etc/backstop.yaml", Registry);

    /// <summary>A pg_dump -Fc header as ReadHead reads it: archive 1.14 (PostgreSQL 12–15, an int compression level) or 1.15 (16+, one byte).</summary>
    private static byte[] Header(int vmin, string serverVersion)
    {
        var b = new List<byte>();
        b.AddRange("PGDMP"u8.ToArray());
        b.AddRange([1, (byte)vmin, 0, 4, 8, 1]); // version 1.vmin.0, int size 4, offset size 8, custom format
        void Int(int v)
        {
            b.Add(v < 0 ? (byte)1 : (byte)0);
            b.AddRange(BitConverter.GetBytes(Math.Abs(v)));
        }

        void Str(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            Int(bytes.Length);
            b.AddRange(bytes);
        }

        if (vmin >= 15)
        {
            b.Add(0); // compression algorithm: none
        }
        else
        {
            Int(0); // compression level
        }

        foreach (var v in new[] { 12, 30, 3, 29, 10, 126, 0 })
        {
            Int(v);
        }

        Str("shop");
        Str(serverVersion);
        Str("15.8 (Debian 15.8-0+deb12u1)");
        b.AddRange(new byte[64]);
        return [.. b];
    }

    [Fact]
    public void The_server_version_is_read_from_a_custom_dump_header_of_either_layout()
    {
        Assert.Equal(15, CustomDumpHeader.ServerMajor(Header(14, "15.8 (Debian 15.8-0+deb12u1)")));
        Assert.Equal(16, CustomDumpHeader.ServerMajor(Header(15, "16.4")));
        Assert.Equal(9, CustomDumpHeader.ServerMajor(Header(14, "9.6.24")));
    }

    [Fact]
    public void A_header_that_is_not_a_custom_dump_gives_no_version()
    {
        Assert.Null(CustomDumpHeader.ServerMajor("-- PostgreSQL database dump\n"u8));
        Assert.Null(CustomDumpHeader.ServerMajor(Header(14, "not a version")));
        Assert.Throws<FormatException>(() => CustomDumpHeader.ServerMajor(Header(14, "15.8").AsSpan(0, 40)));
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(1L, true)]
    [InlineData(0L, false)]
    [InlineData(-3, true)]
    [InlineData(0.0, false)]
    [InlineData(2.5, true)]
    [InlineData("t", false)]
    [InlineData(null, false)]
    public void A_smoke_query_passes_on_true_or_a_non_zero_number_only(object? value, bool passes) => Assert.Equal(passes, SmokeQueries.Passes(value));

    [Fact]
    public void Drill_options_are_parsed_per_kind_and_the_policy_gives_the_defaults()
    {
        var config = Parse("""
            policy: { rto: 30m, drill: { every: 7d } }
            sources:
              - name: pg
                kind: postgres
                rto: 1h
                drill:
                  server: postgresql://drill@10.0.0.5:5433
                  smoke: ["SELECT true", { database: shop, sql: "SELECT count(*) FROM orders" }]
              - { name: docs, kind: files, paths: [/srv], drill: { spot_check: 5% } }
            """);
        var pg = config.Source("pg")!;
        Assert.Equal(TimeSpan.FromHours(1), pg.Drill.Rto);
        Assert.Equal(TimeSpan.FromDays(7), pg.Drill.Every);
        var o = Assert.IsType<PostgresDrillOptions>(pg.Drill.Options);
        Assert.Equal("postgresql://drill@10.0.0.5:5433", o.Server);
        Assert.Equal([new SmokeQuery(null, "SELECT true"), new SmokeQuery("shop", "SELECT count(*) FROM orders")], o.Smoke);
        var docs = config.Source("docs")!;
        Assert.Equal(TimeSpan.FromMinutes(30), docs.Drill.Rto);
        Assert.Equal(5, Assert.IsType<Backstop.Sources.Files.FilesDrillOptions>(docs.Drill.Options).SpotCheckPercent);
    }

    [Fact]
    public void An_unknown_drill_key_names_the_keys_of_that_kind()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("sources:\n  - { name: docs, kind: files, paths: [/srv], drill: { smoke: [\"SELECT 1\"] } }\n"));
        Assert.Contains("a files source's drill keys are: every, schedule, spot_check", e.Message, StringComparison.Ordinal);
        Assert.Contains("/etc/backstop.yaml:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_drill_server_with_a_password_or_a_database_is_refused()
    {
        var e = Assert.Throws<ConfigException>(() => Parse("sources:\n  - { name: pg, kind: postgres, drill: { server: \"postgresql://u:secret@h:5432\" } }\n"));
        Assert.Contains("leave the password out", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ConfigException>(() => Parse("sources:\n  - { name: pg, kind: postgres, drill: { server: \"postgresql://u@h:5432/shop\" } }\n"));
        Assert.Contains("name the server only", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_rto_of_zero_is_refused() =>
        Assert.Contains("must be longer than zero", Assert.Throws<ConfigException>(() => Parse("policy: { rto: 0s }\nsources: []\n")).Message, StringComparison.Ordinal);

    private static readonly DateTimeOffset Now = new(2026, 1, 10, 12, 0, 0, TimeSpan.Zero);

    private static SourceDefinition Def(TimeSpan? every) =>
        new("db", "sqlite", new object(), Expectations.None, TimeSpan.FromHours(24), 1, ["l"], default) { Drill = new DrillPolicy(every, null, null) };

    private static DrillInfo Drill(bool passed, TimeSpan ago) => new(1, "db", "s1", Now - ago, passed, 2.5, 1, null, null, passed ? null : "check failed", null, "{}");

    [Fact]
    public void Drill_every_wants_a_passed_drill_within_the_interval()
    {
        Assert.Contains("no drill has passed yet", Assert.Single(StatusReport.DrillReasons(Def(TimeSpan.FromDays(7)), [], Now)), StringComparison.Ordinal);
        Assert.Empty(StatusReport.DrillReasons(Def(TimeSpan.FromDays(7)), [Drill(true, TimeSpan.FromDays(6))], Now));
        Assert.Contains("8d old, drill.every is 7d", Assert.Single(StatusReport.DrillReasons(Def(TimeSpan.FromDays(7)), [Drill(true, TimeSpan.FromDays(8))], Now)),
            StringComparison.Ordinal);
        Assert.Empty(StatusReport.DrillReasons(Def(null), [], Now)); // no rule: never drilled is not degraded
    }

    [Fact]
    public void A_failed_last_drill_is_degraded_with_or_without_drill_every()
    {
        var reason = Assert.Single(StatusReport.DrillReasons(Def(null), [Drill(true, TimeSpan.FromDays(2)), Drill(false, TimeSpan.FromDays(1))], Now));
        Assert.Contains("failed: check failed", reason, StringComparison.Ordinal);
        Assert.Empty(StatusReport.DrillReasons(Def(null), [Drill(false, TimeSpan.FromDays(2)), Drill(true, TimeSpan.FromDays(1))], Now));
    }

    [Fact]
    public void The_markdown_report_keeps_each_check_in_its_cell()
    {
        var r = new DrillResult("db|x", "sqlite", "s1", Now, false, 1.5, 60, true, new Dictionary<string, double> { ["setup"] = 0.1 },
            [new DrillCheck("smoke: SELECT a | b", "1", "0\nrows", false)], "check failed");
        var md = DrillEvidence.Markdown(r);
        Assert.Contains("| smoke: SELECT a \\| b | 1 | 0 rows | **failed** |", md, StringComparison.Ordinal);
        Assert.Contains("FAILED", md, StringComparison.Ordinal);
        Assert.Contains("against an objective of 60 s: met", md, StringComparison.Ordinal);
    }
}
