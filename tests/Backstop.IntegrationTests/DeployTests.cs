using k8s;
using k8s.Models;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

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
        _box.Write("k8s.yaml", config.Replace("/var/lib/backstop", _box["state"], StringComparison.Ordinal));
        var check = Sandbox.ExecEnv(_box.Root, secrets.ToDictionary(s => s.Key, s => s.Value), "dotnet", [Sandbox.BackstopDll, "--config", _box["k8s.yaml"], "config", "check"]);
        Assert.True(check.ExitCode == 0, check.ToString());
    }
}
