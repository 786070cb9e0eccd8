using System.Globalization;
using System.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Scratch;
using MySqlConnector;

namespace Backstop.Sources.MySql;

/// <summary>
/// <c>drill:</c> for mysql: <c>server</c> (a drill server, <c>mysql://user@host:port</c>, where scratch databases are
/// made; by default a throwaway <c>mariadbd</c>) and its <c>password</c> (never the source's), <c>smoke</c> queries.
/// </summary>
public sealed record MySqlDrillOptions(string? Server, IReadOnlyList<(string? Database, string Sql)> Smoke)
{
    public SecretRef? Password { get; init; }
}

public sealed partial class MySqlSourceKind
{
    public override MySqlDrillOptions? ParseDrill(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var server = map.String("server");
        if (server is not null)
        {
            ServerDestination d;
            try
            {
                d = ServerDestination.Parse(server, MySqlDrill.DrillSchemes, "mysql://user@host:3306", null);
            }
            catch (ConfigException e) when (e.Location is null)
            {
                throw map.Error("server", e.Message);
            }

            if (d.Database.Length > 0)
            {
                throw map.Error("server", "name the server only (mysql://user@host:port): the drill makes its own scratch databases there");
            }
        }

        return new MySqlDrillOptions(server, SmokeQueries.Parse(map)) { Password = map.Secret("password") };
    }
}

/// <summary>
/// A MySQL/MariaDB drill: a throwaway <c>mariadbd</c> (its data in the drill's scratch folder, run as the OS user
/// backstop-drill when Backstop is root, a drill user created by an init file with the password the restore uses and
/// no FILE, SUPER or SET USER privilege, <c>secure_file_priv</c> an empty folder), or scratch databases with random
/// names on a drill server (with drill.password); every database restored through <c>restore</c>'s path with its
/// DEFINER clauses stripped (tables and rows compared), then the smoke queries.
/// </summary>
internal sealed class MySqlDrill(MySqlServer source, MySqlDrillOptions? drillOptions) : IDrillable
{
    internal static readonly Dictionary<string, int> DrillSchemes = new(StringComparer.Ordinal) { ["mysql"] = 3306, ["mariadb"] = 3306 };

    private const string DrillUser = "backstop_drill";

    public string? ThrowawayServer => drillOptions?.Server is null ? "a throwaway mariadbd" : null;

    /// <summary>
    /// What the throwaway server's drill user may do: restore a dump and read it back. No FILE (no LOAD_FILE, INTO
    /// OUTFILE), no SUPER or SET USER (no other DEFINER), no GRANT OPTION: a restored view, routine or trigger runs
    /// with no more than this.
    /// </summary>
    private const string DrillPrivileges = "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, " +
                                           "EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, SHOW DATABASES";

    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var drill = drillOptions ?? new MySqlDrillOptions(null, []);
        var databases = scope.Artifacts.ToDictionary(a => a.Name, a => Uri.UnescapeDataString(Path.GetFileNameWithoutExtension(a.Name)), StringComparer.Ordinal);
        var client = source.Resolve("client", ["mariadb", "mysql"]);
        var tools = new Dictionary<string, string> { ["client"] = $"{client} {await source.ToolVersionAsync(client, cancellationToken).ConfigureAwait(false)}" };
        if (drill.Server is { } server)
        {
            var d = ServerDestination.Parse(server, DrillSchemes, "mysql://user@host:3306", source.Options.User);
            var on = source.At(d.Host, d.Port, d.User, drill.Password);
            var scratchNames = new Dictionary<string, string>(StringComparer.Ordinal);
            var i = 0;
            foreach (var database in databases.Values)
            {
                var scratch = $"backstop_drill_{scope.Token}_{i++}";
                var taken = await on.QueryAsync(null, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = @db", cancellationToken, ("@db", scratch))
                    .ConfigureAwait(false);
                if (taken[0][0] != "0")
                {
                    throw new BackupException($"source '{source.Source}': the drill server {d.Host}:{d.Port} already has a database named {scratch}; drill again");
                }

                scratchNames[database] = scratch;
                scope.Leave($"db:{scratch}");
            }

            // drill.password, never the source's: from a file the restore reads (empty: none).
            var passwordFile = Path.Combine(scope.Folder, "server-password");
            ScratchFolders.WriteSecret(passwordFile, drill.Password?.Resolve() ?? "");
            return new Scratch(on, $"scratch databases backstop_drill_{scope.Token}_* on the drill server {d.Host}:{d.Port}", null, databases, scratchNames,
                drill.Smoke, tools, scratchNames.Values.ToList()) { PasswordFile = passwordFile };
        }

        return await OpenThrowawayAsync(scope, drill, databases, tools, cancellationToken).ConfigureAwait(false);
    }

