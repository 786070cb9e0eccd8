using System.Globalization;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Sources.Processes;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.MySql;

/// <summary>
/// Restore into <c>mysql://user@host:port/dbname</c> (or <c>mariadb://</c>): the database is created when missing and
/// refused when it holds tables (unless --force); the dump is fed to the client program; a database the restore
/// created is dropped when the load fails; the tables found afterwards are compared with the snapshot's. The password
/// is the source's, in a 0600 defaults file in the source's private folder.
/// </summary>
internal sealed class MySqlRestore(MySqlServer source, string stateDirectory) : IRestorable
{
    public IReadOnlyList<string> Plan(IReadOnlyList<string> artifacts, string destination) => RestoreDestination.OneDatabase(artifacts);

    public async Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        var (host, port, user, database) = Destination(destination);
        // ?password_file=PATH (a file only this user reads) over MYSQL_PWD; the source's password only to the source's own
        // server (a secret goes only to the server it belongs to). ?definers=strip: see DefinerStrippingStream.
        var query = Uri.TryCreate(destination, UriKind.Absolute, out var uri) ? System.Web.HttpUtility.ParseQueryString(uri.Query) : null;
        var options = source.Options;
        var own = string.Equals(host, options.Host, StringComparison.OrdinalIgnoreCase) && port == options.Port && user == options.User;
        var target = source.At(host, port, user,
            query?["password_file"] is { Length: > 0 } passwordFile ? new SecretRef("file:" + passwordFile, default)
            : System.Environment.GetEnvironmentVariable("MYSQL_PWD") is { Length: > 0 } pwd ? new SecretRef(pwd, default)
            : own ? options.Password : null);
        if (query?["definers"] == "strip")
        {
            content = new DefinerStrippingStream(content);
        }

        var client = target.Resolve("client", ["mariadb", "mysql"]);
        var created = (await target.QueryAsync(null, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = @db", cancellationToken, ("@db", database))
            .ConfigureAwait(false))[0][0] == "0";
        await target.QueryAsync(null, $"CREATE DATABASE IF NOT EXISTS {MySqlServer.Identifier(database)}", cancellationToken).ConfigureAwait(false);
        string? defaults = null;
        try
        {
            var before = (await target.FactsAsync(database, cancellationToken).ConfigureAwait(false))["tables"];
            if (before > 0 && !force)
            {
                throw new BackupException($"database {database} at {host}:{port} already holds {before} tables; restore into a new database, or add --force");
            }

            // The client reads the password from a 0600 file in the source's private folder (never argv, never /tmp).
            PrivateFolder.Ensure(Path.GetDirectoryName(stateDirectory)!);
            defaults = target.WriteDefaultsFile(PrivateFolder.Ensure(stateDirectory));
            await ChildProcess.RunWithInputAsync(client,
                [$"--defaults-extra-file={defaults}", "-h", host, "-P", port.ToString(CultureInfo.InvariantCulture), "-u", user, "--protocol=TCP", "--", database],
                new Dictionary<string, string>(), content, options.Timeout, $"{Path.GetFileName(client)} into {database} at {host}:{port}",
                cancellationToken).ConfigureAwait(false);
        }
        catch when (created)
        {
            // Anything that stops the restore after the database was made (the client midway, whose DDL commits as it
            // goes; a check before it; Ctrl-C) drops it, so nothing half-restored stays. One that existed is left, and
            // the error says where it stopped.
            try
            {
                await target.QueryAsync(null, $"DROP DATABASE IF EXISTS {MySqlServer.Identifier(database)}", CancellationToken.None).ConfigureAwait(false);
            }
            catch (BackupException e)
            {
                await Console.Error.WriteLineAsync($"backstop: could not drop database {database} created by the failed restore: {e.Message}; drop it by hand").ConfigureAwait(false);
            }

            throw;
        }
        finally
        {
            if (defaults is not null)
            {
                File.Delete(defaults);
            }
        }

        // Tables, and rows when the source counts them exactly (an estimate is never compared).
        var facts = await target.FactsAsync(database, cancellationToken).ConfigureAwait(false);
        facts.Remove("rows_estimated");
        return facts;
    }

    private static readonly Dictionary<string, int> Schemes = new(StringComparer.Ordinal) { ["mysql"] = 3306, ["mariadb"] = 3306 };

    private const string DestinationExample = "mysql://user@host:3306/dbname";

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination) =>
        ServerDestination.Parse(destination, Schemes, DestinationExample, source.Options.User).Places;

    private (string Host, int Port, string User, string Database) Destination(string destination)
    {
        var d = ServerDestination.Parse(destination, Schemes, DestinationExample, source.Options.User);
        return (d.Host, d.Port, d.User, d.RequireDatabase(DestinationExample));
    }
}
