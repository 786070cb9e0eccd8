using System.Text;
using Backstop.Core.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Databases;
using Backstop.Sources.Scratch;

namespace Backstop.Sources.MySql;

public sealed record MySqlOptions(
    string Host,
    int Port,
    string User,
    SecretRef? Password,
    IReadOnlyList<string>? Databases,
    bool ExactRows,
    IReadOnlyDictionary<string, string> Tools,
    TimeSpan Timeout);

/// <summary>
/// MariaDB or MySQL: one <c>&lt;db&gt;.sql</c> per database from <c>mariadb-dump</c>/<c>mysqldump
/// --single-transaction --routines --events --triggers --hex-blob</c>. Facts and health through MySqlConnector with
/// parameters (names are data, never SQL text); each database name reaches the dump tool after <c>--</c>. Each dump
/// must end with the dump's completion line and create the tables the server reported. The password travels only
/// over the connector's connection and in a 0600 defaults file in staging (or the source's private folder).
/// </summary>
public sealed partial class MySqlSourceKind : SourceKind<MySqlOptions, MySqlDrillOptions>
{
    public override string Kind => "mysql";

    public override string Summary => "A MySQL or MariaDB server: one `<db>.sql` per database (mysqldump --single-transaction).";

    public override string RestoreTo => "mysql://USER@HOST:PORT/DB";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("host", "db.internal", "The server's host name or address"),
        new("port", "3306", "Its port"),
        new("user", "backup", "The user that dumps (SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES)"),
        new("password", "env:MYSQL_PWD", "Its password; only ever in a private option file the dump reads") { Default = "none" },
        new("databases", "[shop, billing]", "The databases to dump: all (but the system schemas), or a list"),
        new("exact_rows", "true", "Count rows exactly (SELECT COUNT(*)); false records the estimate as rows_estimated"),
        new("timeout", "6h", "The most a whole dump may take"),
        new("tools.dump", "/usr/bin/mariadb-dump", "The dump program") { Default = "mariadb-dump, else mysqldump" },
        new("tools.client", "/usr/bin/mariadb", "The client that restores") { Default = "mariadb, else mysql" },
        new("drill.server", "mysql://drill@10.0.0.9:3306", "Restore into scratch databases on this server instead of a throwaway one") { Default = "a throwaway server (mariadbd)" },
        new("drill.password", "env:DRILL_MYSQL_PWD", "The drill server user's password (the source's password never goes to a drill server)") { Default = "none" },
        .. SmokeQueries.Keys,
    ];

    public override IReadOnlyList<string> Facts { get; } = ["databases", "tables", "rows"];

    public override IReadOnlyList<string> CountFacts { get; } = ["databases", "tables", "rows"];

    public override MySqlOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var databases = map.AllOrList("databases");
        foreach (var d in databases ?? [])
        {
            if (d.Length == 0 || d.Contains('\0', StringComparison.Ordinal))
            {
                throw map.Error("databases", "a database name cannot be empty or hold a NUL character");
            }
        }

        var tools = new Dictionary<string, string>(StringComparer.Ordinal);
        if (map.Map("tools") is { } t)
        {
            foreach (var name in new[] { "dump", "client" })
            {
                if (t.PathValue(name) is { } p)
                {
                    tools[name] = p;
                }
            }

            t.EnsureAllKeysKnown("tools are dump (mariadb-dump or mysqldump) and client (mariadb or mysql)");
        }

        var timeout = map.Timeout("timeout", TimeSpan.FromHours(6));

        return new MySqlOptions(
            map.StringOr("host", "127.0.0.1"), map.IntOr("port", 3306, 1, 65535), map.StringOr("user", "root"), map.Secret("password"),
            databases, RowCounting.ExactRows(map), tools, timeout);
    }

    public override ISource Create(SourceDefinition definition, MySqlOptions options, MySqlDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var server = new MySqlServer(definition.Name, options);
        return new MySqlSource(server, new MySqlRestore(server, definition.StateDirectory), new MySqlDrill(server, drill), new MySqlHealth(server));
    }
}

