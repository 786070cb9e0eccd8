using System.Net;
using System.Text.Json.Nodes;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Trees;

namespace Backstop.Sources.Kubernetes;

/// <summary>
/// Restore into a cluster (<c>--to kube://[CONTEXT][/NAMESPACE]</c>: a context of the source's kubeconfig, or its own;
/// with a namespace, every namespaced object goes there). First a server-side dry run of every object
/// (<c>dryRun=All</c>): the API validates each as it would a real create. Then the objects are created in Velero's
/// order — custom resource definitions, namespaces, storage classes, persistent volumes and claims, RBAC, service
/// accounts, secrets, config maps, then workloads and the rest — each with its result: created, skipped (it exists;
/// <c>--force</c> replaces it: updated), or failed with the API's reason. What fails does not stop the rest (a
/// disaster restore takes what it can), but the restore fails, naming every object that did not go back.
/// </summary>
internal sealed class KubernetesRestore(KubernetesAccess kube) : IChainRestorable
{
    /// <summary>A volume's listing is for the next level's change detection: nothing to restore.</summary>
    public bool Restores(string artifactName) => !FileTree.IsListing(artifactName);

    /// <summary>A level of a volume's data: its chain into FOLDER/NAMESPACE/CLAIM, restored as a tree.</summary>
    public IChainStage BeginChain(string artifactName, string destination, bool force) =>
        FileTree.BeginChain(VolumeFolder(artifactName, destination), force);

    /// <summary>FOLDER/NAMESPACE/CLAIM for a volume artifact, whose name comes from a manifest a target handed back: held to Kubernetes' names first.</summary>
    private static string VolumeFolder(string artifactName, string destination)
    {
        var parts = Uri.UnescapeDataString(artifactName[..^".tar".Length])[KubernetesSource.VolumePrefix.Length..].Split('/');
        if (!KubernetesSource.IsVolumeArtifact(artifactName) || parts.Length != 2 || !KubeNames.IsName(parts[0]) || parts[0].Contains('.', StringComparison.Ordinal) || !KubeNames.IsName(parts[1])
            || parts[1].Contains(':', StringComparison.Ordinal))
        {
            throw new BackupException($"artifact {KubeClient.Printable(artifactName)} does not name NAMESPACE/CLAIM; refused");
        }

        return Path.Combine(destination, parts[0], parts[1]);
    }

    private static readonly string[] Order =
    [
        "CustomResourceDefinition.apiextensions.k8s.io", "Namespace", "StorageClass.storage.k8s.io", "PersistentVolume", "PersistentVolumeClaim",
        "ClusterRole.rbac.authorization.k8s.io", "ClusterRoleBinding.rbac.authorization.k8s.io", "Role.rbac.authorization.k8s.io", "RoleBinding.rbac.authorization.k8s.io",
        "ServiceAccount", "Secret", "ConfigMap", "LimitRange", "ResourceQuota", "Service",
    ];

    private const string DestinationExample = "kube://[CONTEXT][/NAMESPACE][?namespace=FROM]";

    /// <summary>
    /// The context (null: the source's own), the namespace everything goes to (null: each its own), and the one
    /// namespace of the backup to restore (<c>?namespace=FROM</c>; null: all).
    /// </summary>
    internal static (string? Context, string? Namespace, string? From) Destination(string destination)
    {
        if (!destination.StartsWith("kube://", StringComparison.Ordinal))
        {
            throw new ConfigException($"--to {destination}: a kubernetes source restores into a cluster named like {DestinationExample} (a context of the source's kubeconfig)");
        }

        var rest = destination["kube://".Length..];
        string? from = null;
        if (rest.IndexOf('?', StringComparison.Ordinal) is var q and >= 0)
        {
            from = rest[(q + 1)..].StartsWith("namespace=", StringComparison.Ordinal) ? rest[(q + 1 + "namespace=".Length)..] : null;
            if (from is null || !KubeNames.IsName(from) || from.Contains('.', StringComparison.Ordinal))
            {
                throw new ConfigException($"--to {destination}: the only query is ?namespace=NAME (one namespace of the backup)");
            }

            rest = rest[..q];
        }

        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var context = slash < 0 ? rest : rest[..slash];
        var ns = slash < 0 ? "" : rest[(slash + 1)..].TrimEnd('/');
        if (ns.Length > 0 && (!KubeNames.IsName(ns) || ns.Contains('.', StringComparison.Ordinal)))
        {
            throw new ConfigException($"--to {destination}: '{ns}' is not a namespace name");
        }

        return (context.Length > 0 ? context : null, ns.Length > 0 ? ns : null, from);
    }

