using Backstop.Core.Plugins;

namespace Backstop.Sources.Registry;

/// <summary><c>doctor</c> for a registry: the repositories of its catalog that no source covers.</summary>
internal sealed partial class RegistrySource : IHealthChecked
{
    public SourcePlace Place => new(options.Url.Host, []);

    public async Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken)
    {
        using var client = Client();
        var all = (await client.RepositoriesAsync(cancellationToken).ConfigureAwait(false))
            .Where(r => !r.StartsWith("backstop-drill-", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        return new ServerInventory($"registry {client.Where}", all, options.Repositories) { Noun = "repository", Key = "repositories" };
    }
}
