using System.Globalization;
using System.IO.Hashing;
using System.Text;
using Backstop.Core.Catalog;
using Backstop.Core.Plugins;
using Npgsql;

namespace Backstop.Core.Locking;

/// <summary>The lock a step needed is no longer held (a catalog server restarted, this agent was cut off): the step did not happen.</summary>
public sealed class LockLostException(string message) : BackupException(message);

/// <summary>
/// Locks on the shared catalog's own engine: PostgreSQL session-level advisory locks held on one dedicated connection
/// (never pooled: a pooled connection's reset runs DISCARD ALL, which drops advisory locks), with TCP keepalives and a
/// user timeout on both ends, so the server releases them when this agent dies or is cut off, and this agent learns it.
/// A lock is one 64-bit key per source (<c>backstop/source/NAME</c>) or duty (<c>backstop/leader</c>). Every step that
/// commits or deletes first checks that its lock is still held (<see cref="Check"/>), and a snapshot's commit checks it
/// again inside its own transaction (<see cref="FenceSql"/>): a step after a lost lock never happens.
/// </summary>
public sealed class FleetLocks : IDisposable
{
    private readonly NpgsqlConnection _db;
    private readonly object _gate = new();
    private readonly HashSet<long> _held = [];

    // Every lock this session ever took: a step of a source whose lock was taken must still hold it, even after the
    // session is gone or was let go (then it holds nothing, and the step stops).
    private readonly HashSet<long> _taken = [];
    private readonly string _catalog;
    private bool _broken;