    /// <summary>Objects go into a cluster (<c>kube://…</c>); volume data into a folder.</summary>
    public IReadOnlyList<string> Plan(IReadOnlyList<string> artifacts, string destination)
    {
        var toCluster = destination.StartsWith("kube://", StringComparison.Ordinal);
        var chosen = artifacts.Where(a => !FileTree.IsListing(a) && KubernetesSource.IsVolumeArtifact(a) != toCluster).ToList();
        return chosen.Count > 0 ? chosen
            : throw new ConfigException(toCluster
                ? $"--to {destination}: the chosen artifacts are volume data; restore them into a folder (--to DIR)"
                : $"--to {destination}: the snapshot's objects go into a cluster (--to kube://[CONTEXT][/NAMESPACE]); a folder takes volume data, and this snapshot has none");
    }

    public static IReadOnlyDictionary<string, string> RecipePlaces(string destination) =>
        destination.StartsWith("kube://", StringComparison.Ordinal)
            ? throw new ConfigException("--to: the stock recipe unpacks into a folder and applies it with kubectl to its current context: give a folder (--to DIR)")
            : new Dictionary<string, string>(StringComparer.Ordinal) { ["DEST"] = destination };

    public async Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        if (KubernetesSource.IsVolumeArtifact(artifactName))
        {
            // Volume data: into FOLDER/NAMESPACE/CLAIM, through a tree's staged restore.
            var staged = await FileTree.StageAsync(content, VolumeFolder(artifactName, destination), force, null, cancellationToken).ConfigureAwait(false);
            staged.Publish();
            return staged.Found;
        }

        var (context, targetNamespace, from) = Destination(destination);
        if (context is not null && kube.Options.Kubeconfig is null)
        {
            throw new ConfigException($"--to {destination}: the source has no kubeconfig to take the context '{context}' from; leave the context out (kube:///NAMESPACE)");
        }

        using var client = KubeClient.Create(kube.Options.Kubeconfig, context ?? kube.Options.Context);
        var objects = new List<(string KindGroup, JsonObject Object)>();
        long bytes = 0;
        await foreach (var (kindGroup, _, o) in KubernetesSource.ReadAsync(content, cancellationToken).ConfigureAwait(false))
        {
            bytes += o.ToJsonString().Length;
            if (bytes > 512L << 20)
            {
                throw new BackupException("the objects to restore pass 512 MiB; restore namespaces one at a time (--to kube://CONTEXT/NAMESPACE)");
            }

            objects.Add((kindGroup, o));
        }

        if (from is not null)
        {
            // One namespace's objects (a drill, or a restore of one namespace): nothing cluster-scoped, nothing of the others.
            objects.RemoveAll(o => Namespace(o.Object) != from && !(targetNamespace is null && o.KindGroup == "Namespace" && Name(o.Object) == from));
            if (objects.Count == 0)
            {
                throw new BackupException($"the snapshot holds no object of namespace '{from}'");
            }
        }

        var spans = objects.Select(o => Namespace(o.Object)).Where(n => n is not null).Distinct().Count();
        if (targetNamespace is not null && spans > 1)
        {
            throw new ConfigException($"--to {destination}: the snapshot's objects are in {spans} namespaces, and one namespace cannot take them all " +
                                      "(two objects of one name would meet); name the one to restore with ?namespace=NAME, or leave the target namespace out");
        }

