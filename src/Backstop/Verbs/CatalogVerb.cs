using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Locking;
using Backstop.Core.Maintenance;

namespace Backstop.Cli.Verbs;

/// <summary><c>backstop catalog rebuild [--force]</c>: the catalog again, from the manifests on the targets.</summary>
internal static class CatalogVerb
{
    public static async Task<int> RebuildAsync(Context context, bool force, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        using var runLock = RunLock.Acquire(config.LockPath);
        if (config.CatalogServer is not null)
        {
            // A shared catalog is never moved aside: a rebuild fills an empty one (a new database), other machines' history stays.
            using var shared = Context.OpenCatalog(config);
            if (shared.Snapshots().Count is var count and > 0)
            {
                throw new ConfigException(
                    $"the {shared.Describe} holds {count} snapshot(s) of the fleet; a rebuild fills an empty catalog: create a new database, point catalog.url at it and run the rebuild again (the old one stays as it is)");
            }
        }
        else if (File.Exists(config.CatalogPath))
        {
            int held;
            string? damaged = null;
            try
            {
                using var existing = CatalogStore.Open(config.CatalogPath);
                held = existing.Snapshots().Count;
            }
            catch (Exception e) when (e is Core.Plugins.BackupException or System.Data.Common.DbException)
            {
                // Damaged, or of a newer backstop: exactly when a rebuild is needed. Moved aside unread, never migrated.
                (held, damaged) = (0, e is Core.Plugins.BackupException ? e.Message : $"catalog {config.CatalogPath} cannot be read: {e.Message}");
            }

            if (damaged is not null && !force)
            {
                throw new ConfigException($"{damaged}; add --force to move it aside (it is kept) and rebuild from the manifests on the targets");
            }

            if (held > 0 && !force)
            {
                throw new ConfigException(
                    $"the catalog {config.CatalogPath} holds {held} snapshot(s); rebuilding replaces it (failed runs' history is not on the targets): add --force, and the old one is kept beside it");
            }

            var kept = $"{config.CatalogPath}.replaced-{DateTime.UtcNow:yyyyMMddTHHmmssZ}";
            for (var n = 2; File.Exists(kept) || File.Exists(kept + "-wal"); n++)
            {
                kept = $"{config.CatalogPath}.replaced-{DateTime.UtcNow:yyyyMMddTHHmmssZ}-{n}"; // two rebuilds within a second
            }

            File.Move(config.CatalogPath, kept);
            foreach (var suffix in new[] { "-wal", "-shm" })
            {
                if (File.Exists(config.CatalogPath + suffix))
                {
                    File.Move(config.CatalogPath + suffix, kept + suffix);
                }
            }

            if (held > 0 || damaged is not null)
            {
                await Console.Error.WriteLineAsync($"backstop: the old catalog is kept as {kept}").ConfigureAwait(false);
            }
        }

        using var catalog = Context.OpenCatalog(config);
        var observer = new PlainObserver(context.Json ? Console.Error : Console.Out);
        var result = await new CatalogRebuilder(config, Plugins.Registry, observer).RebuildAsync(catalog, cancellationToken).ConfigureAwait(false);
        if (context.Json)
        {
            JsonOutput.Write(new { result.Snapshots, result.Sources, result.Problems });
        }
        else
        {
            Console.WriteLine($"catalog rebuilt from the manifests on {config.Targets.Count} target(s): {result.Snapshots} snapshot(s) of {result.Sources} source(s)" +
                              (result.Problems.Count > 0 ? $"; {result.Problems.Count} problem(s) above" : "") + "; every copy was read back and hashed ('backstop verify --deep' also decodes the content)");
        }

        return result.Problems.Count == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }
}