    private async Task<IDrillScratch> OpenThrowawayAsync(DrillScope scope, MySqlDrillOptions drill, Dictionary<string, string> databases,
        Dictionary<string, string> tools, CancellationToken ct)
    {
        const string Purpose = "loads the dumps into a throwaway server";
        var install = ScratchServerDrill.Resolve(source.Source, Purpose, "mariadb-server", "set drill.server", "mariadb-install-db", "mysql_install_db");
        var daemon = ScratchServerDrill.Resolve(source.Source, Purpose, "mariadb-server", "set drill.server", "mariadbd", "mysqld");

        var user = await ScratchServer.DrillUserAsync(ct).ConfigureAwait(false);
        var root = ScratchFolders.ReachableBy(scope, user, "mariadb", maxLength: 100);
        var data = Path.Combine(root, "data");
        var files = Path.Combine(root, "files"); // secure_file_priv: an empty folder, the only one the server would read or write
        Directory.CreateDirectory(files, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var runAs = user?.Name ?? System.Environment.UserName;
        var log = new MemoryStream();
        await ChildProcess.RunCleanToStreamAsync(install,
            ["--no-defaults", $"--user={runAs}", $"--datadir={data}", "--auth-root-authentication-method=socket", "--skip-test-db"],
            new Dictionary<string, string>(), "/", log, TimeSpan.FromMinutes(10), $"source '{source.Source}': {Path.GetFileName(install)} for the drill's throwaway server", ct)
            .ConfigureAwait(false);

        // Loopback is open to every local user while the drill runs: the drill user has a random password, set by an init
        // file only the server's user can read (removed once the server runs); the restore reads it from a file of ours.
        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        var init = Path.Combine(root, "init.sql");
        ScratchFolders.WriteSecret(init,
            $"CREATE USER '{DrillUser}'@'127.0.0.1' IDENTIFIED BY '{password}';\nGRANT {DrillPrivileges} ON *.* TO '{DrillUser}'@'127.0.0.1';");
        ScratchServer.GiveTo(user, root);
        var restorePassword = Path.Combine(scope.Folder, "restore-password");
        ScratchFolders.WriteSecret(restorePassword, password);

        var port = ScratchServer.FreePort();
        var local = source.At("127.0.0.1", port, DrillUser, new SecretRef("file:" + restorePassword, default));
        ScratchServer server;
        try
        {
            // mariadbd drops to --user itself when started as root.
            server = await ScratchServer.StartAsync(scope, "mariadbd", daemon,
                ["--no-defaults", $"--user={runAs}", $"--datadir={data}", "--bind-address=127.0.0.1", $"--port={port.ToString(CultureInfo.InvariantCulture)}",
                 $"--socket={Path.Combine(root, "mysqld.sock")}", $"--pid-file={Path.Combine(root, "mysqld.pid")}", $"--init-file={init}", "--skip-name-resolve",
                 "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
                 $"--secure-file-priv={files}", "--local-infile=0", "--event-scheduler=OFF", "--log-error=" + Path.Combine(root, "error.log")],
                null, async c =>
                {
                    try
                    {
                        await local.QueryAsync(null, "SELECT 1", c).ConfigureAwait(false);
                        return true;
                    }
                    catch (BackupException)
                    {
                        return false;
                    }
                }, TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(init);
        }

        var version = (await local.QueryAsync(null, "SELECT VERSION()", ct).ConfigureAwait(false))[0][0];
        tools["server"] = $"{daemon} {version}";
        if (databases.Count > 0)
        {
            // The dump's header names the server it came from ("-- Server version	10.11.19-MariaDB-0+deb12u1").
            var header = Encoding.UTF8.GetString(await scope.PeekAsync(databases.Keys.First(), 4096, ct).ConfigureAwait(false));
            var from = header.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("-- Server version", StringComparison.Ordinal))?["-- Server version".Length..].Trim();
            if (from is not null && (from.Contains("MariaDB", StringComparison.OrdinalIgnoreCase) != version.Contains("MariaDB", StringComparison.OrdinalIgnoreCase)
                                     || MySqlServer.MajorMinor(from) != MySqlServer.MajorMinor(version)))
            {
                scope.Note($"the dumps come from a {from} server and the throwaway server is {version}: what restores here may differ from a restore into the " +
                           "source's own version; set drill.server to a server of that version to drill exactly");
            }
        }
        return new Scratch(local, $"a throwaway {version} server on 127.0.0.1:{port}", server, databases,
            databases.Values.ToDictionary(d => d, d => d, StringComparer.Ordinal), drill.Smoke, tools, []) { PasswordFile = restorePassword };
    }

    /// <summary>Drops a scratch database a killed drill left on the drill server.</summary>
    public async Task<string?> SweepAsync(string leftover, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leftover);
        if (ScratchNames.ScratchDatabase(leftover) is not { } database)
        {
            return ScratchNames.NotOurs(source.Source, leftover);
        }

        var server = drillOptions?.Server ?? throw new BackupException($"source '{source.Source}' has no drill.server any more; drop database {database} by hand");
        var d = ServerDestination.Parse(server, DrillSchemes, "mysql://user@host:3306", source.Options.User);
        await source.At(d.Host, d.Port, d.User, drillOptions?.Password)
            .QueryAsync(null, $"DROP DATABASE IF EXISTS {MySqlServer.Identifier(database)}", cancellationToken).ConfigureAwait(false);
        return null;
    }

