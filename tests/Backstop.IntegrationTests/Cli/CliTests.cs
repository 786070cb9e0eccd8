using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Cli;

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
    public void A_mistyped_verb_or_option_exits_2_saying_what_was_meant()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo data"));
        var verb = _box.Run("stauts");
        Assert.Equal(2, verb.ExitCode);
        Assert.Contains("unknown command 'stauts'; did you mean 'status'?", verb.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Required command", verb.Stderr, StringComparison.Ordinal);
        var option = _box.Run("run", "--no-prun");
        Assert.Equal(2, option.ExitCode);
        Assert.Contains("unknown option '--no-prun'; did you mean '--no-prune'?", option.Stderr, StringComparison.Ordinal);
        NoStackTrace(option);
    }

    [Fact]
    public void Status_takes_source_and_a_snapshot_is_named_by_latest_or_a_unique_prefix_everywhere()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo data") + Yaml.Command("broken", "exit 3"));
        Assert.Equal(1, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Run("status", "--source", "app").ExitCode);   // app alone is ok: its exit code
        Assert.Equal(1, _box.Run("status", "--source", "broken").ExitCode);
        var unknown = _box.Run("status", "--source", "nope");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("defined sources: app, broken", unknown.Stderr, StringComparison.Ordinal);

        var id = System.Text.Json.JsonDocument.Parse(_box.Run("list", "--json", "--source", "app").Stdout).RootElement.GetProperty("snapshots")[0].GetProperty("snapshot").GetString()!;
        var latest = _box.Run("show", "latest", "--source", "app");
        Assert.True(latest.ExitCode == 0, latest.ToString());
        Assert.Contains(id, latest.Stdout, StringComparison.Ordinal);
        var ambiguous = _box.Run("show", "latest");
        Assert.Equal(2, ambiguous.ExitCode);
        Assert.Contains("of which source? add --source NAME", ambiguous.Stderr, StringComparison.Ordinal);
        var prefix = id[..^3]; // the id less its last characters: still only this snapshot's
        Assert.Contains(id, _box.Run("show", prefix, "--source", "app").Stdout, StringComparison.Ordinal);
        var restored = _box.Run("restore", "--source", "app", "--snapshot", prefix, "--to", "out");
        Assert.True(restored.ExitCode == 0, restored.ToString());
        var none = _box.Run("show", "1999");
        Assert.Equal(2, none.ExitCode);
        Assert.Contains("no snapshot of that id or prefix", none.Stderr, StringComparison.Ordinal);
        Assert.Contains("postgresql://", _box.Run("restore", "--help").Stdout, StringComparison.Ordinal); // --to for each kind
        Assert.Contains("75 another run holds the lock", _box.Run("--help").Stdout.ReplaceLineEndings(" ").Replace("  ", " ", StringComparison.Ordinal), StringComparison.Ordinal); // the exit codes
    }

    [Fact]
    public void List_shows_failures_since_the_last_backup_and_keep_failed_prunes_old_failed_records()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "if [ -f fail ]; then exit 3; fi; echo data"));
        _box.Write("fail", "");
        Assert.Equal(1, _box.Run("run").ExitCode);      // an old failure
        File.Delete(_box["fail"]);
        Assert.Equal(0, _box.Run("run").ExitCode);      // a backup
        _box.Write("fail", "");
        Assert.Equal(1, _box.Run("run").ExitCode);      // a failure since it
        var shown = System.Text.Json.JsonDocument.Parse(_box.Run("list", "--json").Stdout).RootElement;
        Assert.Equal(["committed", "failed"], shown.GetProperty("snapshots").EnumerateArray().Select(x => x.GetProperty("state").GetString()));
        Assert.Equal(1, shown.GetProperty("hidden_failed").GetInt32());
        Assert.Contains("--all shows them", _box.Run("list").Stdout, StringComparison.Ordinal);
        Assert.Equal(3, System.Text.Json.JsonDocument.Parse(_box.Run("list", "--json", "--all").Stdout).RootElement.GetProperty("snapshots").GetArrayLength());

        // catalog: {keep_failed: 1s}: the next run removes the failed records past it, the event says how many, the counter keeps them.
        Thread.Sleep(1500);
        _box.WriteConfig(Yaml.LocalTarget().Replace("catalog: ./state/catalog.db", "catalog: { path: ./state/catalog.db, keep_failed: 1s }", StringComparison.Ordinal) +
                         "sources:\n" + Yaml.Command("app", "echo data"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        var all = System.Text.Json.JsonDocument.Parse(_box.Run("list", "--json", "--all").Stdout).RootElement.GetProperty("snapshots");
        Assert.DoesNotContain(all.EnumerateArray(), x => x.GetProperty("state").GetString() == "failed");
        Assert.Contains("backstop_runs_total{source=\"app\",outcome=\"failed\"} 2", _box.Run("metrics").Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_terminal_a_long_capture_prints_progress_lines_and_with_json_they_go_to_stderr()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("slow", "for i in 1 2 3 4; do head -c 200000 /dev/urandom; sleep 1; done"));
        var env = new Dictionary<string, string> { ["BACKSTOP_PROGRESS_SECONDS"] = "1" }; // 30 s by default
        var plain = _box.Run(["run"], env);
        Assert.True(plain.ExitCode == 0, plain.ToString());
        var lines = plain.Stdout.Split('\n').Where(l => l.Contains("slow: dump.out: capturing: ", StringComparison.Ordinal) && l.Contains(" read, ", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count >= 2, plain.Stdout);
        Assert.Matches("/s$", lines[0]);

        var json = _box.Run(["run", "--json"], env);
        Assert.True(json.ExitCode == 0, json.ToString());
        Assert.Contains(" read, ", json.Stderr, StringComparison.Ordinal);
        System.Text.Json.JsonDocument.Parse(json.Stdout); // stdout stays one JSON document
    }

    [Fact]
    public void Config_check_resolves_every_secret_reference_and_names_the_missing_ones_without_a_value()
    {
        _box.Write("token.txt", "s3cr3t-from-file\n");
        _box.WriteConfig(Yaml.LocalTarget() + "notify:\n  - { kind: webhook, url: \"env:BACKSTOP_TEST_HOOK_UNSET\" }\n" +
                         "  - { kind: ntfy, url: \"http://127.0.0.1:9/t\", token: \"file:./missing-token.txt\" }\n" +
                         "  - { kind: ntfy, url: \"http://127.0.0.1:9/u\", token: \"file:./token.txt\" }\nsources:\n" + Yaml.Command("app", "echo data"));
        var r = _box.Run("config", "check");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{_box.Config}:", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("the environment variable BACKSTOP_TEST_HOOK_UNSET, which is not set", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("missing-token.txt cannot be read", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("2 of 3 secret reference(s) cannot be resolved", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t-from-file", r.All, StringComparison.Ordinal);
        var json = System.Text.Json.JsonDocument.Parse(_box.Run("config", "check", "--json").Stdout).RootElement;
        Assert.False(json.GetProperty("valid").GetBoolean());
        Assert.Equal(1, json.GetProperty("secrets").EnumerateArray().Count(x => x.GetProperty("resolved").GetBoolean()));

        _box.Write("missing-token.txt", "t");
        var ok = _box.Run(["config", "check"], new Dictionary<string, string> { ["BACKSTOP_TEST_HOOK_UNSET"] = "http://127.0.0.1:9/h" });
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Contains("3 secret reference(s) resolved", ok.Stdout, StringComparison.Ordinal);
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
    public void Every_configuration_error_is_printed_in_one_pass_and_config_check_json_lists_them()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: f, kind: files, pathz: [./data] }\n  - { name: r, kind: redis, port: 70000, timeout: soon }\n");
        var r = _box.Run("run");
        Assert.Equal(2, r.ExitCode);
        NoStackTrace(r);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("backstop: error: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, lines.Count);
        Assert.Contains("sources[0].pathz: unknown key (did you mean 'paths'?); a files source's keys are:", lines[0], StringComparison.Ordinal);
        Assert.Contains("sources[0].paths: at least one path to back up is required", lines[1], StringComparison.Ordinal);
        Assert.Contains($"{_box.Config}:8:", lines[2], StringComparison.Ordinal);
        Assert.Contains("sources[1].port: 70000 is out of range", lines[2], StringComparison.Ordinal);
        Assert.Contains("sources[1].timeout: 'soon' is not a duration", lines[3], StringComparison.Ordinal);
        Assert.Contains("backstop: 4 errors in the configuration", r.Stderr, StringComparison.Ordinal);

        var json = _box.Run("config", "check", "--json");
        Assert.Equal(2, json.ExitCode);
        using var doc = System.Text.Json.JsonDocument.Parse(json.Stdout);
        Assert.False(doc.RootElement.GetProperty("valid").GetBoolean());
        var errors = doc.RootElement.GetProperty("errors").EnumerateArray().ToList();
        Assert.Equal(4, errors.Count);
        Assert.Equal(_box.Config, errors[0].GetProperty("file").GetString());
        Assert.Equal(7, errors[0].GetProperty("line").GetInt32());
        Assert.True(errors[0].GetProperty("unknown_key").GetBoolean());
        Assert.StartsWith("sources[0].pathz: unknown key", errors[0].GetProperty("message").GetString(), StringComparison.Ordinal);
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
