using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Restoring;
using Npgsql;

namespace Backstop.Sources.Postgres;

/// <summary>
/// Restore into <c>postgresql://user@host:port/dbname</c>: the database is created when missing and refused when it
/// holds tables (unless --force, which replaces the dump's objects); the dump goes through <c>pg_restore --no-owner
/// --exit-on-error --single-transaction</c>, so a failure leaves the database as it was (and one the restore created is
/// dropped); the tables and rows found afterwards are compared with the snapshot's. Globals: see <c>RestoreGlobalsAsync</c>. The password comes from PGPASSWORD or the source's configuration,
/// never from the URI.
/// </summary>
internal sealed partial class PostgresRestore(PostgresServer pg) : IRestorable
{
    public IReadOnlyList<string> Plan(IReadOnlyList<string> artifacts, string destination)
    {
        if (pg.Options.Physical)
        {
            return artifacts.Contains(PostgresPhysical.BaseArtifact) ? [PostgresPhysical.BaseArtifact] : artifacts;
        }

        var dumps = RestoreDestination.OneDatabase(artifacts.Where(a => a != PostgresSource.GlobalsArtifact).ToList());
        return [.. artifacts.Where(a => a == PostgresSource.GlobalsArtifact), .. dumps];
    }

    public async Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        if (pg.Options.Physical && artifactName == PostgresPhysical.BaseArtifact)
        {
            return await PostgresPhysical.ExtractBaseAsync(content, destination, force, cancellationToken).ConfigureAwait(false);
        }

        var target = Destination(destination);
        var tools = await PostgresTools.ResolveAsync(pg.Source, pg.Options.Tools, cancellationToken).ConfigureAwait(false);
        var env = new Dictionary<string, string>(StringComparer.Ordinal) { ["PGCONNECT_TIMEOUT"] = "30" };
        if (target.Password is { } password)
        {
            env["PGPASSWORD"] = password;
        }

        var port = target.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (artifactName == PostgresSource.GlobalsArtifact)
        {
            return await RestoreGlobalsAsync(target, tools, env, content, force, cancellationToken).ConfigureAwait(false);
        }

        var created = false;
        await using (var admin = await OpenAsync(target, "postgres", cancellationToken).ConfigureAwait(false))
        {
            var exists = await PostgresServer.ScalarAsync(admin, "SELECT count(*) FROM pg_database WHERE datname = $1", cancellationToken, target.Database)
                .ConfigureAwait(false) is long n && n > 0;
            if (!exists)
            {
                await PostgresServer.ScalarAsync(admin, $"CREATE DATABASE \"{target.Database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", cancellationToken).ConfigureAwait(false);
                created = true;
            }
            else if (!force)
            {
                await using var db = await OpenAsync(target, target.Database, cancellationToken).ConfigureAwait(false);
                var tables = (long)(await PostgresServer.ScalarAsync(db,
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
                    cancellationToken).ConfigureAwait(false))!;
                if (tables > 0)
                {
                    throw new BackupException($"database {target.Database} at {target.Host}:{port} already holds {tables} tables; restore into a new database, or add --force");
                }
            }
        }

        // One transaction: a restore that fails midway leaves the database as it was (never half-filled); --force
        // replaces the objects the dump holds (--clean --if-exists) inside that same transaction.
        List<string> args = ["-d", Conninfo.Of(target.Host, target.Port, target.User, target.Database), "--no-owner", "--exit-on-error", "--single-transaction"];
        Stream archive;
        string? list;
        try
        {
            (var toc, archive) = await CustomDumpHeader.ReadTocAsync(content, cancellationToken).ConfigureAwait(false);
            list = toc is null ? null : await UnprivilegedListAsync(target, toc, cancellationToken).ConfigureAwait(false);
        }
        catch when (created)
        {
            await DropCreatedAsync(target, CancellationToken.None).ConfigureAwait(false); // refused before pg_restore: no empty database left
            throw;
        }

        if (list is not null)
        {
            args.AddRange(["-L", list]);
        }

