using Backstop.Core.Plugins;

namespace Backstop.Sources.MySql;

/// <summary><c>doctor</c> for MySQL/MariaDB: the databases on the server no source covers (its own system schemas excepted).</summary>
internal sealed class MySqlHealth(MySqlServer server) : IHealthChecked
{
    public SourcePlace Place => new(server.Options.Host, []);

    public async Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken)
    {
        var all = (await server.QueryAsync(null, "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN (@s0, @s1, @s2, 'mysql') ORDER BY 1",
                cancellationToken, ("@s0", MySqlServer.SystemSchemas[0]), ("@s1", MySqlServer.SystemSchemas[1]), ("@s2", MySqlServer.SystemSchemas[2])).ConfigureAwait(false))
            .Select(r => r[0]).ToList();
        return new ServerInventory($"mysql {server.Where}", all, server.Options.Databases);
    }
}
