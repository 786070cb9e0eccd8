using System.Text.Json.Nodes;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Kubernetes;

/// <summary><c>doctor</c> for a cluster: the namespaces, and the persistent volume claims, that no source covers.</summary>
internal sealed class KubernetesHealth(KubernetesAccess kube) : IHealthChecked
{
    public SourcePlace Place => new(null, []);

    public async Task<IReadOnlyList<ServerInventory>> InventoriesAsync(CancellationToken cancellationToken)
    {
        using var client = kube.Client();
        var resources = await client.DiscoverAsync(cancellationToken).ConfigureAwait(false);
        var namespaces = new List<string>();
        await foreach (var ns in client.ListAsync(resources.First(r => r.KindGroup == "Namespace"), null, null, cancellationToken).ConfigureAwait(false))
        {
            if (ns["metadata"]?["name"].Str() is { } n && !n.StartsWith("backstop-drill-", StringComparison.Ordinal))
            {
                namespaces.Add(n);
            }
        }

        var claims = new List<string>();
        if (resources.FirstOrDefault(r => r.KindGroup == "PersistentVolumeClaim") is { } claimKind)
        {
            await foreach (JsonObject c in client.ListAsync(claimKind, null, null, cancellationToken).ConfigureAwait(false))
            {
                claims.Add($"{c["metadata"]?["namespace"].Str()}/{c["metadata"]?["name"].Str()}");
            }
        }

        var wanted = kube.Options.Namespaces?.ToHashSet(StringComparer.Ordinal);
        IReadOnlyList<string> coveredClaims = kube.Options.Pvcs is null ? []
            : kube.Options.Pvcs is ["all"] ? claims.Where(c => wanted is null || wanted.Contains(c[..c.IndexOf('/', StringComparison.Ordinal)])).ToList()
            : kube.Options.Pvcs;
        return
        [
            new ServerInventory($"kubernetes {client.Server} namespaces", namespaces.Order(StringComparer.Ordinal).ToList(), kube.Options.Namespaces) { Noun = "namespace", Key = "namespaces" },
            new ServerInventory($"kubernetes {client.Server} volume claims", claims.Order(StringComparer.Ordinal).ToList(), coveredClaims)
            {
                Noun = "persistent volume claim", Key = "pvcs",
            },
        ];
    }
}
