using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>The audit's 20-byte dump: a command that prints nothing or fails is never a backup, and says why.</summary>
public sealed class CommandSourceTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private JsonElement StatusOf(string source)
    {
        var status = _box.Run("status", "--json");
        Assert.Equal(1, status.ExitCode);
        return JsonDocument.Parse(status.Stdout).RootElement.GetProperty("sources").EnumerateArray().Single(s => s.GetProperty("name").GetString() == source);
    }

    [Fact]
    public void A_command_that_prints_nothing_fails_the_run_and_status_says_why()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("db", "true"));
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("printed nothing on stdout", run.All, StringComparison.Ordinal);

        var s = StatusOf("db");
        Assert.Equal("never", s.GetProperty("state").GetString());
        Assert.Equal(JsonValueKind.Null, s.GetProperty("last_valid").ValueKind);
        Assert.Equal("failed", s.GetProperty("last_run").GetProperty("state").GetString());
        Assert.Contains("printed nothing on stdout", s.GetProperty("last_run").GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void A_command_that_exits_non_zero_fails_with_its_stderr()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         Yaml.Command("db", "printf partial-dump; echo 'pg_dump: error: connection to server at 127.0.0.1, port 5432 failed: Connection refused' >&2; exit 1"));
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        var s = StatusOf("db");
        var error = s.GetProperty("last_run").GetProperty("error").GetString()!;
        Assert.Contains("exited with code 1", error, StringComparison.Ordinal);
        Assert.Contains("Connection refused", error, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void A_failure_after_a_good_snapshot_is_failing_not_ok()
    {
        _box.Write("flag", "ok");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("db", "test -f flag && echo data || exit 4"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        File.Delete(_box["flag"]);
        Assert.Equal(1, _box.Run("run").ExitCode);
        var s = StatusOf("db");
        Assert.Equal("failing", s.GetProperty("state").GetString());
        Assert.Contains("exited with code 4", s.GetProperty("last_run").GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Object, s.GetProperty("last_valid").ValueKind);
    }

    [Fact]
    public void A_missing_program_fails_preflight_naming_the_path_searched()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: db, kind: command, command: [pg_dump_nonexistent, -Fc] }\n");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("program 'pg_dump_nonexistent' was not found in PATH (", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void Min_bytes_refuses_a_tiny_dump()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("db", "printf 20-bytes-of-gzip!!", ", expect: { min_bytes: 150KB }"));
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("less than expect.min_bytes 150000", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void A_command_gets_no_secret_from_backstops_environment_only_those_its_env_gives_it()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         "  - { name: app, kind: command, command: [/bin/sh, -c, 'echo \"pg=${PGPASSWORD:-none} s3=${S3_SECRET_KEY:-none} given=${API_TOKEN:-none} home=${HOME:+set}\"'], " +
                         "artifact: out.txt, env: { API_TOKEN: \"env:LEDGER_TOKEN\" } }\n");
        var env = new Dictionary<string, string> { ["PGPASSWORD"] = "leaked-pg", ["S3_SECRET_KEY"] = "leaked-s3", ["LEDGER_TOKEN"] = "given-token" };
        var run = _box.Run(["run"], env);
        Assert.True(run.ExitCode == 0, run.ToString());
        var restore = _box.Run(["restore", "--source", "app", "--to", _box["out"]], env);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal("pg=none s3=none given=given-token home=set", File.ReadAllText(_box["out"]).Trim()); // a command artifact restores to the file named
    }
}