    private sealed class Scratch(MySqlServer at, string description, ScratchServer? server, Dictionary<string, string> databases,
        Dictionary<string, string> restoredAs, IReadOnlyList<(string? Database, string Sql)> smoke, IReadOnlyDictionary<string, string> tools, List<string> drop)
        : IDrillScratch
    {
        public string Description => description;

        public IReadOnlyDictionary<string, string> Tools => tools;

        /// <summary>The file of the throwaway server's drill password, named in the destination for the restore.</summary>
        public string? PasswordFile { get; init; }

        public string Destination(string artifact) =>
            at.UriOf(restoredAs[databases[artifact]]) + "?definers=strip" + (PasswordFile is null ? "" : "&password_file=" + Uri.EscapeDataString(PasswordFile));

        public async Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken)
        {
            const string Expected = "a first column that is true or a non-zero number";
            var checks = new List<DrillCheck>();
            foreach (var (database, sql) in smoke)
            {
                var label = $"smoke: {sql}" + (database is null ? "" : $" (in {database})");
                var db = database ?? (databases.Count == 1 ? databases.Values.Single() : null);
                if (db is null || !restoredAs.TryGetValue(db, out var restored))
                {
                    checks.Add(new DrillCheck(label, Expected, db is null
                        ? $"not run: the snapshot has {databases.Count} databases ({string.Join(", ", databases.Values)}); say which with {{database: NAME, sql: …}}"
                        : $"not run: the snapshot has no database {db}", false));
                    continue;
                }

                try
                {
                    await using var connection = await at.ConnectAsync(restored, cancellationToken).ConfigureAwait(false);
                    await using var command = new MySqlCommand(sql, connection) { CommandTimeout = 0 };
                    await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false) || reader.FieldCount == 0)
                    {
                        checks.Add(new DrillCheck(label, Expected, "no row", false));
                        continue;
                    }

                    var value = reader.IsDBNull(0) ? null : reader.GetValue(0);
                    checks.Add(new DrillCheck(label, Expected, value is null ? "NULL" : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "", SmokeQueries.Passes(value)));
                }
                catch (MySqlException e)
                {
                    checks.Add(new DrillCheck(label, Expected, $"error: {e.Message}", false));
                }
            }

            return checks;
        }

        public async ValueTask DisposeAsync()
        {
            var problems = new StringBuilder();
            foreach (var database in drop)
            {
                try
                {
                    await at.QueryAsync(null, $"DROP DATABASE IF EXISTS {MySqlServer.Identifier(database)}", CancellationToken.None).ConfigureAwait(false);
                }
                catch (BackupException e)
                {
                    problems.Append(CultureInfo.InvariantCulture, $"the scratch database {database} could not be dropped: {e.Message}; drop it by hand. ");
                }
            }

            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }

            if (problems.Length > 0)
            {
                throw new BackupException(problems.ToString().Trim());
            }
        }
    }
}
