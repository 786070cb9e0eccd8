using Backstop.Core.Plugins;

namespace Backstop.Sources.MySql;

/// <summary><c>doctor</c> for MySQL/MariaDB: the databases on the server no source covers (its own system schemas excepted).</summary>
internal sealed partial class MySqlSource : IHealthChecked
{
    public SourcePlace Place => new(options.Host, []);

    public async Task<ServerInventory?> InventoryAsync(CancellationToken cancellationToken)
    {
        var all = (await QueryAsync(null, "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN (@s0, @s1, @s2, 'mysql') ORDER BY 1",
                cancellationToken, ("@s0", SystemSchemas[0]), ("@s1", SystemSchemas[1]), ("@s2", SystemSchemas[2])).ConfigureAwait(false))
            .Select(r => r[0]).ToList();
        return new ServerInventory($"mysql {Where}", all, options.Databases);
    }
}
