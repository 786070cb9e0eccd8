using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Cli;

/// <summary>The example configurations for the two estates that started the project are ones backstop accepts.</summary>
public sealed class ExamplesTests
{
    [Theory]
    [InlineData("api-gateway", "gateway-db (mysql)", "scenario gateway-lost (rto 4h): loses machines gw-1 and targets local; brings back")]
    [InlineData("k3s-platform", "etcd (etcd): 2 verified copies of nas, drive; RPO 1d; runs on node-1",
        "scenario region (rto 8h): loses machines cluster, node-1, node-2, node-3 and targets nas; brings back images (from drive)")]
    public void An_example_configuration_passes_config_check(string example, string source, string scenario)
    {
        var file = Path.Combine(CouchServer.RepoRoot, "examples", example, "backstop.yaml");
        var env = new Dictionary<string, string>
        {
            ["SMTP_PASSWORD"] = "x", ["HC_PING_URL"] = "http://127.0.0.1:9/ping", ["MYSQL_BACKUP_PASSWORD"] = "x", ["PGPASSWORD"] = "x", ["REDIS_PASSWORD"] = "x",
            ["COUCH_PASSWORD"] = "x", ["REGISTRY_PASSWORD"] = "x", ["BACKSTOP_TOKEN"] = "x", ["CHAT_WEBHOOK"] = "http://127.0.0.1:9/hook", ["NAS_SSH_KEY"] = "x",
            ["BACKSTOP_CATALOG_PASSWORD"] = "x",
        };
        var check = Sandbox.ExecEnv(Path.GetTempPath(), env, "dotnet", [Sandbox.BackstopDll, "--config", file, "config", "check"]);
        Assert.True(check.ExitCode == 0, check.ToString());
        Assert.Contains($"source {source}", check.Stdout, StringComparison.Ordinal);
        Assert.Contains(scenario, check.Stdout, StringComparison.Ordinal); // the audits' disasters, each with what it loses and brings back
        Assert.DoesNotContain("unrecoverable", check.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void The_k3s_example_deploys_with_the_chart_as_an_agent_per_node_and_the_clusters_serve_with_its_file_as_the_configuration()
    {
        var example = Path.Combine(CouchServer.RepoRoot, "examples", "k3s-platform");
        var helm = Path.Combine(CouchServer.RepoRoot, ".tools", "bin", "helm");
        var r = Sandbox.Exec(helm, "template", "backstop", Path.Combine(CouchServer.RepoRoot, "deploy", "helm", "backstop"), "-n", "backstop",
            "-f", Path.Combine(example, "values.yaml"), "--set-file", $"configFile={Path.Combine(example, "backstop.yaml")}");
        Assert.True(r.ExitCode == 0, r.ToString());
        var objects = k8s.KubernetesYaml.LoadAllFromString(r.Stdout);
        Assert.Equal(["ConfigMap", "PersistentVolumeClaim", "Service", "DaemonSet", "Deployment"], objects.Select(o => ((k8s.IKubernetesObject)o).Kind));
        Assert.Equal(File.ReadAllText(Path.Combine(example, "backstop.yaml")).TrimEnd(), objects.OfType<k8s.Models.V1ConfigMap>().Single().Data["backstop.yaml"].TrimEnd());
        var agent = objects.OfType<k8s.Models.V1DaemonSet>().Single().Spec.Template.Spec;
        Assert.Equal("backstop-volumes", agent.ServiceAccountName);
        Assert.Contains(agent.Containers.Single().VolumeMounts, m => m.MountPath == "/var/lib/rancher/k3s/server/tls/etcd" && m.ReadOnlyProperty == true);
        Assert.Equal("backstop-secrets", agent.Containers.Single().EnvFrom.Single().SecretRef.Name);
        Assert.Equal(8080, agent.Containers.Single().Ports.Single().ContainerPort); // from the file's serve.listen
    }
}
