namespace Backstop.Core.Config;

/// <summary>Where this machine keeps its catalog and its staging, and the catalog's own settings.</summary>
/// <param name="Path">The SQLite catalog; with a shared catalog, this machine's own state file (the run lock, private folders) beside staging.</param>
internal sealed record CatalogSettings(string Path, string Staging, TimeSpan KeepFailed, CatalogServer? Server, string? DefaultMachine);

/// <summary>
/// <c>catalog: PATH</c>, or <c>catalog: {path: PATH, keep_failed: 30d}</c>, or
/// <c>catalog: {url: postgresql://…, password: env:NAME, default_machine: NAME}</c>; and <c>staging:</c>, which lives
/// beside it by default.
/// </summary>
internal static class CatalogBlock
{
    private const string DefaultPath = "./state/catalog.db";

    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("catalog", "", "The catalog: the history of every snapshot, in a SQLite file (a path alone) or a shared PostgreSQL database (url)") { Type = "path, or a mapping" },
        new("catalog.path", "./state/catalog.db", "The catalog file; relative paths are relative to the configuration file") { Type = "path" },
        new("catalog.url", "postgresql://backstop@db.example:5432/backstop?sslmode=verify-full",
            "A shared catalog on PostgreSQL for a fleet (instead of path); the query takes libpq's sslmode, sslrootcert, sslcert, sslkey; no password in it") { Type = "postgresql:// URL", Default = "none: the SQLite file", Instead = "catalog.path" },
        new("catalog.password", "env:BACKSTOP_CATALOG_PASSWORD", "The catalog user's password") { Type = "secret (env:NAME, file:PATH)", With = "catalog.url" },
        new("catalog.default_machine", "vps1", "With catalog.url: the machine that runs sources that name no machine") { Default = "the machine that defines them", With = "catalog.url" },
        new("catalog.keep_failed", "30d", "Failed records older than this leave the catalog at each run (their count stays in backstop_runs_total)"),
        new("staging", "./state/staging", "Scratch space for a run (spools, format checks); emptied after each run") { Default = "staging beside the catalog" },
    ];

    /// <summary>Reads both keys, each a block of its own: a wrong catalog still lets staging be checked.</summary>
    public static CatalogSettings Parse(ConfigMap top, ConfigDocument document)
    {
        var catalog = ConfigLoader.Block(document, () => ReadCatalog(top));
        var path = catalog?.Path ?? top.ResolvePath(DefaultPath);
        var stagingGiven = ConfigLoader.Block(document, () => top.PathValue("staging"));
        var staging = stagingGiven ?? System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, "staging");
        if (catalog?.Server is not null && stagingGiven is not null)
        {
            // No file catalog: this machine's own state (the run lock, private folders, drill evidence) lives beside staging,
            // a place the configuration says is writable (the configuration's folder may be a read-only mount).
            path = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(stagingGiven)!, "catalog.db");
        }

        return new CatalogSettings(path, staging, catalog?.KeepFailed ?? TimeSpan.FromDays(30), catalog?.Server, catalog?.DefaultMachine);
    }

    private static CatalogSettings ReadCatalog(ConfigMap top)
    {
        var map = top.IsMap("catalog") ? top.Map("catalog") : null;
        var catalog = (map is not null ? map.StringOr("path", DefaultPath) : top.String("catalog")) ?? DefaultPath;
        var keep = Durations.Positive(map, "keep_failed", TimeSpan.FromDays(30)) ?? TimeSpan.FromDays(30);
        var server = map is null ? null : ServerOf(map);
        var fallback = map is null ? null : MachineBlock.NameOf(map, "default_machine");
        map?.EnsureAllKeysKnown(KeyRows.Hint("catalog", Keys, "catalog."));
        if (catalog.Contains("://", StringComparison.Ordinal))
        {
            throw map is null
                ? top.Error("catalog", $"a catalog on a server is a mapping: catalog: {{url: {CatalogServer.Example}, password: env:BACKSTOP_CATALOG_PASSWORD}}")
                : map.Error("path", "catalog.path is the SQLite file; name a PostgreSQL catalog with catalog.url");
        }

        if (server is not null && map!.String("path") is not null)
        {
            throw map.Error("path", "give catalog.url or catalog.path, not both (with url, this machine's own state lives beside staging)");
        }

        if (fallback is not null && server is null)
        {
            throw map!.Error("default_machine", "default_machine only applies to a shared catalog (catalog.url): with the embedded file one process runs every source");
        }

        return new CatalogSettings(top.ResolvePath(catalog), "", keep, server, fallback);
    }

    /// <summary><c>catalog.url</c> and <c>catalog.password</c>: a PostgreSQL catalog, or null when the catalog is a file.</summary>
    private static CatalogServer? ServerOf(ConfigMap map)
    {
        var password = map.Secret("password");
        if (map.String("url") is not { } url)
        {
            return password is null ? null : throw map.Error("password", "catalog.password goes with catalog.url (a PostgreSQL catalog)");
        }

        var server = ServerDestination.Parse(url, CatalogServer.Schemes, CatalogServer.Example, null, message => map.Error("url", message.TrimStart(' ', ':')));
        if (server.Database.Length == 0)
        {
            throw map.Error("url", $"name the database, like {CatalogServer.Example}");
        }

        CatalogServer.CheckQuery(server, message => map.Error("url", message));
        return new CatalogServer(server, password);
    }
}
