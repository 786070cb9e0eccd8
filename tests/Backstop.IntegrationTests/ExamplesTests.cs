using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

/// <summary>The example configurations for the two estates that started the project are ones backstop accepts.</summary>
public sealed class ExamplesTests
{
    [Theory]
    [InlineData("api-gateway", "gateway-db (mysql)", "scenario gateway-lost (rto 4h): loses machines gw-1 and targets local; brings back")]
    [InlineData("k3s-platform", "cluster (kubernetes)", "scenario region (rto 8h): loses machines node-1, node-2, node-3 and targets local, nas; brings back images (from drive)")]
    public void An_example_configuration_passes_config_check(string example, string source, string scenario)
    {
        var file = Path.Combine(CouchServer.RepoRoot, "examples", example, "backstop.yaml");
        var env = new Dictionary<string, string>
        {
            ["SMTP_PASSWORD"] = "x", ["HC_PING_URL"] = "http://127.0.0.1:9/ping", ["MYSQL_BACKUP_PASSWORD"] = "x", ["PGPASSWORD"] = "x", ["REDIS_PASSWORD"] = "x",
            ["COUCH_PASSWORD"] = "x", ["REGISTRY_PASSWORD"] = "x", ["BACKSTOP_TOKEN"] = "x", ["CHAT_WEBHOOK"] = "http://127.0.0.1:9/hook", ["NAS_SSH_KEY"] = "x",
        };
        var check = Sandbox.ExecEnv(Path.GetTempPath(), env, "dotnet", [Sandbox.BackstopDll, "--config", file, "config", "check"]);
        Assert.True(check.ExitCode == 0, check.ToString());
        Assert.Contains($"source {source}", check.Stdout, StringComparison.Ordinal);
        Assert.Contains(scenario, check.Stdout, StringComparison.Ordinal); // the audits' disasters, each with what it loses and brings back
        Assert.DoesNotContain("unrecoverable", check.Stdout, StringComparison.Ordinal);
    }
}