    private FleetLocks(NpgsqlConnection db, string catalog)
    {
        _db = db;
        _catalog = catalog;
        using var cmd = db.CreateCommand();
        // The server drops this session (and its locks) within about 30 s of this agent going silent.
        cmd.CommandText = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 30000; SELECT pg_backend_pid()";
        Pid = Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    /// <summary>The server process that holds this agent's locks (what a fenced commit looks for in <c>pg_locks</c>).</summary>
    public long Pid { get; }

    /// <summary>The lock session for a shared catalog; null for the embedded one (the run lock file serves it).</summary>
    public static FleetLocks? Open(CatalogStore catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        if (catalog.Engine is not PostgresCatalog pg)
        {
            return null;
        }

        var settings = pg.Settings(pooled: false);
        settings.KeepAlive = 10;
        var db = new NpgsqlConnection(settings.ConnectionString);
        try
        {
            db.Open();
            return new FleetLocks(db, catalog.Describe);
        }
        catch (NpgsqlException e)
        {
            db.Dispose();
            throw new BackupException(pg.Explain(e), e);
        }
    }

    public static long SourceKey(string source) => Key("source/" + source);

    public static long LeaderKey => Key("leader");

    private static long Key(string name) => (long)XxHash64.HashToUInt64(Encoding.UTF8.GetBytes("backstop/" + name));

    /// <summary>Takes a lock if it is free (or already this agent's); false when another agent holds it.</summary>
    public bool TryTake(long key)
    {
        lock (_gate)
        {
            if (_held.Contains(key))
            {
                return StillHeld(key);
            }

            bool taken;
            try
            {
                taken = Scalar("SELECT pg_try_advisory_lock(@k)", key) is true;
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException or TimeoutException)
            {
                _broken = true;
                throw new BackupException($"the {_catalog} cannot be reached to take a lock: {e.Message}");
            }

            if (taken)
            {
                _held.Add(key);
                _taken.Add(key);
            }

            return taken;
        }
    }

    /// <summary>Whether the session is gone (the catalog server restarted, the network cut): its locks are gone too.</summary>
    public bool IsBroken
    {
        get
        {
            lock (_gate)
            {
                return _broken;
            }
        }
    }

    /// <summary>
    /// Takes every named source's lock, waiting up to <paramref name="wait"/> (null: not at all) for another agent to let
    /// them go; <paramref name="waiting"/> is told once. A lock still held throws <see cref="LockHeldException"/> naming
    /// its holder (exit 75), with the ones taken let go again.
    /// </summary>
    public async Task TakeSourcesAsync(IReadOnlyList<string> sources, TimeSpan? wait, Action<string> waiting, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(waiting);
        var started = DateTimeOffset.UtcNow;
        var said = false;
        var taken = new List<string>();
        while (true)
        {
            foreach (var source in sources.Where(s => !taken.Contains(s)))
            {
                if (TryTake(SourceKey(source)))
                {
                    taken.Add(source);
                }
            }

            var busy = sources.Where(s => !taken.Contains(s)).ToList();
            if (busy.Count == 0)
            {
                return;
            }

            var message = string.Join("; ", busy.Select(s => $"source '{s}' is being backed up by {Holder(SourceKey(s)) ?? "another agent"} (its lock on the {_catalog})"));
            if (wait is not { } w || DateTimeOffset.UtcNow - started >= w)
            {
                foreach (var t in taken)
                {
                    Release(SourceKey(t));
                }

                throw new LockHeldException(wait is null
                    ? $"{message}; two agents never back up one source at once: wait for it, or run with --wait[=DURATION]"
                    : $"{message}: still held after waiting {Config.Quantities.FormatDuration(DateTimeOffset.UtcNow - started)} (--wait)");
            }

            if (!said)
            {
                said = true;
                waiting(message);
            }

            await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Whether another agent's session holds the lock now (a snapshot of its source is being made there).</summary>
    public bool HeldElsewhere(long key)
    {
        lock (_gate)
        {
            Require();
            using var cmd = Command(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() AND classid::bigint = @hi AND objid::bigint = @lo AND objsubid = 1", key);
            return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
        }
    }

    /// <summary>Whether this agent took the source's lock (and so must still hold it to commit).</summary>
    public bool TookSource(string source)
    {
        lock (_gate)
        {
            return _taken.Contains(SourceKey(source));
        }
    }

    /// <summary>Lets a lock go (when this agent holds it).</summary>
    public void Release(long key)
    {
        lock (_gate)
        {
            if (_held.Remove(key) && !_broken)
            {
                try
                {
                    Scalar("SELECT pg_advisory_unlock(@k)", key);
                }
                catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException)
                {
                    _broken = true; // the session is gone, and its locks with it
                }
            }
        }
    }

    /// <summary>Whether this agent still holds the lock, asked of the server (false when the session is gone).</summary>
    public bool Holds(long key)
    {
        lock (_gate)
        {
            return _held.Contains(key) && StillHeld(key);
        }
    }

    /// <summary>Throws <see cref="LockLostException"/> unless this agent still holds the lock: called before a step that commits or deletes.</summary>
    public void Check(long key, string what)
    {
        if (!Holds(key))
        {
            throw new LockLostException(
                $"{what}: stopped before it changed anything, because this agent no longer holds its lock on the {_catalog} (the catalog server restarted, or this agent was cut off from it); the next run starts over");
        }
    }

    /// <summary>Who holds a lock (an agent's application name: "backstop MACHINE PID", and the server's pid), or null when it is free.</summary>
    public string? Holder(long key)
    {
        lock (_gate)
        {
            Require();
            using var cmd = Command(
                "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid " +
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = @hi AND l.objid::bigint = @lo AND l.objsubid = 1", key);
            using var r = cmd.ExecuteReader();
            if (!r.Read())
            {
                return null;
            }

            var name = r.IsDBNull(0) ? "" : r.GetString(0);
            var parts = name.Split(' ');
            return parts is ["backstop", var machine, var pid]
                ? $"machine '{machine}', pid {pid}"
                : $"'{name}' (server pid {r.GetInt32(1).ToString(CultureInfo.InvariantCulture)})";
        }
    }

    /// <summary>
    /// The condition a commit adds inside its own transaction on the catalog: true only while this agent's session
    /// still holds the key (<c>@fence_pid</c>, <c>@fence_hi</c>, <c>@fence_lo</c> from <see cref="FenceParameters"/>).
    /// </summary>
    public const string FenceSql =
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = @fence_pid AND classid::bigint = @fence_hi AND objid::bigint = @fence_lo AND objsubid = 1";

    public (string, object?)[] FenceParameters(long key) => [("@fence_pid", (int)Pid), ("@fence_hi", Hi(key)), ("@fence_lo", Lo(key))];

    public void Dispose()
    {
        lock (_gate)
        {
            _held.Clear();
            _broken = true; // what took a lock here and still runs learns it holds none
            _db.Dispose(); // the session ends: the server lets every lock of it go
        }
    }

    /// <summary>A question about another agent's lock needs a live session: never guessed from a lost one.</summary>
    private void Require()
    {
        if (_broken || _db.State != System.Data.ConnectionState.Open)
        {
            _broken = true;
            throw new BackupException($"the lock session on the {_catalog} was lost (its server restarted, or the network dropped it); the next run opens a new one");
        }
    }

    private static long Hi(long key) => (long)((ulong)key >> 32);

    private static long Lo(long key) => (long)((ulong)key & 0xFFFFFFFF);

    private bool StillHeld(long key)
    {
        if (_broken)
        {
            return false;
        }

        try
        {
            using var cmd = Command(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND classid::bigint = @hi AND objid::bigint = @lo AND objsubid = 1", key);
            return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException or TimeoutException)
        {
            _broken = true;
            return false;
        }
    }

    private object? Scalar(string sql, long key)
    {
        using var cmd = Command(sql, key);
        return cmd.ExecuteScalar();
    }

    private NpgsqlCommand Command(string sql, long key)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.CommandTimeout = 15;
        foreach (var (name, value) in new[] { ("k", key), ("hi", Hi(key)), ("lo", Lo(key)) }.Where(p => sql.Contains("@" + p.Item1, StringComparison.Ordinal)))
        {
            cmd.Parameters.AddWithValue(name, value);
        }

        return cmd;
    }
}
