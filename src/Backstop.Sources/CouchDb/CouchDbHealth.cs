using Backstop.Core.Plugins;

namespace Backstop.Sources.CouchDb;

/// <summary><c>doctor</c> for CouchDB: the databases on the server no source covers (its own, named with a leading _, excepted).</summary>
internal sealed class CouchDbHealth(CouchDbServer server) : IHealthChecked
{
    public SourcePlace Place => new(server.Options.Url.Host, []);

    public async Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken)
    {
        using var http = server.Client();
        var all = (await server.GetAsync(http, "/_all_dbs", cancellationToken).ConfigureAwait(false))
            .EnumerateArray().Select(d => d.GetString()!).Where(d => !d.StartsWith('_') && !d.StartsWith("backstop_drill_", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).ToList();
        return new ServerInventory($"couchdb {server.Where}", all, server.Options.Databases);
    }
}
