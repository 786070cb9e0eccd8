using System.Formats.Tar;
using System.Text;
using System.Text.Json.Nodes;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Trees;
using Backstop.Core.Streams;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Kubernetes;

public sealed record KubernetesOptions(
    string? Kubeconfig,
    string? Context,
    IReadOnlyList<string>? Namespaces,
    IReadOnlyList<string> IncludeKinds,
    IReadOnlyList<string> ExcludeKinds,
    string? LabelSelector,
    bool ClusterResources)
{
    /// <summary><c>pvcs:</c>: null (none), ["all"], or NAMESPACE/NAME entries.</summary>
    public IReadOnlyList<string>? Pvcs { get; init; }

    /// <summary>This node's name (<c>node:</c>), when not the NODE_NAME variable or the host name.</summary>
    public string? Node { get; init; }

    /// <summary>Where the node's file system is (<c>/</c>, or <c>/host</c> in a pod that mounts it there).</summary>
    public string HostRoot { get; init; } = "/";

    /// <summary>Whether Secrets can be in the backup (not excluded, and not left out by an include list).</summary>
    public bool TakesSecrets =>
        !ExcludeKinds.Any(IsSecret) && (IncludeKinds.Count == 0 || IncludeKinds.Any(IsSecret));

    private static bool IsSecret(string k) => k.Equals("Secret", StringComparison.OrdinalIgnoreCase) || k.Equals("secrets", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// Kubernetes objects through the official client: every kind the API server serves (custom resources included), of
/// every namespace or those listed, filtered by kind and label, cluster-scoped kinds on request; each object as one
/// YAML file in a tar (<c>NAMESPACE/Kind.group/NAME.yaml</c>, <c>_cluster/…</c> for cluster-scoped ones) with the
/// server's own fields (status, managedFields, uid, resourceVersion, creationTimestamp, generation, selfLink) removed, so
/// that <c>kubectl apply -f</c> restores it. Never stored: events, nodes, endpoints and endpoint slices, leases, and
/// what a controller makes again (pods, replica sets, jobs and revisions it owns).
/// </summary>
public sealed partial class KubernetesSourceKind : SourceKind<KubernetesOptions, KubernetesDrillOptions>
{
    public override int RecoveryOrder => RecoveryStage.ClusterObjects;

    public override string Kind => "kubernetes";

    /// <summary>Volume data goes through the files walker, so its levels store only what changed; objects are whole in every snapshot.</summary>
    public override bool StoresChanges => true;

    public override string Summary => "A Kubernetes cluster's objects, one YAML file each, and volume data (`pvcs:`).";

    public override string RestoreTo => "kube://[CONTEXT][/NAMESPACE][?namespace=FROM], its volume data → a folder";

    public override string? RestoreToExample => "kube:///shop-restored?namespace=shop";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("kubeconfig", "/etc/rancher/k3s/k3s.yaml", "The kubeconfig file") { Default = "the pod's service account, else $KUBECONFIG or ~/.kube/config" },
        new("context", "default", "A context of the kubeconfig") { Default = "its current context" },
        new("namespaces", "all", "The namespaces: all, or a list"),
        new("include_kinds", "[ConfigMap, Deployment.apps]", "Only these kinds (Kind, Kind.group or the plural)") { Instead = "exclude_kinds" },
        new("exclude_kinds", "[Secret]", "Every kind but these") { Default = "none" },
        new("label_selector", "\"backup!=skip\"", "Only objects that match this label selector"),
        new("cluster_resources", "true", "Also cluster-scoped objects: CRDs, cluster roles, storage classes, persistent volumes…"),
        new("pvcs", "all", "Volume data: all, or [NAMESPACE/CLAIM…]; host-path and local volumes on this node are read") { Default = "none" },
        new("node", "node-1", "This node's name (which volumes are here)") { Default = "$NODE_NAME, else the host name" },
        new("host_root", "/host", "Where the node's file system is mounted, in a pod") { Default = "/" },
        new("drill.namespace", "shop", "The namespace a drill restores into a scratch one") { Default = "the one with the most objects" },
    ];

    public override IReadOnlyList<string> Facts { get; } = ["objects", "namespaces", "secrets"];

    public override IReadOnlyList<string> CountFacts { get; } = ["objects", "namespaces"];

    public override KubernetesOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var kubeconfig = map.PathValue("kubeconfig");
        var context = map.String("context");
        if (context is not null && kubeconfig is null)
        {
            throw map.Error("context", "a context needs the kubeconfig it is in (kubeconfig: ~/.kube/config)");
        }

        var namespaces = map.AllOrList("namespaces");
        foreach (var ns in namespaces ?? [])
        {
            if (!KubeNames.IsName(ns) || ns.Contains('.', StringComparison.Ordinal))
            {
                throw map.Error("namespaces", $"'{ns}' is not a namespace name (lowercase letters, digits and '-')");
            }
        }

        var include = map.StringList("include_kinds") ?? [];
        var exclude = map.StringList("exclude_kinds") ?? [];
        foreach (var k in include.Concat(exclude))
        {
            if (k.Length == 0 || !k.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-'))
            {
                throw map.Error(include.Contains(k) ? "include_kinds" : "exclude_kinds", $"'{k}' is not a kind (Deployment, Deployment.apps or deployments)");
            }
        }

        var pvcs = map.StringList("pvcs");
        foreach (var p in pvcs ?? [])
        {
            var parts = p.Split('/');
            if (!(p == "all" && pvcs!.Count == 1) && (parts.Length != 2 || !KubeNames.IsName(parts[0]) || !KubeNames.IsName(parts[1])))
            {
                throw map.Error("pvcs", $"'{p}' is not NAMESPACE/NAME of a persistent volume claim (or say all)");
            }
        }

        return new KubernetesOptions(kubeconfig, context, namespaces, include, exclude, map.String("label_selector"), map.BoolOr("cluster_resources", false))
        {
            Pvcs = pvcs,
            Node = map.String("node"),
            HostRoot = map.PathValue("host_root") ?? "/",
        };
    }

    public override string? RequiresEncryption(object options) =>
        options is KubernetesOptions { TakesSecrets: true }
            ? "this source would store the cluster's Secrets in the backup, readable by anyone who can read a target: configure encryption (backstop keygen), or add exclude_kinds: [Secret]"
            : null;

    public override ISource Create(SourceDefinition definition, KubernetesOptions options, KubernetesDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var kube = new KubernetesAccess(definition.Name, options);
        return new KubernetesSource(kube, new KubernetesRestore(kube), new KubernetesDrill(kube, drill), new KubernetesHealth(kube));
    }
}

/// <summary>
/// A kubernetes source: the cluster's objects (and the volumes on this node) captured, with their format checks, stock
/// recipes and recovery in two steps; its parts for the rest — restore, drill and health — each a type of its own over
/// one <see cref="KubernetesAccess"/>.
/// </summary>
internal sealed partial class KubernetesSource(KubernetesAccess kube, KubernetesRestore restore, KubernetesDrill drill, KubernetesHealth health) : ISource, IStagedRecovery
{
    public T? Capability<T>() where T : class => restore as T ?? drill as T ?? health as T ?? this as T;

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination) => KubernetesRestore.RecipePlaces(destination);

    internal const string ArtifactName = "resources.tar";
    internal const string ClusterFolder = "_cluster";

    /// <summary>Kinds whose objects a controller makes again: left out when a controller owns them.</summary>
    private static readonly HashSet<string> Owned = new(StringComparer.Ordinal)
    {
        "Pod", "ReplicaSet.apps", "ControllerRevision.apps", "Job.batch",
    };

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        using var client = kube.Client();
        var version = await client.GetAsync("/version", cancellationToken).ConfigureAwait(false);
        return new SourcePreflight(new Dictionary<string, string> { ["kubernetes"] = $"{client.Server} {version["gitVersion"].Str() ?? "?"}" }, 0);
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        using var client = kube.Client();
        var discovered = await client.DiscoverAsync(cancellationToken).ConfigureAwait(false);
        var resources = kube.Selected(discovered);
        var namespaceKind = resources.FirstOrDefault(r => r.KindGroup == "Namespace")
                            ?? throw new BackupException($"source '{kube.Source}': the API server {client.Server} serves no Namespace kind");
        var all = new List<JsonObject>();
        await foreach (var ns in client.ListAsync(namespaceKind, null, null, cancellationToken).ConfigureAwait(false))
        {
            all.Add(ns);
        }

        var existing = all.Select(n => n["metadata"]?["name"].Str() ?? "").ToHashSet(StringComparer.Ordinal);
        foreach (var missing in kube.Options.Namespaces?.Where(n => !existing.Contains(n)) ?? [])
        {
            throw new BackupException($"source '{kube.Source}': namespace '{missing}' does not exist on {client.Server} (listed in namespaces:)");
        }

        var wanted = kube.Options.Namespaces?.ToHashSet(StringComparer.Ordinal) ?? existing;
        var facts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using (var artifact = await sink.BeginArtifactAsync(ArtifactName, cancellationToken).ConfigureAwait(false))
        {
            await using (var tar = new TarWriter(artifact.Content, TarEntryFormat.Pax, leaveOpen: true))
            {
                var seen = new HashSet<string>(StringComparer.Ordinal);
                async Task WriteAsync(KubeResource r, JsonObject o)
                {
                    var (path, _) = PathOf(r, o, client.Server);
                    if (!seen.Add(path))
                    {
                        return;
                    }

                    Clean(r, o);
                    var bytes = Encoding.UTF8.GetBytes(KubeYaml.Write(o));
                    using var data = new MemoryStream(bytes, writable: false);
                    await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, path)
                    {
                        DataStream = data,
                        Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                        ModificationTime = DateTimeOffset.UnixEpoch,
                    }, cancellationToken).ConfigureAwait(false);
                    Count(facts, r.KindGroup, r.Namespaced ? o["metadata"]?["namespace"].Str() : null);
                }

                foreach (var ns in all.Where(n => wanted.Contains(n["metadata"]?["name"].Str() ?? "")))
                {
                    if (kube.Options.LabelSelector is null || kube.Options.Namespaces is not null)
                    {
                        await WriteAsync(namespaceKind, ns).ConfigureAwait(false);
                    }
                }

                foreach (var r in resources.Where(r => r.KindGroup != "Namespace"))
                {
                    var scopes = !r.Namespaced ? [null] : kube.Options.Namespaces is null ? [null] : kube.Options.Namespaces.Select(n => (string?)n).ToArray();
                    foreach (var scope in scopes)
                    {
                        await foreach (var o in client.ListAsync(r, scope, kube.Options.LabelSelector, cancellationToken).ConfigureAwait(false))
                        {
                            var ns = o["metadata"]?["namespace"].Str();
                            if (r.Namespaced && (ns is null || !wanted.Contains(ns)) || Skip(r, o))
                            {
                                continue;
                            }

                            await WriteAsync(r, o).ConfigureAwait(false);
                        }
                    }
                }
            }

            await artifact.CompleteAsync(facts, cancellationToken).ConfigureAwait(false);
        }

        await CaptureVolumesAsync(client, sink, discovered, wanted, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Facts: objects, namespaces, secrets, a count per kind (<c>Deployment.apps=3</c>) and per namespace (<c>ns/shop=12</c>).</summary>
    internal static void Count(Dictionary<string, long> facts, string kindGroup, string? ns)
    {
        if (ns is not null)
        {
            facts["ns/" + ns] = facts.GetValueOrDefault("ns/" + ns) + 1;
        }

        facts["objects"] = facts.GetValueOrDefault("objects") + 1;
        facts["namespaces"] = facts.GetValueOrDefault("namespaces") + (kindGroup == "Namespace" ? 1 : 0);
        facts["secrets"] = facts.GetValueOrDefault("secrets") + (kindGroup == "Secret" ? 1 : 0);
        facts[kindGroup] = facts.GetValueOrDefault(kindGroup) + 1;
    }

    /// <summary>What a controller makes again, and tokens the cluster issues itself.</summary>
    internal static bool Skip(KubeResource r, JsonObject o)
    {
        if (Owned.Contains(r.KindGroup) && o["metadata"]?["ownerReferences"] is JsonArray owners && owners.Any(x => x?["controller"].Flag() == true))
        {
            return true;
        }

        return r.KindGroup == "Secret" && o["type"].Str() == "kubernetes.io/service-account-token";
    }

    /// <summary>The object's file in the tar, from names checked against Kubernetes' own rules (a server's names are not trusted as paths).</summary>
    internal static (string Path, string Name) PathOf(KubeResource r, JsonObject o, string server)
    {
        var objectName = o["metadata"]?["name"].Str() ?? "";
        if (!KubeNames.IsName(objectName))
        {
            throw new BackupException($"the Kubernetes API server {server} sent a {r.KindGroup} named '{KubeClient.Printable(objectName)}', which is not an object name");
        }

        var folder = ClusterFolder;
        if (r.Namespaced)
        {
            folder = o["metadata"]?["namespace"].Str() ?? "";
            if (!KubeNames.IsName(folder) || folder.Contains('.', StringComparison.Ordinal))
            {
                throw new BackupException($"the Kubernetes API server {server} sent a {r.KindGroup} in a namespace named '{KubeClient.Printable(folder)}', which is not a namespace name");
            }
        }

        return ($"{folder}/{r.KindGroup}/{objectName}.yaml", objectName);
    }

    /// <summary>The fields the server sets, removed (as Velero does), so the object applies to any cluster.</summary>
    internal static void Clean(KubeResource r, JsonObject o)
    {
        o.Remove("status");
        if (o["metadata"] is JsonObject meta)
        {
            foreach (var field in new[] { "uid", "resourceVersion", "creationTimestamp", "generation", "selfLink", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds" })
            {
                meta.Remove(field);
            }
        }

        if (o["metadata"] is JsonObject owned)
        {
            owned.Remove("ownerReferences"); // the owners' uids are this cluster's: elsewhere the garbage collector deletes the object
        }

        if (r.KindGroup == "Service" && o["spec"] is JsonObject spec)
        {
            if (spec["clusterIP"].Str() != "None")
            {
                spec.Remove("clusterIP"); // the cluster gives a new one; the same address may be taken
                spec.Remove("clusterIPs");
            }

            spec.Remove("healthCheckNodePort"); // node ports too: in the same cluster (a drill) they are taken
            foreach (var port in spec["ports"] as JsonArray ?? [])
            {
                (port as JsonObject)?.Remove("nodePort");
            }
        }

        if (r.KindGroup == "PersistentVolume" && o["spec"]?["claimRef"] is JsonObject claim)
        {
            claim.Remove("uid");
            claim.Remove("resourceVersion");
        }
    }

    public IArtifactValidator? ValidatorFor(string artifactName) =>
        FileTree.IsListing(artifactName) ? null
        : IsVolumeArtifact(artifactName) ? new FileTree(kube.Source, artifactName).ValidatorFor(artifactName) : new ResourcesValidator();

    /// <summary>Re-reads the tar: only <c>NS/Kind.group/NAME.yaml</c> files, each one object whose kind and name are its path's.</summary>
    private sealed class ResourcesValidator : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            var facts = new Dictionary<string, long>(StringComparer.Ordinal);
            await foreach (var (kindGroup, ns, _) in ReadAsync(content, cancellationToken).ConfigureAwait(false))
            {
                Count(facts, kindGroup, ns);
            }

            return facts;
        }
    }

    /// <summary>Every object of a stored tar: its kind (Kind.group), its namespace (null when cluster-scoped) and the object.</summary>
    internal static async IAsyncEnumerable<(string KindGroup, string? Namespace, JsonObject Object)> ReadAsync(Stream content,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new TarReader(new ForwardOnlyStream(content), leaveOpen: true);
        while (await TarEntries.NextAsync(reader, "the cluster's archive", cancellationToken).ConfigureAwait(false) is { } entry)
        {
            var path = entry.Name;
            if (entry.EntryType is TarEntryType.ExtendedAttributes or TarEntryType.GlobalExtendedAttributes)
            {
                continue;
            }

            var parts = path.Split('/');
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || parts.Length != 3 || !parts[2].EndsWith(".yaml", StringComparison.Ordinal)
                || (parts[0] != ClusterFolder && !KubeNames.IsName(parts[0])) || parts[1].Length == 0 || !parts[1].All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-'))
            {
                throw new BackupException($"the resources tar holds '{KubeClient.Printable(path)}' ({entry.EntryType}), which is not NAMESPACE/Kind.group/NAME.yaml");
            }

            if (entry.Length > 16 << 20)
            {
                throw new BackupException($"{path} is larger than 16 MiB; no Kubernetes object is");
            }

            using var buffer = new MemoryStream();
            if (entry.DataStream is { } data)
            {
                await data.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
            }

            var o = KubeYaml.Read(Encoding.UTF8.GetString(buffer.ToArray()), path) as JsonObject
                    ?? throw new BackupException($"{path} is not a Kubernetes object (a mapping)");
            var kind = o["kind"].Str() ?? "";
            var apiVersion = o["apiVersion"].Str() ?? "";
            var group = apiVersion.Contains('/', StringComparison.Ordinal) ? apiVersion[..apiVersion.IndexOf('/', StringComparison.Ordinal)] : "";
            var kindGroup = group.Length == 0 ? kind : $"{kind}.{group}";
            var objectName = o["metadata"]?["name"].Str() ?? "";
            var ns = o["metadata"]?["namespace"].Str();
            if (kindGroup != parts[1] || objectName + ".yaml" != parts[2] || (parts[0] == ClusterFolder ? ns is not null : ns != parts[0]))
            {
                throw new BackupException($"{path} holds {KubeClient.Printable(kindGroup)} {KubeClient.Printable(ns ?? "")}/{KubeClient.Printable(objectName)}, not what its path says");
            }

            yield return (kindGroup, ns, o);
        }
    }

    /// <summary>Unpack, then <c>kubectl apply</c>: definitions and namespaces first, then everything (already-applied ones unchanged).</summary>
    /// <summary>The controllers that run pods: applied last in a recovery, once the data they use is back.</summary>
    internal static readonly string[] WorkloadKinds = ["Deployment.apps", "StatefulSet.apps", "DaemonSet.apps", "ReplicaSet.apps", "Job.batch", "CronJob.batch"];

    /// <summary>
    /// A recovery in two steps: every object but the workloads (namespaces and CRDs first), so claims, config and secrets
    /// are there for the data; then, last, the workloads, which start on the data restored.
    /// </summary>
    public (string Hold, string Release)? RecoverySteps(string artifactName, string storedFile) => TwoSteps(artifactName, storedFile);

    internal static (string Hold, string Release)? TwoSteps(string artifactName, string storedFile)
    {
        if (IsVolumeArtifact(artifactName) || FileTree.IsListing(artifactName))
        {
            return null;
        }

        // Run inside DEST (a placeholder is never inside quotes): find's paths are relative to it.
        var isWorkload = string.Join(" -o ", WorkloadKinds.Select(k => $"-path './*/{k}/*'"));
        var hold = $"mkdir -p DEST && zstd -dc {storedFile} | tar -x -C DEST && for d in DEST/{ClusterFolder}/CustomResourceDefinition.apiextensions.k8s.io DEST/{ClusterFolder}/Namespace; " +
                   "do if [ -d \"$d\" ]; then kubectl apply -R -f \"$d\" || exit 1; fi; done && " +
                   $"(cd DEST && find . -name '*.yaml' ! \\( {isWorkload} \\) -exec kubectl apply -f {{}} +)";
        var release = $"(cd DEST && find . -mindepth 2 -maxdepth 2 -type d \\( {string.Join(" -o ", WorkloadKinds.Select(k => $"-name '{k}'"))} \\) -exec kubectl apply -R -f {{}} \\;)";
        return (hold, release);
    }

    public string RestoreRecipe(string artifactName, string storedFile) => IsVolumeArtifact(artifactName) || FileTree.IsListing(artifactName)
        ? FileTree.RestoreRecipe(artifactName, storedFile)
        : $"mkdir -p DEST && zstd -dc {storedFile} | tar -x -C DEST && for d in DEST/{ClusterFolder}/CustomResourceDefinition.apiextensions.k8s.io DEST/{ClusterFolder}/Namespace; " +
        "do if [ -d \"$d\" ]; then kubectl apply -R -f \"$d\" || exit 1; fi; done && kubectl apply -R -f DEST";
}