        if (force)
        {
            args.AddRange(["--clean", "--if-exists"]);
        }

        if (target.SkipTablespaces)
        {
            args.Add("--no-tablespaces");
        }

        try
        {
            await using (archive)
            {
                await ChildProcess.RunWithInputAsync(tools.PgRestore, args, env, archive, pg.Options.Timeout,
                    $"pg_restore into {target.Database} at {target.Host}:{port}", cancellationToken).ConfigureAwait(false);
            }
        }
        catch when (created)
        {
            await DropCreatedAsync(target, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        finally
        {
            if (list is not null)
            {
                File.Delete(list);
            }
        }

        var restored = new PostgresServer(pg.Source, pg.Options with
        {
            Host = target.Host, Port = target.Port, User = target.User, Password = target.Password is null ? null : new SecretRef(target.Password, default),
            SslMode = target.SslMode ?? pg.Options.SslMode,
        });
        var facts = await restored.FactsAsync(target.Database, cancellationToken).ConfigureAwait(false);
        var found = new Dictionary<string, long> { ["databases"] = 1, ["tables"] = facts["tables"] };
        if (facts.TryGetValue("rows", out var rows))
        {
            found["rows"] = rows;
        }

        return found;
    }

    /// <summary>Removes the database this restore created, after a failure (nothing half-restored stays behind).</summary>
    private async Task DropCreatedAsync(Target target, CancellationToken ct)
    {
        try
        {
            await using var admin = await OpenAsync(target, "postgres", ct).ConfigureAwait(false);
            await PostgresServer.ScalarAsync(admin, $"DROP DATABASE IF EXISTS \"{target.Database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BackupException or NpgsqlException)
        {
            // Decision: the restore's own error is what the user needs; this one is added to the log, not raised over it.
            Console.Error.WriteLine($"backstop: could not drop database {target.Database} created by the failed restore: {e.Message}; drop it by hand");
        }
    }

    private sealed record Target(string Host, int Port, string User, string Database, string? Password)
    {
        /// <summary>An sslmode the URI asks for (<c>?sslmode=disable</c>), over the source's.</summary>
        public string? SslMode { get; init; }

        /// <summary><c>?tablespaces=skip</c>: restore without the dump's tablespaces (their paths are the source host's).</summary>
        public bool SkipTablespaces { get; init; }

        /// <summary>
        /// <c>?roles=unprivileged</c>: globals.sql applied as bare roles only (see <c>UnprivilegedRoles</c>), never touching
        /// a role the server has: what a drill's throwaway cluster takes, and a shared server can.
        /// </summary>
        public bool UnprivilegedRoles { get; init; }
    }

    private static readonly Dictionary<string, int> Schemes = new(StringComparer.Ordinal) { ["postgresql"] = 5432, ["postgres"] = 5432 };

    private const string DestinationExample = "postgresql://user@host:5432/dbname";

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination)
    {
        if (pg.Options.Physical)
        {
            // A base backup becomes a data folder for a new server, never a database on a running one.
            return destination.Contains("://", StringComparison.Ordinal)
                ? throw new Core.Config.ConfigException($"--to {destination}: a base backup (mode: physical) restores into a folder, the data folder of a new server")
                : new Dictionary<string, string>(StringComparer.Ordinal) { ["DEST"] = destination };
        }

        var d = ServerDestination.Parse(destination, Schemes, DestinationExample, pg.Options.User);
        return new Dictionary<string, string>(d.Places, StringComparer.Ordinal) { ["DB_CONNINFO"] = "dbname=" + Conninfo.Quote(d.Database) };
    }

    private Target Destination(string destination)
    {
        var d = ServerDestination.Parse(destination, Schemes, DestinationExample, pg.Options.User);
        var database = d.RequireDatabase(DestinationExample);
        var query = Uri.TryCreate(destination, UriKind.Absolute, out var uri) ? System.Web.HttpUtility.ParseQueryString(uri.Query) : null;
        // ?password_file=PATH (a file only this user reads, as libpq's passfile; empty: no password) over PGPASSWORD. The
        // source's password only goes to the source's own server: a secret goes to the server it belongs to.
        var password = query?["password_file"] is { Length: > 0 } file ? new SecretRef("file:" + file, default).Resolve() is { Length: > 0 } f ? f : null
            : System.Environment.GetEnvironmentVariable("PGPASSWORD") is { Length: > 0 } p ? p
            : IsSourceServer(d) ? pg.Options.Password?.Resolve() : null;
        return new Target(d.Host, d.Port, d.User, database, password)
        {
            SslMode = query?["sslmode"], SkipTablespaces = query?["tablespaces"] == "skip", UnprivilegedRoles = query?["roles"] == "unprivileged",
        };
    }

    /// <summary>Whether a destination is the source's own server (its host and port, and its user), which its password belongs to.</summary>
    private bool IsSourceServer(ServerDestination d) =>
        string.Equals(d.Host, pg.Options.Host, StringComparison.OrdinalIgnoreCase) && d.Port == pg.Options.Port && d.User == pg.Options.User;

    /// <summary>
    /// For a role that is not a superuser, a <c>pg_restore -L</c> list without what only a superuser may run: the
    /// extensions the dump creates (and their comments, and the schemas they are in when those exist), which must be in
    /// the database already. Null when the role is a superuser or the dump creates no extension.
    /// </summary>
    private async Task<string?> UnprivilegedListAsync(Target target, DumpToc toc, CancellationToken ct)
    {
        if (toc.Extensions.Count == 0)
        {
            return null;
        }

        HashSet<string> installed, schemas;
        await using (var db = await OpenAsync(target, target.Database, ct).ConfigureAwait(false))
        {
            if (await PostgresServer.ScalarAsync(db, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", ct).ConfigureAwait(false) is true)
            {
                return null;
            }

            installed = await NamesAsync(db, "SELECT extname FROM pg_extension", ct).ConfigureAwait(false);
            schemas = await NamesAsync(db, "SELECT nspname FROM pg_namespace", ct).ConfigureAwait(false);
        }

        var missing = toc.Extensions.Select(e => e.Name).Where(e => !installed.Contains(e)).Distinct(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            throw new DestinationException(
                $"the dump needs the extension(s) {string.Join(", ", missing)}, which {target.User} (not a superuser) cannot create and {target.Database} at " +
                $"{target.Host}:{target.Port} lacks: create them there as a superuser first (CREATE EXTENSION …), or restore as a superuser");
        }

        var extensionSchemas = toc.Extensions.Select(e => e.Schema).OfType<string>().Where(schemas.Contains).ToHashSet(StringComparer.Ordinal);
        var lines = toc.Entries
            .Where(e => !(e.Desc == "EXTENSION"
                          || (e.Desc == "COMMENT" && e.Tag?.StartsWith("EXTENSION ", StringComparison.Ordinal) == true)
                          || (e.Desc == "SCHEMA" && e.Tag is not null && extensionSchemas.Contains(e.Tag))))
            .Select(e => e.DumpId.ToString(System.Globalization.CultureInfo.InvariantCulture) + ";");
        var path = Path.Combine(Path.GetTempPath(), $"backstop-restore-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8))}.list");
        await using (var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            await file.WriteAsync(System.Text.Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n"), ct).ConfigureAwait(false);
        }

        return path;
    }

    private static async Task<HashSet<string>> NamesAsync(NpgsqlConnection db, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, db);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var names = new HashSet<string>(StringComparer.Ordinal);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            names.Add(r.GetString(0));
        }

        return names;
    }

    private async Task<NpgsqlConnection> OpenAsync(Target target, string database, CancellationToken ct)
    {
        var other = new PostgresServer(pg.Source, pg.Options with
        {
            Host = target.Host,
            Port = target.Port,
            User = target.User,
            Password = target.Password is null ? null : new SecretRef(target.Password, default),
            SslMode = target.SslMode ?? pg.Options.SslMode,
        });
        return await other.ConnectAsync(database, ct).ConfigureAwait(false);
    }
}
