using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Locking;
using Backstop.Core.Maintenance;

namespace Backstop.Cli.Verbs;

/// <summary><c>backstop catalog rebuild [--force]</c>: the catalog again, from the manifests on the targets.</summary>
internal static class CatalogVerb
{
    /// <summary>The <c>catalog</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var rebuildForce = new Option<bool>("--force") { Description = "Replace a catalog that holds snapshots (the old one is kept beside it)" };
        var rebuild = new Command("rebuild", "Recreate the catalog from the manifests on the targets")
        {
            rebuildForce
        };
        rebuild.SetAction((p, ct) => CatalogVerb.RebuildAsync(Context.From(p), p.GetValue(rebuildForce), ct));
        var migrateTo = new Option<string>("--to") { Description = "The empty PostgreSQL database to copy the catalog into (postgresql://USER@HOST:PORT/DB, libpq's sslmode etc. in the query)", Required = true };
        var migratePassword = new Option<string?>("--password") { Description = "Where its password is: env:NAME or file:PATH (default: PGPASSWORD if set)" };
        var migrate = new Command("migrate", "Copy the embedded catalog's whole history into a shared PostgreSQL catalog")
        {
            migrateTo,
            migratePassword
        };
        migrate.SetAction((p, ct) => CatalogVerb.MigrateAsync(Context.From(p), p.GetValue(migrateTo)!, p.GetValue(migratePassword), ct));
        var catalogCommand = new Command("catalog", "The catalog of snapshots")
        {
            rebuild,
            migrate
        };
        return catalogCommand;
    }

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
            JsonOutput.Write(new RebuildDocument(result.Snapshots, result.Sources, result.Problems));
        }
        else
        {
            Console.WriteLine($"catalog rebuilt from the manifests on {config.Targets.Count} target(s): {result.Snapshots} snapshot(s) of {result.Sources} source(s)" +
                              (result.Problems.Count > 0 ? $"; {result.Problems.Count} problem(s) above" : "") + "; every copy was read back and hashed ('backstop verify --deep' also decodes the content)");
        }

        return result.Problems.Count == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }

    /// <summary>
    /// <c>backstop catalog migrate --to postgresql://…</c>: the embedded catalog's whole history copied into an empty
    /// PostgreSQL database, checked by counting every table on both sides; the file is left as it was.
    /// </summary>
    public static Task<int> MigrateAsync(Context context, string to, string? password, CancellationToken cancellationToken)
    {
        _ = cancellationToken;
        var config = context.LoadConfig();
        if (config.CatalogServer is not null)
        {
            throw new ConfigException($"the catalog is already on PostgreSQL ({config.CatalogName}); migrate copies the embedded file (catalog.path) into one");
        }

        var server = ServerDestination.Parse(to, CatalogServer.Schemes, CatalogServer.Example, null);
        if (server.Database.Length == 0)
        {
            throw new ConfigException($"--to: name the database, like {CatalogServer.Example}");
        }

        CatalogServer.CheckQuery(server, message => new ConfigException("--to: " + message));

        SecretRef? secret = null;
        if (password is not null)
        {
            secret = password.StartsWith("env:", StringComparison.Ordinal) || password.StartsWith("file:", StringComparison.Ordinal)
                ? new SecretRef(password, default)
                : throw new ConfigException("--password: name where the password is (env:NAME or file:PATH), never the password itself (it would show in ps)");
        }
        else if (Environment.GetEnvironmentVariable("PGPASSWORD") is { Length: > 0 })
        {
            secret = new SecretRef("env:PGPASSWORD", default);
        }

        if (!File.Exists(config.CatalogPath))
        {
            throw new ConfigException($"there is no catalog at {config.CatalogPath} to migrate");
        }

        using var runLock = RunLock.Acquire(config.LockPath); // no run writes to the file while it is copied
        using var from = CatalogStore.Open(config.CatalogPath);
        using var into = CatalogStore.Open(new PostgresCatalog(new CatalogServer(server, secret), config.Machine));
        var log = context.Json ? Console.Error : Console.Out;
        var counts = CatalogCopy.Copy(from, into, (table, rows) => log.WriteLine($"  {table,-15} {rows,9} row(s)"));
        var display = new CatalogServer(server, secret).Display;
        if (context.Json)
        {
            JsonOutput.Write(new MigrateResult(config.CatalogPath, display, counts.Select(c => new MigratedTable(c.Table, c.Rows)).ToList()));
        }
        else
        {
            Console.WriteLine($"catalog {config.CatalogPath} copied into {display}: {counts.Sum(c => c.Rows)} row(s) in {counts.Count} tables, every table counted on both sides");
            Console.WriteLine($"next: in {config.File}, replace the catalog with  catalog: {{url: \"{to}\", password: {password ?? "env:PGPASSWORD"}}}  (the file stays as it was)");
        }

        return Task.FromResult(ExitCodes.Ok);
    }

    private sealed record MigrateResult(string From, string To, IReadOnlyList<MigratedTable> Tables);

    private sealed record MigratedTable(string Table, long Rows);
}
