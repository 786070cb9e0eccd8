using System.Text;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Npgsql;

namespace Backstop.Sources.Postgres;

/// <summary>
/// Restoring <c>globals.sql</c> (roles, memberships, tablespaces) into a live server without damaging it: a role that
/// already exists there with other attributes or another password is changed only with --force (a restore must never
/// rewrite a running server's passwords by surprise); roles that exist as the file has them are left alone; psql runs
/// with ON_ERROR_STOP, connected to the URI's database when it exists; the roles are compared afterwards.
/// </summary>
internal sealed partial class PostgresRestore
{
    /// <summary>globals.sql is a few lines per role; anything larger than this is not one.</summary>
    private const long GlobalsLimit = 64L << 20;

    /// <summary>The line pg_dumpall writes for a role, rebuilt from the server's catalog (pg_dumpall's own order).</summary>
    private const string RoleLines = """
        SELECT rolname,
               'ALTER ROLE ' || quote_ident(rolname) || ' WITH'
               || CASE WHEN rolsuper THEN ' SUPERUSER' ELSE ' NOSUPERUSER' END
               || CASE WHEN rolinherit THEN ' INHERIT' ELSE ' NOINHERIT' END
               || CASE WHEN rolcreaterole THEN ' CREATEROLE' ELSE ' NOCREATEROLE' END
               || CASE WHEN rolcreatedb THEN ' CREATEDB' ELSE ' NOCREATEDB' END
               || CASE WHEN rolcanlogin THEN ' LOGIN' ELSE ' NOLOGIN' END
               || CASE WHEN rolreplication THEN ' REPLICATION' ELSE ' NOREPLICATION' END
               || CASE WHEN rolbypassrls THEN ' BYPASSRLS' ELSE ' NOBYPASSRLS' END
               || CASE WHEN rolconnlimit <> -1 THEN ' CONNECTION LIMIT ' || rolconnlimit ELSE '' END
               || COALESCE(' PASSWORD ' || quote_literal(rolpassword), '')
               || COALESCE(' VALID UNTIL ' || quote_literal(rolvaliduntil::text), '')
               || ';'
        FROM pg_authid WHERE rolname !~ '^pg_'
        """;

