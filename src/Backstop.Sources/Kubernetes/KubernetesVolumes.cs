using System.Net;
using System.Text.Json.Nodes;
using Backstop.Core.Plugins;
using Backstop.Sources.Trees;

namespace Backstop.Sources.Kubernetes;

/// <summary>
/// Persistent-volume data (<c>pvcs: all | [NAMESPACE/NAME…]</c>): each claim is resolved to its volume; a host-path or
/// local volume (k3s' local-path provisioner makes these) whose node is this one (<c>node:</c>, else the NODE_NAME
/// variable a pod gets from the downward API, else the host name) is read from its folder (under <c>host_root</c>
/// when the node's file system is mounted elsewhere, as in a pod) into <c>pvc/NAMESPACE/NAME.tar</c> with the
/// tree walker the files kind uses, facts files and bytes. What is not on this node, not bound, or not a folder on a node
/// (CSI, NFS, cloud disks) is named in a warning and skipped, never silently. Restore: <c>--to FOLDER</c>.
/// </summary>
internal sealed partial class KubernetesSource
{
    internal const string VolumePrefix = "pvc/";

    internal static string VolumeArtifact(string ns, string claim) => Core.Text.SafeNames.Encode($"{VolumePrefix}{ns}/{claim}") + ".tar";

    internal static bool IsVolumeArtifact(string artifact) => artifact.StartsWith(Core.Text.SafeNames.Encode(VolumePrefix), StringComparison.Ordinal) && artifact.EndsWith(".tar", StringComparison.Ordinal);

    private string Node => kube.Options.Node ?? Environment.GetEnvironmentVariable("NODE_NAME") ?? Environment.MachineName;

    private async Task CaptureVolumesAsync(KubeClient client, ICaptureSink sink, IReadOnlyList<KubeResource> all, HashSet<string> wanted, CancellationToken cancellationToken)
    {
        if (kube.Options.Pvcs is not { } selection)
        {
            return;
        }

        var claimKind = all.FirstOrDefault(r => r.KindGroup == "PersistentVolumeClaim")
                        ?? throw new BackupException($"source '{kube.Source}': the API server {client.Server} serves no PersistentVolumeClaim kind");
        var claims = new List<JsonObject>();
        await foreach (var c in client.ListAsync(claimKind, null, null, cancellationToken).ConfigureAwait(false))
        {
            claims.Add(c);
        }

        string Key(JsonObject c) => $"{c["metadata"]?["namespace"].Str()}/{c["metadata"]?["name"].Str()}";
        var chosen = selection.Count == 1 && selection[0] == "all"
            ? claims.Where(c => wanted.Contains(c["metadata"]?["namespace"].Str() ?? "")).OrderBy(Key, StringComparer.Ordinal).ToList()
            : selection.Select(s => claims.FirstOrDefault(c => Key(c) == s)
                                    ?? throw new BackupException($"source '{kube.Source}': there is no PersistentVolumeClaim {s} on {client.Server} (listed in pvcs:)")).ToList();
        foreach (var claim in chosen)
        {
            var key = Key(claim);
            var ns = claim["metadata"]!["namespace"].Str()!;
            var claimName = claim["metadata"]!["name"].Str()!;
            if (!KubeNames.IsName(ns) || !KubeNames.IsName(claimName))
            {
                throw new BackupException($"the Kubernetes API server {client.Server} sent a claim named '{KubeClient.Printable(key)}', which is not a name");
            }

            var volume = claim["spec"]?["volumeName"].Str();
            if (volume is null || !KubeNames.IsName(volume))
            {
                sink.Warn($"persistent volume claim {key} is not bound to a volume; its data was not backed up");
                continue;
            }

            var (status, body) = await client.SendAsync(HttpMethod.Get, $"/api/v1/persistentvolumes/{volume}", null, cancellationToken).ConfigureAwait(false);
            if (status != HttpStatusCode.OK || Parse(body) is not JsonObject pv)
            {
                sink.Warn($"persistent volume {volume} of claim {key} cannot be read ({KubeClient.Reason(status, body)}); its data was not backed up");
                continue;
            }

            var path = pv["spec"]?["hostPath"]?["path"].Str() ?? pv["spec"]?["local"]?["path"].Str();
            if (path is null || !path.StartsWith('/') || path.Contains("/../", StringComparison.Ordinal) || path.EndsWith("/..", StringComparison.Ordinal))
            {
                sink.Warn($"volume {volume} of claim {key} is not a folder on a node (CSI, NFS or a cloud disk): back it up where it lives (a files source on the NFS server, or the storage's snapshots)");
                continue;
            }

            var nodes = (pv["spec"]?["nodeAffinity"]?["required"]?["nodeSelectorTerms"] as JsonArray ?? [])
                .SelectMany(t => t?["matchExpressions"] as JsonArray ?? [])
                .Where(e => e?["key"].Str() == "kubernetes.io/hostname" && e?["operator"].Str() == "In")
                .SelectMany(e => e?["values"] as JsonArray ?? []).Select(v => v.Str() ?? "").ToList();
            if (nodes.Count == 0)
            {
                sink.Warn($"volume {volume} of claim {key} is a host folder without node affinity: which node holds it cannot be told; skipped " +
                          "(back the folder up with a files source on its node)");
                continue;
            }

            if (!nodes.Contains(Node, StringComparer.Ordinal))
            {
                sink.Warn($"volume {volume} of claim {key} is on node {string.Join(", ", nodes)}, not on this one ({Node}): skipped here; run backstop on that node (the CronJob per node in deploy/kubernetes)");
                continue;
            }

            var folder = Path.Combine(kube.Options.HostRoot, path.TrimStart('/'));
            if (!Directory.Exists(folder))
            {
                throw new BackupException($"source '{kube.Source}': volume {volume} of claim {key} should be at {folder} on this node ({Node}), but that folder does not exist" +
                                          (kube.Options.HostRoot == "/" ? "" : $" (host_root is {kube.Options.HostRoot}: is the node's folder mounted there?)"));
            }

            await new FileTree(kube.Source, VolumeArtifact(ns, claimName)).CaptureAsync(sink, [folder], [], cancellationToken).ConfigureAwait(false);
        }
    }

    private static JsonNode? Parse(string body)
    {
        try
        {
            return JsonNode.Parse(body);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
