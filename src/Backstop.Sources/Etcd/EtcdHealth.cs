using Backstop.Core.Plugins;

namespace Backstop.Sources.Etcd;

/// <summary><c>doctor</c> for etcd: k3s' own snapshots, and where the data lives (the single-point-of-failure check).</summary>
internal sealed class EtcdHealth(string name, EtcdOptions options) : IHealthChecked
{
    /// <summary>k3s' own etcd snapshots, when this is k3s' etcd: on, and the newest within two of its intervals.</summary>
    public Task<IReadOnlyList<Finding>> CheckHealthAsync(CancellationToken cancellationToken) =>
        Task.FromResult(K3sSnapshots.Check(name, options, DateTimeOffset.UtcNow));

    public SourcePlace Place => new(options.Endpoints.Count == 1 ? options.Endpoints[0].Host : $"a cluster of {options.Endpoints.Count} endpoints", []);
}