    private async Task<IReadOnlyDictionary<string, long>> RestoreGlobalsAsync(Target target, PostgresTools tools, Dictionary<string, string> env,
        Stream content, bool force, CancellationToken ct)
    {
        var lines = await ReadGlobalsAsync(content, ct).ConfigureAwait(false);
        if (target.UnprivilegedRoles)
        {
            return await RestoreBareRolesAsync(target, tools, env, lines, ct).ConfigureAwait(false);
        }

        var wanted = new Dictionary<string, string?>(StringComparer.Ordinal); // role → its ALTER ROLE line in the file
        foreach (var line in lines)
        {
            if (RoleOf(line, "CREATE ROLE ") is { } created)
            {
                wanted.TryAdd(created, null);
            }
            else if (RoleOf(line, "ALTER ROLE ") is { } altered && line.Contains(" WITH ", StringComparison.Ordinal) && wanted.ContainsKey(altered))
            {
                wanted[altered] = line;
            }
        }

        Dictionary<string, string> present;
        bool databaseExists;
        await using (var admin = await OpenAsync(target, "postgres", ct).ConfigureAwait(false))
        {
            present = await RoleLinesAsync(admin, ct).ConfigureAwait(false);
            databaseExists = await PostgresServer.ScalarAsync(admin, "SELECT count(*) FROM pg_database WHERE datname = $1", ct, target.Database)
                .ConfigureAwait(false) is long n && n > 0;
        }

        var differing = wanted.Where(w => present.TryGetValue(w.Key, out var now) && now != w.Value).Select(w => w.Key).Order(StringComparer.Ordinal).ToList();
        if (differing.Count > 0 && !force)
        {
            throw new DestinationException(
                $"the server at {target.Host}:{target.Port} already has role(s) {string.Join(", ", differing)} with other attributes or another password than globals.sql; " +
                "restoring it would change them on a live server: restore into a server without them, or add --force to apply the snapshot's roles");
        }

        // Existing roles are never created again (psql would stop on it); those the file has as they are need no ALTER.
        var same = wanted.Keys.Where(r => present.ContainsKey(r) && !differing.Contains(r)).ToHashSet(StringComparer.Ordinal);
        var script = new StringBuilder();
        foreach (var line in lines)
        {
            if (target.SkipTablespaces && (line.StartsWith("CREATE TABLESPACE ", StringComparison.Ordinal) || line.Contains(" TABLESPACE ", StringComparison.Ordinal)))
            {
                continue; // a tablespace's LOCATION is a folder of the source's host: never created elsewhere
            }

            var role = RoleOf(line, "CREATE ROLE ") ?? RoleOf(line, "ALTER ROLE ");
            var skip = role is not null && ((line.StartsWith("CREATE ROLE ", StringComparison.Ordinal) && present.ContainsKey(role))
                                            || (line.StartsWith("ALTER ROLE ", StringComparison.Ordinal) && line.Contains(" WITH ", StringComparison.Ordinal) && same.Contains(role)));
            if (!skip)
            {
                script.Append(line).Append('\n');
            }
        }

        var database = databaseExists ? target.Database : "postgres";
        var psql = Path.Combine(Path.GetDirectoryName(tools.PgRestore)!, "psql");
        using (var input = new MemoryStream(Encoding.UTF8.GetBytes(script.ToString())))
        {
            await ChildProcess.RunWithInputAsync(psql, ["-d", Conninfo.Of(target.Host, target.Port, target.User, database), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                env, input, pg.Options.Timeout, $"psql (globals) at {target.Host}:{target.Port}", ct).ConfigureAwait(false);
        }

        // Compared after: every role of the file must be on the server, as the file has it.
        await using var check = await OpenAsync(target, "postgres", ct).ConfigureAwait(false);
        var after = await RoleLinesAsync(check, ct).ConfigureAwait(false);
        var wrong = wanted.Where(w => !after.TryGetValue(w.Key, out var line) || (w.Value is not null && line != w.Value)).Select(w => w.Key).ToList();
        if (wrong.Count > 0)
        {
            throw new BackupException($"after the globals restore, role(s) {string.Join(", ", wrong)} are missing or not as globals.sql has them at {target.Host}:{target.Port}");
        }

        return new Dictionary<string, long> { ["roles"] = wanted.Count };
    }

    /// <summary>
    /// globals.sql as bare roles (<c>?roles=unprivileged</c>): what a drill's throwaway cluster takes, where the file is
    /// hostile until proven otherwise. Only <c>CREATE ROLE name;</c> and <c>ALTER ROLE name WITH …;</c> are read, and
    /// each is written anew from its parsed role name: every role is created NOSUPERUSER NOCREATEROLE NOCREATEDB
    /// NOREPLICATION NOBYPASSRLS, without a password, keeping only LOGIN and INHERIT; memberships, per-role settings
    /// (<c>ALTER ROLE … SET</c>), tablespaces and anything else are left out, and a role the server already has (its
    /// superuser, the owner role) is never touched. The dump's GRANTs and policies that name the roles then restore.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, long>> RestoreBareRolesAsync(Target target, PostgresTools tools, Dictionary<string, string> env,
        List<string> lines, CancellationToken ct)
    {
        Dictionary<string, string> present;
        await using (var admin = await OpenAsync(target, "postgres", ct).ConfigureAwait(false))
        {
            present = await RoleLinesAsync(admin, ct).ConfigureAwait(false);
        }

        var roles = new List<string>(); // every role the file creates, as written there (quoted or not)
        var attributes = new Dictionary<string, (bool Login, bool Inherit)>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            if (line.StartsWith("CREATE ROLE ", StringComparison.Ordinal) && BareRole(line, "CREATE ROLE ") is ({ } created, ";"))
            {
                roles.Add(created);
                attributes.TryAdd(created, (false, true));
            }
            else if (line.StartsWith("ALTER ROLE ", StringComparison.Ordinal) && BareRole(line, "ALTER ROLE ") is ({ } altered, { } rest)
                     && rest.StartsWith(" WITH ", StringComparison.Ordinal) && rest.EndsWith(';') && attributes.ContainsKey(altered))
            {
                var words = rest[6..^1].Split(' ');
                attributes[altered] = (words.Contains("LOGIN", StringComparer.Ordinal), !words.Contains("NOINHERIT", StringComparer.Ordinal));
            }
        }

        var wanted = new Dictionary<string, string>(StringComparer.Ordinal); // role (as quote_ident gives it) → its line on the server afterwards
        var script = new StringBuilder();
        foreach (var role in roles.Distinct(StringComparer.Ordinal))
        {
            var (login, inherit) = attributes[role];
            var line = $"ALTER ROLE {role} WITH NOSUPERUSER {(inherit ? "INHERIT" : "NOINHERIT")} NOCREATEROLE NOCREATEDB {(login ? "LOGIN" : "NOLOGIN")} NOREPLICATION NOBYPASSRLS;";
            var name = RoleOf(line, "ALTER ROLE ")!;
            if (present.ContainsKey(name))
            {
                continue; // the server's own role: never changed by what a dump says
            }

            wanted[name] = line;
            script.Append("CREATE ROLE ").Append(role).Append(";\n").Append(line).Append('\n');
        }

