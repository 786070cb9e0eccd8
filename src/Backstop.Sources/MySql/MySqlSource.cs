using Backstop.Core.Util;
using System.Globalization;
using System.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Common;
using MySqlConnector;

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
        .. Common.SmokeQueries.Keys,
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
            databases, Common.RowCounting.ExactRows(map), tools, timeout);
    }

    public override ISource Create(SourceDefinition definition, MySqlOptions options, MySqlDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new MySqlSource(definition.Name, options, definition.StateDirectory) { DrillOptions = drill };
    }
}

internal sealed partial class MySqlSource(string name, MySqlOptions options, string stateDirectory) : ISource
{
    internal const string Trailer = "-- Dump completed";
    private static readonly string[] SystemSchemas = ["information_schema", "performance_schema", "sys"];
    private string? _dump;
    private string? _client;

    private string Where => $"{options.Host}:{options.Port}";

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        _dump = Resolve("dump", ["mariadb-dump", "mysqldump"]);
        var server = (await QueryAsync(null, "SELECT VERSION()", cancellationToken).ConfigureAwait(false)).FirstOrDefault()?.FirstOrDefault() ?? "?";
        var dumpVersion = await ToolVersionAsync(_dump, cancellationToken).ConfigureAwait(false);
        CheckToolVersion(dumpVersion, server);
        return new SourcePreflight(new Dictionary<string, string>
        {
            ["dump"] = _dump,
            ["dump_version"] = dumpVersion,
            ["server"] = server,
        }, 0);
    }

    /// <summary>What <c>--version</c> says, e.g. "10.11.19-MariaDB" or "8.0.36".</summary>
    private async Task<string> ToolVersionAsync(string tool, CancellationToken ct)
    {
        using var output = new MemoryStream();
        await ChildProcess.RunToStreamAsync(tool, ["--version"], new Dictionary<string, string>(), "/", output,
            TimeSpan.FromSeconds(30), $"source '{name}': {tool} --version", ct).ConfigureAwait(false);
        var text = Encoding.UTF8.GetString(output.ToArray()).Trim();
        // MariaDB: "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, …"; MySQL: "mysqldump  Ver 8.0.36 for Linux …".
        var m = ToolVersionPattern().Match(text);
        return m.Success ? m.Groups["v"].Value : throw new BackupException($"source '{name}': cannot tell the version of {tool} from '{text}'");
    }

    /// <summary>
    /// A dump tool older than a server of its own family can miss what the newer server has (new column types,
    /// options, system tables); refuse it at preflight. Across families (a MariaDB client on a MySQL server) the
    /// versions do not compare, and the dump's own checks still apply.
    /// </summary>
    private void CheckToolVersion(string tool, string server)
    {
        var toolMaria = tool.Contains("MariaDB", StringComparison.OrdinalIgnoreCase);
        var serverMaria = server.Contains("MariaDB", StringComparison.OrdinalIgnoreCase);
        if (toolMaria != serverMaria || MajorMinor(tool) is not { } t || MajorMinor(server) is not { } s)
        {
            return;
        }

        if (t.CompareTo(s) < 0)
        {
            throw new BackupException(
                $"source '{name}': {_dump} is version {tool}, older than the server at {Where} ({server}); " +
                $"install a client of version {s.Major}.{s.Minor} or newer and set tools.dump to it");
        }
    }

    private static (int Major, int Minor)? MajorMinor(string version)
    {
        var m = MajorMinorPattern().Match(version);
        return m.Success
            ? (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture))
            : null;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"(?:Distrib\s+(?<v>\d+\.\d+[\w.\-]*)|Ver\s+(?<v>\d+\.\d+\.\d+[\w.\-]*)\s+for)")]
    private static partial System.Text.RegularExpressions.Regex ToolVersionPattern();

    [System.Text.RegularExpressions.GeneratedRegex(@"^(\d+)\.(\d+)")]
    private static partial System.Text.RegularExpressions.Regex MajorMinorPattern();

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var defaults = WriteDefaultsFile(sink.StagingDirectory);
        try
        {
            var databases = options.Databases ?? (await QueryAsync(null,
                    "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN (@s0, @s1, @s2) ORDER BY 1",
                    cancellationToken, ("@s0", SystemSchemas[0]), ("@s1", SystemSchemas[1]), ("@s2", SystemSchemas[2])).ConfigureAwait(false))
                .Select(r => r[0]).ToList();
            foreach (var database in databases)
            {
                var facts = await FactsAsync(database, cancellationToken).ConfigureAwait(false);
                await using var artifact = await sink.BeginArtifactAsync(SafeNames.Encode(database) + ".sql", cancellationToken).ConfigureAwait(false);
                await ChildProcess.RunToStreamAsync(_dump!,
                    [$"--defaults-extra-file={defaults}", "-h", options.Host, "-P", Port, "-u", options.User, "--protocol=TCP",
                     "--single-transaction", "--routines", "--events", "--triggers", "--hex-blob", "--default-character-set=utf8mb4", "--", database],
                    new Dictionary<string, string>(), "/", artifact.Content, options.Timeout,
                    $"source '{name}': {Path.GetFileName(_dump)} of database {database} at {Where}", cancellationToken).ConfigureAwait(false);
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

    private string Port => options.Port.ToString(CultureInfo.InvariantCulture);

    private string Resolve(string key, string[] candidates)
    {
        if (options.Tools.TryGetValue(key, out var configured))
        {
            try
            {
                return ChildProcess.ResolveTool(configured);
            }
            catch (BackupException e)
            {
                throw new BackupException($"source '{name}': tools.{key}: {e.Message}");
            }
        }

        foreach (var c in candidates)
        {
            try
            {
                return ChildProcess.ResolveTool(c);
            }
            catch (BackupException)
            {
                // try the next name
            }
        }

        throw new BackupException(
            $"source '{name}': neither {string.Join(" nor ", candidates)} was found in PATH ({Environment.GetEnvironmentVariable("PATH")}); install mariadb-client (or mysql-client), or set tools.{key}");
    }

    /// <summary>
    /// Tables and rows of one database, read in one transaction WITH CONSISTENT SNAPSHOT (every table counted at the same
    /// moment, just before the dump starts its own), with the source's timeout rather than a fixed one.
    /// </summary>
    private async Task<Dictionary<string, long>> FactsAsync(string database, CancellationToken ct)
    {
        await using var connection = await ConnectAsync(null, ct).ConfigureAwait(false);
        await QueryOnAsync(connection, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", ct).ConfigureAwait(false);
        var tables = await QueryOnAsync(connection,
            "SELECT table_name, COALESCE(table_rows, 0) FROM information_schema.tables WHERE table_schema = @db AND table_type = 'BASE TABLE' ORDER BY 1",
            ct, ("@db", database)).ConfigureAwait(false);
        long rows = 0;
        foreach (var t in tables)
        {
            rows += options.ExactRows
                ? long.Parse((await QueryOnAsync(connection, $"SELECT COUNT(*) FROM {Identifier(database)}.{Identifier(t[0])}", ct).ConfigureAwait(false))[0][0],
                    CultureInfo.InvariantCulture)
                : long.Parse(t[1], CultureInfo.InvariantCulture);
        }

        await QueryOnAsync(connection, "COMMIT", ct).ConfigureAwait(false);

        // InnoDB's table_rows is an estimate: recorded under its own name, never used by an expectation.
        return new Dictionary<string, long> { ["databases"] = 1, ["tables"] = tables.Count, [options.ExactRows ? "rows" : "rows_estimated"] = rows };
    }

    /// <summary>A MySQL identifier quoted: in backticks, a backtick doubled (identifiers cannot be parameters).</summary>
    internal static string Identifier(string name) => "`" + name.Replace("`", "``", StringComparison.Ordinal) + "`";

    /// <summary>A connection through MySqlConnector: the password travels in its handshake, never in argv or a file.</summary>
    private async Task<MySqlConnection> ConnectAsync(string? database, CancellationToken ct)
    {
        var builder = new MySqlConnectionStringBuilder
        {
            Server = options.Host,
            Port = (uint)options.Port,
            UserID = options.User,
            ConnectionTimeout = 15,
            Pooling = false,
            ApplicationName = "backstop",
        };
        if (database is not null)
        {
            builder.Database = database;
        }

        if (options.Password is { } p)
        {
            builder.Password = p.Resolve();
        }

        var connection = new MySqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            return connection;
        }
        catch (MySqlException e)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw new BackupException(Explain(e));
        }
    }

    /// <summary>Runs one query with parameters on a connection of its own.</summary>
    private async Task<List<string[]>> QueryAsync(string? database, string sql, CancellationToken ct, params (string Name, object Value)[] parameters)
    {
        await using var connection = await ConnectAsync(database, ct).ConfigureAwait(false);
        return await QueryOnAsync(connection, sql, ct, parameters).ConfigureAwait(false);
    }

    /// <summary>Runs one query with parameters; every value comes back as invariant text (NULL as empty).</summary>
    private async Task<List<string[]>> QueryOnAsync(MySqlConnection connection, string sql, CancellationToken ct, params (string Name, object Value)[] parameters)
    {
        try
        {
            // The source's timeout, not a fixed one: counting a large table must not fail a night's backup at 10 minutes.
            await using var command = new MySqlCommand(sql, connection) { CommandTimeout = (int)Math.Min(int.MaxValue, options.Timeout.TotalSeconds) };
            foreach (var (n, v) in parameters)
            {
                command.Parameters.AddWithValue(n, v);
            }

            await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var rows = new List<string[]>();
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                var row = new string[reader.FieldCount];
                for (var i = 0; i < row.Length; i++)
                {
                    row[i] = reader.IsDBNull(i) ? "" : Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture) ?? "";
                }

                rows.Add(row);
            }

            return rows;
        }
        catch (MySqlException e)
        {
            throw new BackupException(Explain(e));
        }
    }

    private string Explain(MySqlException e) => e.ErrorCode switch
    {
        MySqlErrorCode.UnableToConnectToHost =>
            $"source '{name}': connection to MySQL/MariaDB at {Where} refused: is the server running and listening there? ({e.Message})",
        MySqlErrorCode.AccessDenied => $"source '{name}': access denied for user '{options.User}' at {Where}: check 'password' ({e.Message})",
        MySqlErrorCode.UnknownDatabase => $"source '{name}': {e.Message} at {Where}",
        _ => $"source '{name}': MySQL/MariaDB at {Where}: {e.Message} ({(int)e.ErrorCode})",
    };

    /// <summary>The password for the client programs: a file only this user can read, never argv.</summary>
    private string WriteDefaultsFile(string directory)
    {
        var path = Path.Combine(directory, $".my-{Guid.NewGuid():N}.cnf");
        var text = new StringBuilder("[client]\n");
        if (options.Password is { } p)
        {
            text.Append("password=\"").Append(p.Resolve().Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)).Append("\"\n");
        }

        using (var f = new FileStream(path, new FileStreamOptions
               {
                   Mode = FileMode.CreateNew,
                   Access = FileAccess.Write,
                   UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        {
            f.Write(Encoding.UTF8.GetBytes(text.ToString()));
        }

        return path;
    }

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