        if (targetNamespace is not null)
        {
            // Everything namespaced into one namespace: the stored namespaces are not made, the target is (when missing).
            objects.RemoveAll(o => o.KindGroup == "Namespace");
            foreach (var (_, o) in objects)
            {
                if (o["metadata"] is JsonObject meta && meta.ContainsKey("namespace"))
                {
                    meta["namespace"] = targetNamespace;
                }
            }

            objects.Insert(0, ("Namespace", new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = targetNamespace } }));
        }

        var results = await ApplyAsync(client, objects, force, Console.Out, cancellationToken).ConfigureAwait(false);
        var failed = results.Where(r => r.Outcome == "failed").ToList();
        if (failed.Count > 0)
        {
            throw new BackupException($"{failed.Count} of {results.Count} objects did not go back into {client.Server}: " +
                                      string.Join("; ", failed.Take(20).Select(f => $"{f.What}: {f.Reason}")) + (failed.Count > 20 ? "; …" : ""));
        }

        // What is there now, counted as the backup counted it (all of it, when nothing was moved to another namespace).
        var found = new Dictionary<string, long>(StringComparer.Ordinal);
        if (from is not null)
        {
            found["ns/" + from] = results.Count(r => r.KindGroup != "Namespace"); // compared with the namespace's count in the backup
        }
        else
        {
            foreach (var r in results.Where(r => targetNamespace is null || r.KindGroup != "Namespace"))
            {
                KubernetesSource.Count(found, r.KindGroup, targetNamespace is null ? r.Namespace : null);
            }

            if (targetNamespace is not null)
            {
                found.Remove("objects");
                found.Remove("namespaces");
            }
        }

        if (targetNamespace is not null && targetNamespace.StartsWith("backstop-drill-", StringComparison.Ordinal))
        {
            DrillResults[targetNamespace] = (results.Count(r => r.KindGroup != "Namespace" && r.Outcome is "created" or "skipped" or "updated"),
                results.Count(r => r.Outcome == "left out"));
        }

        found["created"] = results.Count(r => r.Outcome == "created");
        found["skipped"] = results.Count(r => r.Outcome == "skipped");
        found["updated"] = results.Count(r => r.Outcome == "updated");
        return found;
    }

    /// <summary>What a drill's restore put into its scratch namespace (there, and left out as unsafe), for the drill's check.</summary>
    internal static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (int There, int LeftOut)> DrillResults = new(StringComparer.Ordinal);

    internal sealed record ObjectResult(string KindGroup, string? Namespace, string What, string Outcome, string? Reason);

    /// <summary>Dry run of all, then create in order; one result per object, each also written to <paramref name="log"/>.</summary>
    internal static async Task<IReadOnlyList<ObjectResult>> ApplyAsync(KubeClient client, List<(string KindGroup, JsonObject Object)> objects, bool force, TextWriter log,
        CancellationToken cancellationToken)
    {
        int Rank(string kindGroup) => Array.IndexOf(Order, kindGroup) is var i and >= 0 ? i : kindGroup.Contains('.', StringComparison.Ordinal) && !kindGroup.EndsWith(".k8s.io", StringComparison.Ordinal)
            && !kindGroup.EndsWith(".apps", StringComparison.Ordinal) && !kindGroup.EndsWith(".batch", StringComparison.Ordinal) ? Order.Length + 2 : Order.Length + 1;
        var ordered = objects.OrderBy(o => Rank(o.KindGroup)).ThenBy(o => o.KindGroup, StringComparer.Ordinal).ToList();
        var restoredNamespaces = ordered.Where(o => o.KindGroup == "Namespace").Select(o => Name(o.Object)).ToHashSet(StringComparer.Ordinal);
        var restoredKinds = ordered.Where(o => o.KindGroup == "CustomResourceDefinition.apiextensions.k8s.io")
            .Select(o => $"{o.Object["spec"]?["names"]?["kind"].Str()}.{o.Object["spec"]?["group"].Str()}").ToHashSet(StringComparer.Ordinal);
        var resources = await client.DiscoverAsync(cancellationToken).ConfigureAwait(false);
        var results = new List<ObjectResult>();
        var refused = new Dictionary<JsonObject, ObjectResult>();
        var checkedFirst = new HashSet<JsonObject>();

        async Task<ObjectResult?> DryRunAsync(KubeResource r, string kindGroup, string what, JsonObject o)
        {
            checkedFirst.Add(o);
            var (status, body) = await client.SendAsync(HttpMethod.Post, r.Path(Namespace(o)) + "?dryRun=All", o, cancellationToken).ConfigureAwait(false);
            var ok = (int)status is >= 200 and <= 299 || status == HttpStatusCode.Conflict
                     || status == HttpStatusCode.NotFound && Namespace(o) is { } ns && restoredNamespaces.Contains(ns); // its namespace comes first
            return ok ? null : new ObjectResult(kindGroup, Namespace(o), what, "failed", "refused by the dry run: " + KubeClient.Reason(status, body));
        }

        // 1. The dry run: every object as the API would take it, nothing written.
        foreach (var (kindGroup, o) in ordered)
        {
            var what = Describe(kindGroup, o);
            if (Resolve(resources, o) is not { } r)
            {
                if (!restoredKinds.Contains(kindGroup))
                {
                    refused[o] = new ObjectResult(kindGroup, Namespace(o), what, "failed", $"the cluster serves no {kindGroup} (is its CustomResourceDefinition installed?)");
                }

                continue;
            }

            if (await DryRunAsync(r, kindGroup, what, o).ConfigureAwait(false) is { } no)
            {
                refused[o] = no;
            }
        }

        // 2. Create in order; what the dry run refused is reported, not sent.
        var waitedFor = new HashSet<string>(StringComparer.Ordinal);
        var drill = objects.FirstOrDefault(o => o.KindGroup == "Namespace").Object is { } first && Name(first).StartsWith("backstop-drill-", StringComparison.Ordinal);
        foreach (var (kindGroup, o) in ordered)
        {
            var what = Describe(kindGroup, o);
            ObjectResult result;
            if (refused.TryGetValue(o, out var no))
            {
                result = no;
            }
            else
            {
                var r = Resolve(resources, o);
                if (r is null && waitedFor.Add(kindGroup))
                {
                    // A custom resource whose definition this restore just created: wait (once per kind) until the API serves it.
                    for (var i = 0; i < 60 && (r = Resolve(resources, o)) is null; i++)
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
                        resources = await client.DiscoverAsync(cancellationToken).ConfigureAwait(false);
                    }
                }

                if (drill && DrillSafe(kindGroup, o) is { } why)
                {
                    results.Add(new ObjectResult(kindGroup, Namespace(o), what, "left out", why));
                    await log.WriteLineAsync($"  {"left out",-8} {what}: {why}").ConfigureAwait(false);
                    continue;
                }

                // A custom resource whose kind only now exists gets its dry run here, just before it is created.
                result = r is null
                    ? new ObjectResult(kindGroup, Namespace(o), what, "failed", $"the cluster serves no {kindGroup}, even after its CustomResourceDefinition was created")
                    : (!checkedFirst.Contains(o) ? await DryRunAsync(r, kindGroup, what, o).ConfigureAwait(false) : null)
                      ?? await CreateAsync(client, r, kindGroup, what, o, force, cancellationToken).ConfigureAwait(false);
            }

            results.Add(result);
            await log.WriteLineAsync($"  {result.Outcome,-8} {result.What}{(result.Reason is null ? "" : ": " + result.Reason)}").ConfigureAwait(false);
        }

        return results;
    }

    private static async Task<ObjectResult> CreateAsync(KubeClient client, KubeResource r, string kindGroup, string what, JsonObject o, bool force, CancellationToken cancellationToken)
    {
        var (status, body) = await client.SendAsync(HttpMethod.Post, r.Path(Namespace(o)), o, cancellationToken).ConfigureAwait(false);
        if ((int)status is >= 200 and <= 299)
        {
            return new ObjectResult(kindGroup, Namespace(o), what, "created", null);
        }

        if (status != HttpStatusCode.Conflict)
        {
            return new ObjectResult(kindGroup, Namespace(o), what, "failed", KubeClient.Reason(status, body));
        }

        if (!force)
        {
            return new ObjectResult(kindGroup, Namespace(o), what, "skipped", "it exists (--force replaces it)");
        }

        // --force: replace what is there, at its current resourceVersion.
        var path = $"{r.Path(Namespace(o))}/{Uri.EscapeDataString(Name(o))}";
        var (getStatus, current) = await client.SendAsync(HttpMethod.Get, path, null, cancellationToken).ConfigureAwait(false);
        if ((int)getStatus is < 200 or > 299)
        {
            return new ObjectResult(kindGroup, Namespace(o), what, "failed", KubeClient.Reason(getStatus, current));
        }

        var replacement = o.DeepClone().AsObject();
        replacement["metadata"]!["resourceVersion"] = JsonNode.Parse(current)?["metadata"]?["resourceVersion"].Str();
        var (putStatus, putBody) = await client.SendAsync(HttpMethod.Put, path, replacement, cancellationToken).ConfigureAwait(false);
        return (int)putStatus is >= 200 and <= 299
            ? new ObjectResult(kindGroup, Namespace(o), what, "updated", null)
            : new ObjectResult(kindGroup, Namespace(o), what, "failed", KubeClient.Reason(putStatus, putBody));
    }

    /// <summary>The resource that serves an object, by its own apiVersion (group and version) and kind.</summary>
    private static KubeResource? Resolve(IReadOnlyList<KubeResource> resources, JsonObject o)
    {
        var apiVersion = o["apiVersion"].Str() ?? "";
        var kind = o["kind"].Str() ?? "";
        var slash = apiVersion.IndexOf('/', StringComparison.Ordinal);
        var (group, version) = slash < 0 ? ("", apiVersion) : (apiVersion[..slash], apiVersion[(slash + 1)..]);
        var match = resources.FirstOrDefault(r => r.Group == group && r.Kind == kind);
        return match is null ? null : match with { Version = version };
    }

    private static string Name(JsonObject o) => o["metadata"]?["name"].Str() ?? "";

    private static string? Namespace(JsonObject o) => o["metadata"]?["namespace"].Str();

    private static string Describe(string kindGroup, JsonObject o) => Namespace(o) is { } ns ? $"{kindGroup} {ns}/{Name(o)}" : $"{kindGroup} {Name(o)}";

    /// <summary>
    /// In a drill's scratch namespace (on the production cluster) nothing may start working: workloads are scaled to
    /// zero, cron jobs suspended, load balancers made cluster-internal; an Ingress (it would take live traffic for its
    /// host) is not created. Returns why an object is left out, or null.
    /// </summary>
    private static string? DrillSafe(string kindGroup, JsonObject o)
    {
        switch (kindGroup)
        {
            case "Ingress.networking.k8s.io":
                return "a drill creates no Ingress: it would take live traffic for its host";
            case "Deployment.apps" or "StatefulSet.apps" or "ReplicaSet.apps":
                if (o["spec"] is JsonObject spec)
                {
                    spec["replicas"] = 0;
                }

                return null;
            case "CronJob.batch":
                if (o["spec"] is JsonObject cron)
                {
                    cron["suspend"] = true;
                }

                return null;
            case "DaemonSet.apps" or "Job.batch" or "Pod":
                return "a drill starts nothing on the cluster's nodes";
            case "Service":
                if (o["spec"] is JsonObject svc && svc["type"].Str() is "LoadBalancer" or "NodePort")
                {
                    svc["type"] = "ClusterIP";
                }

                return null;
            default:
                return null;
        }
    }
}
