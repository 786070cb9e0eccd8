using System.Net.Sockets;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Npgsql;

namespace Backstop.Sources.Postgres;

/// <summary>
/// One PostgreSQL server as a part of the postgres kind reaches it (the source's own, a drill server or throwaway
/// cluster, a restore's destination): where and as whom, its timeout, the child programs' environment (the password,
/// never argv), and connecting, querying and counting as every part does.
/// </summary>
internal sealed class PostgresServer(string name, PostgresOptions options)
{
    /// <summary>The source this server belongs to (named in every message).</summary>
    public string Source => name;

    public PostgresOptions Options => options;

    public string Where => $"{options.Host}:{options.Port}";

    /// <summary>Another server, reached for the same source; a throwaway cluster on loopback takes no TLS.</summary>
    public PostgresServer At(string host, int port, string user, string? password, bool throwaway) =>
        new(name, options with
        {
            Host = host, Port = port, User = user, Password = password is null ? null : new SecretRef(password, default),
            SslMode = throwaway ? "disable" : options.SslMode,
        });

    /// <summary>The drill server of <c>drill.server</c>, as its own user with <c>drill.password</c> (never the source's).</summary>
    public PostgresServer OnServer(ServerDestination d, SecretRef? password) =>
        new(name, options with { Host = d.Host, Port = d.Port, User = d.User, Password = password });

    public string Port => options.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The child's environment: the password, never argv.</summary>
    public Dictionary<string, string> Environment()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal) { ["PGCONNECT_TIMEOUT"] = "30" };
        if (options.Password is { } p)
        {
            env["PGPASSWORD"] = p.Resolve();
        }
        else
        {
            // No password configured: libpq's own variables, as Npgsql (preflight, counts) reads them too. Children do
            // not inherit secret-named variables, so they are handed on here, to pg_dump of this source only.
            foreach (var inherited in new[] { "PGPASSWORD", "PGPASSFILE" })
            {
                if (System.Environment.GetEnvironmentVariable(inherited) is { Length: > 0 } value)
                {
                    env[inherited] = value;
                }
            }
        }

        if (options.SslMode is { } ssl)
        {
            env["PGSSLMODE"] = ssl;
        }

        return env;
    }

    internal enum RowCount
    {
        /// <summary>Tables only (a dump's rows are counted from its COPY data).</summary>
        None,

        /// <summary>Every table's rows, counted (a restored database's, compared with the snapshot's).</summary>
        Exact,

        /// <summary>The planner's estimate, recorded as rows_estimated, never as rows.</summary>
        Estimated,
    }

    /// <summary>Tables, and rows counted (exact), the planner's estimate, or none.</summary>
    public static async Task<Dictionary<string, long>> CountAsync(NpgsqlConnection db, RowCount rowCount, CancellationToken ct)
    {
        const string userTables = """
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
            """;
        var tables = await ListAsync(db, $"SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) {userTables} ORDER BY 1", ct).ConfigureAwait(false);
        if (rowCount == RowCount.None)
        {
            return new Dictionary<string, long> { ["databases"] = 1, ["tables"] = tables.Count };
        }

        if (rowCount == RowCount.Estimated)
        {
            var estimate = Convert.ToInt64(await ScalarAsync(db, $"SELECT COALESCE(SUM(GREATEST(c.reltuples, 0)), 0)::bigint {userTables} AND c.relkind = 'r'", ct)
                .ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            return new Dictionary<string, long> { ["databases"] = 1, ["tables"] = tables.Count, ["rows_estimated"] = estimate };
        }

        long rows = 0;
        foreach (var t in tables)
        {
            // Partitioned parents count their partitions' rows; ONLY keeps each row counted once.
            rows += Convert.ToInt64(await ScalarAsync(db, $"SELECT count(*) FROM ONLY {t}", ct).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
        }

        return new Dictionary<string, long> { ["databases"] = 1, ["tables"] = tables.Count, ["rows"] = rows };
    }

    /// <summary>Tables and rows of one database: rows counted (exact_rows) or the planner's estimate.</summary>
    public async Task<Dictionary<string, long>> FactsAsync(string database, CancellationToken ct)
    {
        await using var db = await ConnectAsync(database, ct).ConfigureAwait(false);
        return await CountAsync(db, options.ExactRows ? RowCount.Exact : RowCount.Estimated, ct).ConfigureAwait(false);
    }

    public async Task<NpgsqlConnection> ConnectAsync(string database, CancellationToken ct)
    {
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = options.Host,
            Port = options.Port,
            Username = options.User,
            Database = database,
            Timeout = 15,
            Pooling = false,
            ApplicationName = "backstop",
        };
        if (options.Password is { } p)
        {
            builder.Password = p.Resolve();
        }

        if (options.SslMode is { } ssl)
        {
            builder.SslMode = Enum.Parse<SslMode>(ssl.Replace("-", "", StringComparison.Ordinal), ignoreCase: true);
        }

        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(ct).ConfigureAwait(false);
            return connection;
        }
        catch (Exception e) when (e is NpgsqlException or SocketException or TimeoutException)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw new BackupException($"source '{name}': {Explain(e, database)}");
        }
    }

    private string Explain(Exception e, string database)
    {
        if (e is PostgresException pg)
        {
            return pg.SqlState switch
            {
                "28P01" => $"password authentication failed for user '{options.User}' at {Where}; check 'password'",
                "28000" => $"the server at {Where} refused user '{options.User}' (pg_hba.conf): {pg.MessageText}",
                "3D000" => $"database '{database}' does not exist at {Where}",
                "57P03" => $"the server at {Where} is starting up or shutting down; try again",
                _ => $"PostgreSQL at {Where}: {pg.MessageText} ({pg.SqlState})",
            };
        }

        var socket = e as SocketException ?? e.InnerException as SocketException;
        return socket?.SocketErrorCode switch
        {
            SocketError.ConnectionRefused => $"connection to PostgreSQL at {Where} refused: is the server running and listening there?",
            SocketError.HostNotFound or SocketError.NoData => $"host '{options.Host}' not found (DNS); check 'host'",
            SocketError.TimedOut => $"connection to PostgreSQL at {Where} timed out: check the address and the firewall",
            _ => $"cannot connect to PostgreSQL at {Where}: {e.Message}",
        };
    }

    public static async Task<object?> ScalarAsync(NpgsqlConnection db, string sql, CancellationToken ct, params object[] parameters)
    {
        // No command timeout of its own (Npgsql's default, 30 s, would fail a count(*) over a large table); Ctrl-C and
        // SIGTERM stop it through the token.
        await using var cmd = new NpgsqlCommand(sql, db) { CommandTimeout = 0 };
        foreach (var p in parameters)
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
    }

    public static async Task<List<string>> ListAsync(NpgsqlConnection db, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, db);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<string>();
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(r.GetString(0));
        }

        return list;
    }
}
