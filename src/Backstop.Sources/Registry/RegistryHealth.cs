using Backstop.Core.Plugins;

namespace Backstop.Sources.Registry;

/// <summary><c>doctor</c> for a registry: the repositories of its catalog that no source covers.</summary>
internal sealed class RegistryHealth(RegistryAccess access) : IHealthChecked
{
    public SourcePlace Place => new(access.Options.Url.Host, []);

    public async Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken)
    {
        using var client = access.Client();
        var all = (await client.RepositoriesAsync(cancellationToken).ConfigureAwait(false))
            .Where(r => !r.StartsWith("backstop-drill-", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        return new ServerInventory($"registry {client.Where}", all, access.Options.Repositories) { Noun = "repository", Key = "repositories" };
    }
}