        if (script.Length > 0)
        {
            var psql = Path.Combine(Path.GetDirectoryName(tools.PgRestore)!, "psql");
            using var input = new MemoryStream(Encoding.UTF8.GetBytes(script.ToString()));
            await ChildProcess.RunWithInputAsync(psql, ["-d", Conninfo.Of(target.Host, target.Port, target.User, "postgres"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                env, input, pg.Options.Timeout, $"psql (roles) at {target.Host}:{target.Port}", ct).ConfigureAwait(false);
        }

        await using var check = await OpenAsync(target, "postgres", ct).ConfigureAwait(false);
        var after = await RoleLinesAsync(check, ct).ConfigureAwait(false);
        var wrong = wanted.Where(w => !after.TryGetValue(w.Key, out var line) || !SameRole(line, w.Value))
            .Select(w => w.Key).ToList();
        if (wrong.Count > 0)
        {
            throw new BackupException($"after the roles were created, role(s) {string.Join(", ", wrong)} are missing or not as meant at {target.Host}:{target.Port}");
        }

        return new Dictionary<string, long> { ["roles"] = roles.Distinct(StringComparer.Ordinal).Count() };
    }

    /// <summary>Two ALTER ROLE lines for the same role with the same attributes (the server writes the name with quote_ident).</summary>
    private static bool SameRole(string server, string meant) =>
        server[(server.IndexOf(" WITH ", StringComparison.Ordinal) + 1)..] == meant[(meant.IndexOf(" WITH ", StringComparison.Ordinal) + 1)..];

    /// <summary>
    /// The role name right after <paramref name="prefix"/> exactly as written (a bare identifier, or a double-quoted one),
    /// and the rest of the line; null when the name is neither.
    /// </summary>
    internal static (string? Role, string? After) BareRole(string line, string prefix)
    {
        var rest = line[prefix.Length..];
        var end = 0;
        if (rest.StartsWith('"'))
        {
            for (end = 1; end < rest.Length; end++)
            {
                if (rest[end] == '"')
                {
                    if (end + 1 < rest.Length && rest[end + 1] == '"')
                    {
                        end++;
                        continue;
                    }

                    end++;
                    return end > 2 && !rest[..end].Contains('\0', StringComparison.Ordinal) ? (rest[..end], rest[end..]) : (null, null);
                }
            }

            return (null, null);
        }

        while (end < rest.Length && (char.IsAsciiLetterOrDigit(rest[end]) || rest[end] is '_' or '$'))
        {
            end++;
        }

        return end > 0 && !char.IsAsciiDigit(rest[0]) ? (rest[..end], rest[end..]) : (null, null);
    }

    /// <summary>Every non-system role's pg_dumpall line; null lines when pg_authid cannot be read (not a superuser).</summary>
    private static async Task<Dictionary<string, string>> RoleLinesAsync(NpgsqlConnection db, CancellationToken ct)
    {
        try
        {
            await using var cmd = new NpgsqlCommand(RoleLines, db);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var roles = new Dictionary<string, string>(StringComparer.Ordinal);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                roles[r.GetString(0)] = r.GetString(1);
            }

            return roles;
        }
        catch (PostgresException e) when (e.SqlState == "42501")
        {
            throw new DestinationException(
                "restoring globals.sql needs a superuser (it reads pg_authid to compare the roles before changing anything): connect as one");
        }
    }

    /// <summary>The role a <c>CREATE ROLE x;</c> or <c>ALTER ROLE x …</c> line is about, unquoted.</summary>
    internal static string? RoleOf(string line, string prefix)
    {
        if (!line.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = line[prefix.Length..];
        if (rest.StartsWith('"'))
        {
            var sb = new StringBuilder();
            for (var i = 1; i < rest.Length; i++)
            {
                if (rest[i] == '"')
                {
                    if (i + 1 < rest.Length && rest[i + 1] == '"')
                    {
                        sb.Append('"');
                        i++;
                        continue;
                    }

                    return sb.ToString();
                }

                sb.Append(rest[i]);
            }

            return null;
        }

        var end = rest.IndexOfAny([' ', ';']);
        return end <= 0 ? null : rest[..end];
    }

    private static async Task<List<string>> ReadGlobalsAsync(Stream content, CancellationToken ct)
    {
        using var reader = new StreamReader(content, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        var lines = new List<string>();
        long size = 0;
        while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
        {
            size += line.Length + 1;
            if (size > GlobalsLimit)
            {
                throw new BackupException($"globals.sql is larger than {GlobalsLimit >> 20} MiB: not a pg_dumpall --globals-only file");
            }

            lines.Add(line);
        }

        return lines;
    }
}
