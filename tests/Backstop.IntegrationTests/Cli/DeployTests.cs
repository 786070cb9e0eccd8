using k8s;
using k8s.Models;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Cli;

/// <summary>
/// The Kubernetes manifests, loaded into typed objects by the official client library (nothing here can run a
/// cluster), and the configuration they carry checked by backstop itself.
/// </summary>
public sealed class DeployTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public void The_kubernetes_manifests_load_as_typed_objects_and_their_configuration_is_valid()
    {
        var text = File.ReadAllText(Path.Combine(CouchServer.RepoRoot, "deploy", "kubernetes", "backstop.yaml"));
        var objects = KubernetesYaml.LoadAllFromString(text);
        Assert.Equal(["Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service", "CronJob"], objects.Select(o => ((IKubernetesObject)o).Kind));

        var deployment = objects.OfType<V1Deployment>().Single();
        Assert.Equal(1, deployment.Spec.Replicas);
        Assert.Equal("Recreate", deployment.Spec.Strategy.Type); // never two serve processes on one catalog
        var container = deployment.Spec.Template.Spec.Containers.Single();
        Assert.Equal(["--config", "/etc/backstop/backstop.yaml", "serve"], container.Args);
        Assert.True(deployment.Spec.Template.Spec.SecurityContext.RunAsNonRoot);
        Assert.Equal("/healthz", container.ReadinessProbe.HttpGet.Path);
        Assert.Contains(container.VolumeMounts, m => m.MountPath == "/var/lib/backstop");

        var cronJob = objects.OfType<V1CronJob>().Single();
        Assert.Equal("Forbid", cronJob.Spec.ConcurrencyPolicy);
        Assert.Equal(["--config", "/etc/backstop/backstop.yaml", "run"], cronJob.Spec.JobTemplate.Spec.Template.Spec.Containers.Single().Args);

        // The configuration in the ConfigMap is one backstop accepts, with the Secret's names as its env: references.
        var config = objects.OfType<V1ConfigMap>().Single().Data["backstop.yaml"];
        var secrets = objects.OfType<V1Secret>().Single().StringData;
        // No token ships with the manifests (no change-me for everyone to know): config check says it is missing until one is made.
        Assert.Equal("", secrets["BACKSTOP_TOKEN"]);
        _box.Write("k8s.yaml", config.Replace("/var/lib/backstop", _box["state"], StringComparison.Ordinal));
        var unset = Sandbox.ExecEnv(_box.Root, secrets.ToDictionary(s => s.Key, s => s.Value), "dotnet", [Sandbox.BackstopDll, "--config", _box["k8s.yaml"], "config", "check"]);
        Assert.True(unset.ExitCode == 2 && unset.All.Contains("BACKSTOP_TOKEN", StringComparison.Ordinal), unset.ToString());
        var check = Sandbox.ExecEnv(_box.Root, secrets.ToDictionary(s => s.Key, s => s.Key == "BACKSTOP_TOKEN" ? GeneratedToken : s.Value), "dotnet",
            [Sandbox.BackstopDll, "--config", _box["k8s.yaml"], "config", "check"]);
        Assert.True(check.ExitCode == 0, check.ToString());
    }

    [Fact]
    public void The_per_node_volume_cronjob_loads_mounts_the_node_storage_read_only_and_its_configuration_is_valid()
    {
        var objects = KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(CouchServer.RepoRoot, "deploy", "kubernetes", "volumes.yaml")));
        Assert.Equal(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "CronJob"], objects.Select(o => ((IKubernetesObject)o).Kind));
        var role = objects.OfType<V1ClusterRole>().Single();
        Assert.All(role.Rules, r => Assert.Equal(["get", "list"], r.Verbs)); // read-only
        var cronJob = objects.OfType<V1CronJob>().Single();
        var pod = cronJob.Spec.JobTemplate.Spec.Template.Spec;
        Assert.False(string.IsNullOrEmpty(pod.NodeName)); // one per node
        Assert.Equal("backstop-volumes", pod.ServiceAccountName);
        var container = pod.Containers.Single();
        Assert.Equal("spec.nodeName", container.Env.Single(e => e.Name == "NODE_NAME").ValueFrom.FieldRef.FieldPath);
        var storage = container.VolumeMounts.Single(m => m.Name == "storage");
        Assert.True(storage.ReadOnlyProperty);
        Assert.Equal("/var/lib/rancher/k3s/storage", pod.Volumes.Single(v => v.Name == "storage").HostPath.Path);
        Assert.Equal("/host/var/lib/rancher/k3s/storage", storage.MountPath);

        var config = objects.OfType<V1ConfigMap>().Single().Data["backstop.yaml"];
        _box.Write("volumes.yaml", config.Replace("/var/lib/backstop", _box["state"], StringComparison.Ordinal));
        var check = Sandbox.ExecEnv(_box.Root, new Dictionary<string, string> { ["S3_ACCESS_KEY"] = "a", ["S3_SECRET_KEY"] = "b" }, "dotnet",
            [Sandbox.BackstopDll, "--config", _box["volumes.yaml"], "config", "check"]);
        Assert.True(check.ExitCode == 0, check.ToString());
    }

    private static string Helm
    {
        get
        {
            var helm = Path.Combine(CouchServer.RepoRoot, ".tools", "bin", "helm");
            Assert.True(File.Exists(helm), $"{helm} is missing: run ./test.sh, which installs helm");
            return helm;
        }
    }

    private static string Chart => Path.Combine(CouchServer.RepoRoot, "deploy", "helm", "backstop");

    private static List<object> HelmTemplate(params string[] extra)
    {
        var result = Sandbox.Exec(Helm, ["template", "bk", Chart, "--namespace", "backstop", .. extra]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return KubernetesYaml.LoadAllFromString(result.Stdout);
    }

    /// <summary>What a person makes with openssl rand -hex 32 before applying the manifests.</summary>
    private static readonly string GeneratedToken = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    [Fact]
    public void The_helm_chart_lints_and_renders_serve_as_the_plain_manifests_do_with_a_valid_configuration()
    {
        var lint = Sandbox.Exec(Helm, "lint", "--strict", Chart);
        Assert.True(lint.ExitCode == 0, lint.ToString());

        // The plain manifests' Secret names every env: reference the default configuration makes.
        var plain = KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(CouchServer.RepoRoot, "deploy", "kubernetes", "backstop.yaml")));
        var secrets = plain.OfType<V1Secret>().Single().StringData;
        var objects = HelmTemplate([.. secrets.SelectMany(s => new[] { "--set-string", $"secrets.{s.Key}={(s.Key == "BACKSTOP_TOKEN" ? GeneratedToken : s.Value)}" })]);
        Assert.Equal(["Secret", "ConfigMap", "PersistentVolumeClaim", "Service", "Deployment"], objects.Select(o => ((IKubernetesObject)o).Kind));

        var deployment = objects.OfType<V1Deployment>().Single();
        Assert.Equal(1, deployment.Spec.Replicas);
        Assert.Equal("Recreate", deployment.Spec.Strategy.Type);
        var pod = deployment.Spec.Template.Spec;
        var container = pod.Containers.Single();
        Assert.Equal(["--config", "/etc/backstop/backstop.yaml", "serve"], container.Args);
        Assert.Equal("backstop:0.1.0", container.Image); // the chart's appVersion by default
        Assert.True(pod.SecurityContext.RunAsNonRoot);
        Assert.False(container.SecurityContext.AllowPrivilegeEscalation);
        Assert.Equal("/healthz", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal(8080, container.Ports.Single().ContainerPort);
        Assert.Matches("^[0-9a-f]{64}$", deployment.Spec.Template.Metadata.Annotations["checksum/config"]); // a config change rolls the pod
        var secret = objects.OfType<V1Secret>().Single();
        Assert.Equal(secret.Metadata.Name, container.EnvFrom.Single().SecretRef.Name);
        var claim = objects.OfType<V1PersistentVolumeClaim>().Single();
        Assert.Equal(claim.Metadata.Name, pod.Volumes.Single(v => v.Name == "state").PersistentVolumeClaim.ClaimName);
        Assert.Equal("keep", claim.Metadata.Annotations["helm.sh/resource-policy"]); // the catalog outlives an uninstall
        Assert.Equal(objects.OfType<V1ConfigMap>().Single().Metadata.Name, pod.Volumes.Single(v => v.Name == "config").ConfigMap.Name);

        // The configuration the chart renders (toYaml of the values) is one backstop accepts, with the Secret's keys.
        var config = objects.OfType<V1ConfigMap>().Single().Data["backstop.yaml"];
        _box.Write("helm.yaml", config.Replace("/var/lib/backstop", _box["state"], StringComparison.Ordinal));
        var check = Sandbox.ExecEnv(_box.Root, secret.StringData.ToDictionary(s => s.Key, s => s.Value), "dotnet", [Sandbox.BackstopDll, "--config", _box["helm.yaml"], "config", "check"]);
        Assert.True(check.ExitCode == 0, check.ToString());

        // A change of configuration changes the pod template's checksum.
        var changed = HelmTemplate("--set", "config.policy.rpo=12h").OfType<V1Deployment>().Single();
        Assert.NotEqual(deployment.Spec.Template.Metadata.Annotations["checksum/config"], changed.Spec.Template.Metadata.Annotations["checksum/config"]);
    }

    [Fact]
    public void The_helm_chart_in_cronjob_mode_renders_a_forbid_cronjob_and_no_deployment_and_uses_an_existing_secret_and_claim()
    {
        var objects = HelmTemplate("--set", "mode=cronjob", "--set", "cronjob.timeZone=Europe/Paris", "--set", "existingSecret=made-by-hand",
            "--set", "persistence.existingClaim=old-state", "--set", "config.serve.listen=127.0.0.1:9090");
        Assert.Equal(["ConfigMap", "CronJob"], objects.Select(o => ((IKubernetesObject)o).Kind));
        var cronJob = objects.OfType<V1CronJob>().Single();
        Assert.Equal("Forbid", cronJob.Spec.ConcurrencyPolicy);
        Assert.Equal("Europe/Paris", cronJob.Spec.TimeZone);
        Assert.Equal(0, cronJob.Spec.JobTemplate.Spec.BackoffLimit);
        var pod = cronJob.Spec.JobTemplate.Spec.Template.Spec;
        Assert.Equal("Never", pod.RestartPolicy);
        var container = pod.Containers.Single();
        Assert.Equal(["--config", "/etc/backstop/backstop.yaml", "run"], container.Args);
        Assert.Null(container.Ports); // run serves nothing
        Assert.Equal("made-by-hand", container.EnvFrom.Single().SecretRef.Name);
        Assert.Equal("old-state", pod.Volumes.Single(v => v.Name == "state").PersistentVolumeClaim.ClaimName);

        // serve's port follows config.serve.listen.
        var serve = HelmTemplate("--set", "config.serve.listen=127.0.0.1:9090").OfType<V1Deployment>().Single();
        Assert.Equal(9090, serve.Spec.Template.Spec.Containers.Single().Ports.Single().ContainerPort);
    }

    [Fact]
    public void The_helm_chart_with_agents_renders_a_serve_agent_on_every_node_named_after_it_beside_the_cluster_serve_on_one_shared_catalog()
    {
        _box.Write("fleet.yaml", """
            agents:
              enabled: true
              samePaths: [/var/lib/rancher/k3s/server/tls/etcd]
            config:
              catalog: { url: "postgresql://backstop@catalog.backstop.svc:5432/backstop?sslmode=require", password: "env:BACKSTOP_CATALOG_PASSWORD", default_machine: cluster }
              staging: /var/lib/backstop/staging
              sources:
                - { name: main-postgres, kind: postgres, host: postgres.default.svc, user: backup, password: "env:PGPASSWORD", databases: all }
                - { name: volumes-node-1, kind: kubernetes, machine: node-1, include_kinds: [PersistentVolumeClaim], pvcs: all, host_root: /host }
            """);
        var objects = HelmTemplate("-f", _box["fleet.yaml"], "--set-string", $"secrets.BACKSTOP_TOKEN={GeneratedToken}", "--set-string", "secrets.BACKSTOP_CATALOG_PASSWORD=pw",
            "--set-string", "secrets.PGPASSWORD=pg", "--set-string", "secrets.S3_ACCESS_KEY=a", "--set-string", "secrets.S3_SECRET_KEY=b", "--set-string", "secrets.ALERT_WEBHOOK=http://hook");
        Assert.Equal(["Secret", "ConfigMap", "PersistentVolumeClaim", "Service", "DaemonSet", "Deployment"], objects.Select(o => ((IKubernetesObject)o).Kind));

        var agent = objects.OfType<V1DaemonSet>().Single();
        var pod = agent.Spec.Template.Spec;
        var container = pod.Containers.Single();
        Assert.Equal(["--config", "/etc/backstop/backstop.yaml", "serve"], container.Args);
        Assert.Equal("spec.nodeName", container.Env.Single(e => e.Name == "BACKSTOP_MACHINE").ValueFrom.FieldRef.FieldPath);
        Assert.All(container.VolumeMounts.Where(m => m.Name.StartsWith("host-", StringComparison.Ordinal) || m.Name.StartsWith("same-", StringComparison.Ordinal)),
            m => Assert.True(m.ReadOnlyProperty));
        Assert.Equal("/host/var/lib/rancher/k3s/storage", container.VolumeMounts.Single(m => m.Name == "host-0").MountPath);
        Assert.Equal("/var/lib/rancher/k3s/server/tls/etcd", container.VolumeMounts.Single(m => m.Name == "same-0").MountPath);
        Assert.Equal("/var/lib/backstop-agent", pod.Volumes.Single(v => v.Name == "state").HostPath.Path); // its own staging; the catalog is shared
        Assert.Contains(pod.Tolerations, t => t.Key == "node-role.kubernetes.io/control-plane");
        var secret = objects.OfType<V1Secret>().Single();
        Assert.Equal(secret.Metadata.Name, container.EnvFrom.Single().SecretRef.Name);

        var serve = objects.OfType<V1Deployment>().Single().Spec.Template.Spec.Containers.Single();
        Assert.Equal("cluster", serve.Env.Single(e => e.Name == "BACKSTOP_MACHINE").Value);

        // The configuration both render is one backstop accepts: the catalog URL in it, its password from the Secret.
        var config = objects.OfType<V1ConfigMap>().Single().Data["backstop.yaml"];
        _box.Write("fleet-config.yaml", config.Replace("/var/lib/backstop", _box["state"], StringComparison.Ordinal));
        var check = Sandbox.ExecEnv(_box.Root, secret.StringData.ToDictionary(s => s.Key, s => s.Value), "dotnet", [Sandbox.BackstopDll, "--config", _box["fleet-config.yaml"], "config", "check"]);
        Assert.True(check.ExitCode == 0, check.ToString());
        Assert.Contains("catalog postgresql://backstop@catalog.backstop.svc:5432/backstop", check.Stdout, StringComparison.Ordinal);

        var alone = Sandbox.Exec(Helm, "template", "bk", Chart, "--set", "agents.enabled=true");
        Assert.NotEqual(0, alone.ExitCode);
        Assert.Contains("agents.enabled needs a shared catalog", alone.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_systemd_fleet_configuration_is_valid_and_each_host_runs_its_own_sources()
    {
        var file = Path.Combine(CouchServer.RepoRoot, "deploy", "systemd", "fleet.yaml");
        _box.Write("fleet.yaml", File.ReadAllText(file).Replace("/var/lib/backstop", _box["state"], StringComparison.Ordinal).Replace("/etc/backstop", _box["etc"], StringComparison.Ordinal));
        _box.Write("etc/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n");
        var env = new Dictionary<string, string>
        {
            ["BACKSTOP_CATALOG_PASSWORD"] = "c", ["CHAT_WEBHOOK"] = "https://chat.example.org/hook", ["S3_ACCESS_KEY"] = "a", ["S3_SECRET_KEY"] = "b",
            ["PGPASSWORD"] = "p", ["REDIS_PASSWORD"] = "r", ["MYSQL_PASSWORD"] = "m", ["BACKSTOP_MACHINE"] = "vps2",
        };
        var check = Sandbox.ExecEnv(_box.Root, env, "dotnet", [Sandbox.BackstopDll, "--config", _box["fleet.yaml"], "config", "check", "--json"]);
        Assert.True(check.ExitCode == 0, check.ToString());
        var sources = System.Text.Json.JsonDocument.Parse(check.Stdout).RootElement.GetProperty("sources").EnumerateArray()
            .ToDictionary(s => s.GetProperty("name").GetString()!, s => s.GetProperty("machine").GetString()!);
        Assert.Equal("vps1", sources["vps1-postgres"]); // no machine: catalog.default_machine
        Assert.Equal("vps1", sources["vps1-files"]);
        Assert.Equal("vps2", sources["vps2-redis"]);
        Assert.Equal("vps3", sources["vps3-mariadb"]);
    }

    [Fact]
    public void The_helm_chart_refuses_values_that_cannot_work_naming_the_value()
    {
        var mode = Sandbox.Exec(Helm, "template", "bk", Chart, "--set", "mode=daemon");
        Assert.NotEqual(0, mode.ExitCode);
        Assert.Contains("mode", mode.Stderr, StringComparison.Ordinal);
        Assert.Contains("serve", mode.Stderr, StringComparison.Ordinal); // the allowed values

        var catalog = Sandbox.Exec(Helm, "template", "bk", Chart, "--set", "config.catalog=/tmp/catalog.db");
        Assert.NotEqual(0, catalog.ExitCode); // a catalog off the persistent volume is lost with the pod
        Assert.Contains("catalog", catalog.Stderr, StringComparison.Ordinal);
    }
}
