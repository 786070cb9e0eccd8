namespace Backstop.Sources.Kubernetes;

/// <summary>The source's cluster as each part of the kubernetes kind reaches it: its options, and a client of its API server.</summary>
internal sealed class KubernetesAccess(string name, KubernetesOptions options)
{
    /// <summary>The source (named in every message).</summary>
    public string Source => name;

    public KubernetesOptions Options => options;

    /// <summary>Kinds never stored: what the cluster makes and remakes on its own.</summary>
    private static readonly HashSet<string> Never = new(StringComparer.Ordinal)
    {
        "Event", "Event.events.k8s.io", "Node", "Endpoints", "EndpointSlice.discovery.k8s.io", "Lease.coordination.k8s.io", "ComponentStatus",
        "Binding", "PodMetrics.metrics.k8s.io", "NodeMetrics.metrics.k8s.io",
    };

    /// <summary>The kinds this source takes, after the filters.</summary>
    public IReadOnlyList<KubeResource> Selected(IReadOnlyList<KubeResource> all) =>
        all.Where(r => !Never.Contains(r.KindGroup) && r.Group != "metrics.k8s.io")
            .Where(r => r.Namespaced || options.ClusterResources || r.KindGroup == "Namespace")
            .Where(r => options.IncludeKinds.Count == 0 || options.IncludeKinds.Any(r.Matches) || r.KindGroup == "Namespace")
            .Where(r => !options.ExcludeKinds.Any(r.Matches))
            .GroupBy(r => r.KindGroup, StringComparer.Ordinal).Select(g => g.First()) // a kind served by two groups' versions: once
            .OrderBy(r => r.KindGroup, StringComparer.Ordinal).ToList();

    /// <summary>A client of the configured context's API server (its kubeconfig, or the pod's service account).</summary>
    public KubeClient Client() => KubeClient.Create(options.Kubeconfig, options.Context);
}
