namespace Backstop.Core.Catalog;

/// <summary>An agent as the catalog last heard of it: when, which process and build, and how often it promised to report.</summary>
public sealed record MachineInfo(string Name, DateTimeOffset SeenAt, long Pid, string Version, TimeSpan? Every)
{
    /// <summary>Silent for longer than it promised: its sources may be backed up by nobody.</summary>
    public bool IsStale(DateTimeOffset now) => Every is { } every && now - SeenAt > every;
}

public sealed partial class CatalogStore
{
    /// <summary>How long a machine that defined a source must have been silent before another may take the name over (it moved).</summary>
    public static readonly TimeSpan AdoptAfter = TimeSpan.FromDays(1);

    /// <summary>Whether several machines share this catalog (PostgreSQL), so names and locks are the fleet's, not one process's.</summary>
    public bool IsShared => Engine is PostgresCatalog;

    /// <summary>
    /// Records a source and the machine that runs it. In a shared catalog a name is the fleet's: a second definition from
    /// another machine is refused while the machine that defined it reports in (names are folders on shared targets), and
    /// taken over, said in an event, once that machine has been silent for <see cref="AdoptAfter"/> (the source moved).
    /// </summary>
    public void EnsureSource(string name, string kind, string? machine = null)
    {
        if (IsShared && machine is not null)
        {
            using var owner = Command("SELECT s.machine, m.seen_at FROM sources s LEFT JOIN machines m ON m.name = s.machine WHERE s.name = @n", ("@n", name));
            using var r = owner.ExecuteReader();
            if (r.Read() && Str(r, 0) is { } other && other != machine)
            {
                var seen = r.IsDBNull(1) ? (DateTimeOffset?)null : ParseTime(r.GetString(1));
                if (seen is { } at && DateTimeOffset.UtcNow - at < AdoptAfter)
                {
                    throw new Plugins.BackupException(
                        $"source '{name}' is already defined by machine '{other}' in the shared {Describe} (last report {Time(at)}); names are unique across the fleet " +
                        $"(they name folders on shared targets): rename this one, or give it machine: {other}; a source that moved is taken over once '{other}' has been silent for a day");
                }

                r.Close();
                AddEvent("warn", name, null, $"source '{name}' taken over by machine '{machine}' from '{other}', silent since {(seen is { } s ? Time(s) : "it never reported")}");
            }
        }

        using var cmd = Command(
            "INSERT INTO sources(name, kind, machine) VALUES (@n, @k, @m) ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, machine = coalesce(excluded.machine, sources.machine)",
            ("@n", name), ("@k", kind), ("@m", machine));
        cmd.ExecuteNonQuery();
    }

    /// <summary>The machine each source was last run by (sources never run have none).</summary>
    public IReadOnlyDictionary<string, string> SourceMachines()
    {
        using var cmd = Command("SELECT name, machine FROM sources WHERE machine IS NOT NULL");
        using var r = cmd.ExecuteReader();
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        while (r.Read())
        {
            map[r.GetString(0)] = r.GetString(1);
        }

        return map;
    }

    /// <summary>An agent reports in: now, its process, its build, and within what time it promises to report again (null: no promise).</summary>
    public void ReportMachine(string name, TimeSpan? every, DateTimeOffset now)
    {
        using var cmd = Command(
            """
            INSERT INTO machines(name, seen_at, pid, version, every_seconds) VALUES (@n, @t, @p, @v, @e)
            ON CONFLICT(name) DO UPDATE SET seen_at = excluded.seen_at, pid = excluded.pid, version = excluded.version, every_seconds = excluded.every_seconds
            """,
            ("@n", name), ("@t", Time(now)), ("@p", (long)Environment.ProcessId), ("@v", Text.BuildInfo.Version),
            ("@e", every is { } e ? (long)Math.Ceiling(e.TotalSeconds) : null));
        cmd.ExecuteNonQuery();
    }

    /// <summary>Every agent the catalog has heard of, by name.</summary>
    public IReadOnlyList<MachineInfo> Machines()
    {
        using var cmd = Command("SELECT name, seen_at, pid, version, every_seconds FROM machines ORDER BY name");
        using var r = cmd.ExecuteReader();
        var list = new List<MachineInfo>();
        while (r.Read())
        {
            list.Add(new MachineInfo(r.GetString(0), ParseTime(r.GetString(1)), r.GetInt64(2), r.GetString(3), r.IsDBNull(4) ? null : TimeSpan.FromSeconds(r.GetInt64(4))));
        }

        return list;
    }

    /// <summary>The agent's locks on a shared catalog (null for the embedded one): a commit and a delete are fenced by them.</summary>
    public Locking.FleetLocks? Locks { get; set; }

    /// <summary>Throws <see cref="Locking.LockLostException"/> when this agent took the source's lock and no longer holds it: before a step that commits or deletes.</summary>
    public void Fence(string source, string what)
    {
        if (Locks is { } locks && locks.TookSource(source))
        {
            locks.Check(Locking.FleetLocks.SourceKey(source), what);
        }
    }

    /// <summary>Inside a commit's transaction: the source's lock is still this agent's, or nothing is committed.</summary>
    private void FenceInTransaction(string source)
    {
        if (Locks is not { } locks || !locks.TookSource(source))
        {
            return;
        }

        // A session this agent knows is gone holds nothing, even while the server has not yet let its locks go.
        using var cmd = Command(Locking.FleetLocks.FenceSql, locks.FenceParameters(Locking.FleetLocks.SourceKey(source)));
        if (locks.IsBroken || Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            throw new Locking.LockLostException(
                $"snapshot of '{source}' not committed: this agent no longer holds its lock on the {Describe} (the catalog server restarted, or this agent was cut off from it); another agent may be running it; the next run starts over");
        }
    }
}
