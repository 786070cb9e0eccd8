using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Serve;

/// <summary>Prometheus metrics of the recorded state, checked by Prometheus' own promtool; the shipped alerts checked and unit-tested by it too.</summary>
public sealed class MetricsTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static string Promtool
    {
        get
        {
            var r = Sandbox.Exec("sh", "-c", "command -v promtool");
            Assert.True(r.ExitCode == 0, "promtool is missing: run ./test.sh, which installs the prometheus package");
            return r.Stdout.Trim();
        }
    }

    [Fact]
    public void The_metrics_pass_promtool_and_say_what_status_says()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo data", ", rto: 10m") + Yaml.Command("broken", "exit 3"));
        Assert.Equal(1, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Run("drill", "--source", "app").ExitCode);
        var r = _box.Run("metrics");
        Assert.True(r.ExitCode == 0, r.ToString());
        var text = r.Stdout;
        File.WriteAllText(_box["metrics.prom"], text);
        var check = _box.Shell($"{Promtool} check metrics < metrics.prom");
        Assert.True(check.ExitCode == 0, check.ToString());

        Assert.Contains("# TYPE backstop_source_state gauge", text, StringComparison.Ordinal);
        Assert.Contains("backstop_source_state{source=\"app\",kind=\"command\",state=\"ok\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("backstop_source_state{source=\"broken\",kind=\"command\",state=\"never\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("backstop_source_state{source=\"broken\",kind=\"command\",state=\"ok\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE backstop_runs_total counter", text, StringComparison.Ordinal);
        Assert.Contains("backstop_runs_total{source=\"broken\",outcome=\"failed\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("backstop_runs_total{source=\"app\",outcome=\"valid\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("backstop_verified_copies{source=\"app\",target=\"local\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("backstop_last_drill_passed{source=\"app\",kind=\"command\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("backstop_rto_seconds{source=\"app\",kind=\"command\"} 600", text, StringComparison.Ordinal);
        Assert.Contains("backstop_rpo_seconds{source=\"app\",kind=\"command\"} 86400", text, StringComparison.Ordinal);
        var lastSuccess = text.Split('\n').Single(l => l.StartsWith("backstop_last_success_timestamp_seconds{source=\"app\"", StringComparison.Ordinal));
        var seconds = double.Parse(lastSuccess.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0 - seconds, 0, 300);
        Assert.DoesNotContain("snapshot=", text, StringComparison.Ordinal); // labels are bounded: never a snapshot id
    }

    [Fact]
    public void Runs_total_is_a_counter_that_retention_never_lowers_and_a_killed_run_counts_as_failed()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "retention: { last: 1 }\nsources:\n" + Yaml.Command("app", "echo data"));
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(0, _box.Run("run").ExitCode);
        }

        Assert.Single(System.Text.Json.JsonDocument.Parse(_box.Run("list", "--json").Stdout).RootElement.GetProperty("snapshots").EnumerateArray(),
            s => s.GetProperty("valid").GetBoolean()); // retention kept one valid; the others' copies are pruned
        var text = _box.Run("metrics").Stdout;
        Assert.Contains("backstop_runs_total{source=\"app\",outcome=\"valid\"} 3", text, StringComparison.Ordinal);
        Assert.Contains("backstop_runs_total{source=\"app\",outcome=\"failed\"} 0", text, StringComparison.Ordinal);

        // A run killed with -9 is recorded failed by the next run, and counted.
        _box.WriteConfig(Yaml.LocalTarget() + "retention: { last: 1 }\nsources:\n" + Yaml.Command("app", "sleep 30; echo data"));
        using (var killed = _box.Start("run"))
        {
            RunningCli.WaitUntil(() => _box.Run("list", "--json").Stdout.Contains("\"running\"", StringComparison.Ordinal), "the run to begin", TimeSpan.FromSeconds(30));
            killed.Signal("KILL");
            killed.Wait(TimeSpan.FromSeconds(10));
        }

        _box.WriteConfig(Yaml.LocalTarget() + "retention: { last: 1 }\nsources:\n" + Yaml.Command("app", "echo data"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        text = _box.Run("metrics").Stdout;
        Assert.Contains("backstop_runs_total{source=\"app\",outcome=\"valid\"} 4", text, StringComparison.Ordinal);
        Assert.Contains("backstop_runs_total{source=\"app\",outcome=\"failed\"} 1", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_textfile_is_written_whole_for_node_exporter()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo data"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        Directory.CreateDirectory(_box["textfiles"]);
        var r = _box.Run("metrics", "--textfile", "textfiles/backstop.prom");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(["backstop.prom"], Directory.GetFiles(_box["textfiles"]).Select(Path.GetFileName)); // no temporary file left
        Assert.Contains("backstop_source_state{source=\"app\",kind=\"command\",state=\"ok\"} 1", File.ReadAllText(_box["textfiles/backstop.prom"]), StringComparison.Ordinal);
        var check = _box.Shell($"{Promtool} check metrics < textfiles/backstop.prom");
        Assert.True(check.ExitCode == 0, check.ToString());

        var missing = _box.Run("metrics", "--textfile", "nowhere/backstop.prom");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("the folder does not exist", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_shipped_alert_rules_pass_promtool_check_and_their_unit_tests()
    {
        var folder = Path.Combine(CouchServer.RepoRoot, "deploy", "prometheus");
        var check = Sandbox.ExecIn(folder, Promtool, "check", "rules", "alerts.yml");
        Assert.True(check.ExitCode == 0, check.ToString());
        var test = Sandbox.ExecIn(folder, Promtool, "test", "rules", "alerts.test.yml");
        Assert.True(test.ExitCode == 0, test.ToString());
    }
}
