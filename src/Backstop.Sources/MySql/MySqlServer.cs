using System.Globalization;
using System.Text;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using MySqlConnector;

namespace Backstop.Sources.MySql;

/// <summary>
/// One MySQL or MariaDB server as a part of the mysql kind reaches it (the source's own, a drill server, a restore's
/// destination): where and as whom, its tools and timeout, and what every part does with it — connect, query, count
/// the facts of a database, find and check the client programs, and write their 0600 password file.
/// </summary>
internal sealed partial class MySqlServer(string name, MySqlOptions options)
{
    /// <summary>Schemas the server keeps for itself, never backed up.</summary>
    internal static readonly string[] SystemSchemas = ["information_schema", "performance_schema", "sys"];

    /// <summary>The source this server belongs to (named in every message).</summary>
    public string Source => name;

    public MySqlOptions Options => options;

    public string Where => $"{options.Host}:{options.Port}";

    public string Port => options.Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>Another server, reached for the same source (a drill server, a restore's destination).</summary>
    public MySqlServer At(string host, int port, string user, SecretRef? password) =>
        new(name, options with { Host = host, Port = port, User = user, Password = password });

    /// <summary>Where this server is reached: <c>mysql://user@host:port/</c> and the database.</summary>
    public string UriOf(string database) =>
        $"mysql://{Uri.EscapeDataString(options.User)}@{options.Host}:{options.Port.ToString(CultureInfo.InvariantCulture)}/{Uri.EscapeDataString(database)}";

    /// <summary>What <c>--version</c> says, e.g. "10.11.19-MariaDB" or "8.0.36".</summary>
    public async Task<string> ToolVersionAsync(string tool, CancellationToken ct)
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
    public void CheckToolVersion(string dump, string tool, string server)
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
                $"source '{name}': {dump} is version {tool}, older than the server at {Where} ({server}); " +
                $"install a client of version {s.Major}.{s.Minor} or newer and set tools.dump to it");
        }
    }

    internal static (int Major, int Minor)? MajorMinor(string version)
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

    public string Resolve(string key, string[] candidates)
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
    public async Task<Dictionary<string, long>> FactsAsync(string database, CancellationToken ct)
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
    public async Task<MySqlConnection> ConnectAsync(string? database, CancellationToken ct)
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
    public async Task<List<string[]>> QueryAsync(string? database, string sql, CancellationToken ct, params (string Name, object Value)[] parameters)
    {
        await using var connection = await ConnectAsync(database, ct).ConfigureAwait(false);
        return await QueryOnAsync(connection, sql, ct, parameters).ConfigureAwait(false);
    }

    /// <summary>Runs one query with parameters; every value comes back as invariant text (NULL as empty).</summary>
    public async Task<List<string[]>> QueryOnAsync(MySqlConnection connection, string sql, CancellationToken ct, params (string Name, object Value)[] parameters)
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
    public string WriteDefaultsFile(string directory)
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
}
