using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

/// <summary>Bad input: a clear message with where it is, exit code 2, never a stack trace.</summary>
public sealed class CliTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static void NoStackTrace(CliResult r)
    {
        Assert.DoesNotContain("   at ", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", r.All, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_key_exits_2_with_file_line_and_column()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data], exclud: [x] }\n");
        var r = _box.Run("run");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{_box.Config}:7:46: sources[0].exclud: unknown key (did you mean 'exclude'?)", r.Stderr, StringComparison.Ordinal);
        NoStackTrace(r);
    }

    [Fact]
    public void A_bad_size_exits_2_from_every_verb()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data], expect: { min_bytes: 1.5 } }\n");
        foreach (var verb in new[] { "run", "status", "verify", "list" })
        {
            var r = _box.Run(verb);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("sources[0].expect.min_bytes: '1.5' is not a size: it needs a unit", r.Stderr, StringComparison.Ordinal);
            NoStackTrace(r);
        }

        Assert.Equal(2, _box.Run("config", "check").ExitCode);
    }

    [Fact]
    public void A_missing_configuration_exits_2_saying_how_to_give_one()
    {
        var r = _box.Run("status");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("cannot read the configuration", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("--config FILE or BACKSTOP_CONFIG", r.Stderr, StringComparison.Ordinal);
        NoStackTrace(r);
    }

    [Fact]
    public void An_unknown_flag_or_verb_exits_2()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources: []\n");
        var flag = _box.Run("run", "--sorce", "x");
        Assert.Equal(2, flag.ExitCode);
        Assert.Contains("--sorce", flag.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, _box.Run("backup").ExitCode);
        NoStackTrace(flag);
    }

    [Fact]
    public void An_unknown_source_name_exits_2_listing_the_defined_ones()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        var r = _box.Run("run", "--source", "nope");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--source nope: no source has that name", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("defined sources: f", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Config_check_accepts_a_valid_file()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        var r = _box.Run("config", "check");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("valid (1 target(s), 1 source(s)", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_output_is_one_document_and_nothing_else_on_stdout()
    {
        _box.Write("data/a", "a");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, paths: [./data] }\n");
        var r = _box.Run("run", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        Assert.Equal("committed", doc.RootElement.GetProperty("snapshots")[0].GetProperty("state").GetString());
        Assert.Contains("committed", r.Stderr, StringComparison.Ordinal);
    }
}