/// <summary>
/// A mysql source: the dumps (preflight, capture, their format check and stock recipe), and its parts for the rest:
/// restore, drill and health, each a type of its own over one <see cref="MySqlServer"/>.
/// </summary>
internal sealed class MySqlSource(MySqlServer server, MySqlRestore restore, MySqlDrill drill, MySqlHealth health) : ISource
{
    internal const string Trailer = "-- Dump completed";
    private string? _dump;

    public T? Capability<T>() where T : class => restore as T ?? drill as T ?? health as T ?? this as T;

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination) => restore.RecipePlaces(destination);

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        _dump = server.Resolve("dump", ["mariadb-dump", "mysqldump"]);
        var version = (await server.QueryAsync(null, "SELECT VERSION()", cancellationToken).ConfigureAwait(false)).FirstOrDefault()?.FirstOrDefault() ?? "?";
        var dumpVersion = await server.ToolVersionAsync(_dump, cancellationToken).ConfigureAwait(false);
        server.CheckToolVersion(_dump, dumpVersion, version);
        return new SourcePreflight(new Dictionary<string, string>
        {
            ["dump"] = _dump,
            ["dump_version"] = dumpVersion,
            ["server"] = version,
        }, 0);
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var defaults = server.WriteDefaultsFile(sink.StagingDirectory);
        try
        {
            var databases = server.Options.Databases ?? (await server.QueryAsync(null,
                    "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN (@s0, @s1, @s2) ORDER BY 1",
                    cancellationToken, ("@s0", MySqlServer.SystemSchemas[0]), ("@s1", MySqlServer.SystemSchemas[1]), ("@s2", MySqlServer.SystemSchemas[2])).ConfigureAwait(false))
                .Select(r => r[0]).ToList();
            foreach (var database in databases)
            {
                var facts = await server.FactsAsync(database, cancellationToken).ConfigureAwait(false);
                await using var artifact = await sink.BeginArtifactAsync(SafeNames.Encode(database) + ".sql", cancellationToken).ConfigureAwait(false);
                await ChildProcess.RunToStreamAsync(_dump!,
                    [$"--defaults-extra-file={defaults}", "-h", server.Options.Host, "-P", server.Port, "-u", server.Options.User, "--protocol=TCP",
                     "--single-transaction", "--routines", "--events", "--triggers", "--hex-blob", "--default-character-set=utf8mb4", "--", database],
                    new Dictionary<string, string>(), "/", artifact.Content, server.Options.Timeout,
                    $"source '{server.Source}': {Path.GetFileName(_dump)} of database {database} at {server.Where}", cancellationToken).ConfigureAwait(false);
                await artifact.CompleteAsync(facts, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            File.Delete(defaults);
        }
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => new DumpValidator();

    public string RestoreRecipe(string artifactName, string storedFile) =>
        $"mariadb-admin -h HOST -P PORT -u USER --protocol=TCP create DB && zstd -dc {storedFile} | mariadb -h HOST -P PORT -u USER --protocol=TCP DB";

    /// <summary>A whole dump: the completion line at its end, and the tables the server reported.</summary>
    private sealed class DumpValidator : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            using var reader = new StreamReader(content, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 1 << 16, leaveOpen: true);
            long tables = 0;
            string? last = null;
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                if (line.StartsWith("CREATE TABLE `", StringComparison.Ordinal))
                {
                    tables++;
                }

                if (line.Length > 0)
                {
                    last = line;
                }
            }

            return last is not null && last.StartsWith(Trailer, StringComparison.Ordinal)
                ? new Dictionary<string, long> { ["tables"] = tables }
                : throw new BackupException($"the dump does not end with its '{Trailer}' line: it is cut short");
        }
    }
}
