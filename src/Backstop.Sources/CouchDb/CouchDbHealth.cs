using Backstop.Core.Plugins;

namespace Backstop.Sources.CouchDb;

/// <summary><c>doctor</c> for CouchDB: the databases on the server no source covers (its own, named with a leading _, excepted).</summary>
internal sealed partial class CouchDbSource : IHealthChecked
{
    public SourcePlace Place => new(options.Url.Host, []);

    public async Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken)
    {
        using var http = Client();
        var all = (await GetAsync(http, "/_all_dbs", cancellationToken).ConfigureAwait(false))
            .EnumerateArray().Select(d => d.GetString()!).Where(d => !d.StartsWith('_') && !d.StartsWith("backstop_drill_", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        return new ServerInventory($"couchdb {Where}", all, options.Databases);
    }
}
