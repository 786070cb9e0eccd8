using System.Globalization;
using System.Net;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Kubernetes;

/// <summary><c>drill: {namespace: NAME}</c>: the namespace whose objects the drill restores (by default the one with the most).</summary>
public sealed record KubernetesDrillOptions(string? Namespace);

public sealed partial class KubernetesSourceKind
{
    public override KubernetesDrillOptions? ParseDrill(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var ns = map.String("namespace");
        return ns is null || KubeNames.IsName(ns) && !ns.Contains('.', StringComparison.Ordinal)
            ? new KubernetesDrillOptions(ns)
            : throw map.Error("namespace", $"'{ns}' is not a namespace name");
    }
}

/// <summary>
/// A Kubernetes drill: the objects of one namespace go, through the restore's own path (a dry run of each, then
/// creation in order), into a scratch namespace with a random name (<c>backstop-drill-TOKEN</c>) on the source's
/// cluster; the objects there are counted against the backup's count for that namespace; then the namespace is
/// deleted (and by the next drill or run, if this one is killed).
/// </summary>
internal sealed class KubernetesDrill(KubernetesAccess kube, KubernetesDrillOptions? drillOptions) : IDrillable
{
    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var facts = scope.Artifacts.Single(a => a.Name == KubernetesSource.ArtifactName).Facts; // volume data is not drilled (a folder restore, proven by restore itself)
        var from = drillOptions?.Namespace
                   ?? facts.Where(f => f.Key.StartsWith("ns/", StringComparison.Ordinal)).OrderByDescending(f => f.Value).ThenBy(f => f.Key, StringComparer.Ordinal)
                       .Select(f => f.Key[3..]).FirstOrDefault()
                   ?? throw new BackupException($"source '{kube.Source}': the snapshot holds no namespaced object to drill");
        if (!facts.TryGetValue("ns/" + from, out var expected))
        {
            throw new BackupException($"source '{kube.Source}': the snapshot holds no object of namespace '{from}' (drill.namespace)");
        }

        var scratch = $"backstop-drill-{scope.Token}";
        using var client = kube.Client();
        _ = await client.GetAsync("/version", cancellationToken).ConfigureAwait(false);
        var (status, _) = await client.SendAsync(HttpMethod.Get, $"/api/v1/namespaces/{scratch}", null, cancellationToken).ConfigureAwait(false);
        if (status != HttpStatusCode.NotFound)
        {
            throw new BackupException($"source '{kube.Source}': the cluster {client.Server} already has a namespace {scratch}; drill again");
        }

        scope.Leave("ns:" + scratch);
        scope.Note($"the {expected.ToString(CultureInfo.InvariantCulture)} objects of namespace {from} restored into the scratch namespace {scratch} on {client.Server}");
        return new Scratch(kube, from, scratch, expected);
    }

    /// <summary>Deletes a scratch namespace a killed drill left.</summary>
    public async Task<string?> SweepAsync(string leftover, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leftover);
        if (!System.Text.RegularExpressions.Regex.IsMatch(leftover, "^ns:backstop-drill-[0-9a-f]{12}$"))
        {
            return $"a killed drill of '{kube.Source}' recorded '{leftover}', which is not a drill's scratch namespace; left alone";
        }

        using var client = kube.Client();
        var (status, body) = await client.SendAsync(HttpMethod.Delete, $"/api/v1/namespaces/{leftover[3..]}", null, cancellationToken).ConfigureAwait(false);
        return (int)status is >= 200 and <= 299 || status == HttpStatusCode.NotFound
            ? null
            : $"the scratch namespace {leftover[3..]} a killed drill left on {client.Server} could not be deleted ({KubeClient.Reason(status, body)}); delete it by hand";
    }

    private sealed class Scratch(KubernetesAccess source, string from, string scratch, long expected) : IDrillScratch
    {
        public string Description => $"the scratch namespace {scratch} (objects of {from})";

        public IReadOnlyDictionary<string, string> Tools { get; } = new Dictionary<string, string>();

        public IReadOnlyList<string> Order(IReadOnlyList<string> artifacts) => artifacts.Where(a => a == KubernetesSource.ArtifactName).ToList();

        public string Destination(string artifact) => $"kube:///{scratch}?namespace={from}";

        /// <summary>The objects in the scratch namespace, listed back kind by kind, against the backup's count for the namespace.</summary>
        public async Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken)
        {
            using var client = source.Client();
            long there = 0;
            foreach (var r in source.Selected(await client.DiscoverAsync(cancellationToken).ConfigureAwait(false)).Where(r => r.Namespaced))
            {
                await foreach (var o in client.ListAsync(r, scratch, null, cancellationToken).ConfigureAwait(false))
                {
                    if (!KubernetesSource.Skip(r, o))
                    {
                        there++;
                    }
                }
            }

            // What the restore put there (created, or found made by the cluster: a default service account, the root CA
            // config map) is all listed back; with what a drill leaves out (pods, ingresses…) it is the backup's count.
            var (put, leftOut) = KubernetesRestore.DrillResults.TryRemove(scratch, out var recorded) ? recorded : (0, 0);
            return
            [
                new DrillCheck($"objects of {from} restored or left out as unsafe in a drill", expected.ToString(CultureInfo.InvariantCulture),
                    $"{(put + leftOut).ToString(CultureInfo.InvariantCulture)} ({leftOut.ToString(CultureInfo.InvariantCulture)} left out)", put + leftOut == expected),
                new DrillCheck($"objects listed back in {scratch}", $"≥ {put.ToString(CultureInfo.InvariantCulture)}", there.ToString(CultureInfo.InvariantCulture), put > 0 && there >= put),
            ];
        }

        public async ValueTask DisposeAsync()
        {
            using var client = source.Client();
            var (status, body) = await client.SendAsync(HttpMethod.Delete, $"/api/v1/namespaces/{scratch}", null, CancellationToken.None).ConfigureAwait(false);
            if ((int)status is < 200 or > 299 && status != HttpStatusCode.NotFound)
            {
                throw new BackupException($"the scratch namespace {scratch} on {client.Server} could not be deleted ({KubeClient.Reason(status, body)}); delete it by hand");
            }
        }
    }
}
