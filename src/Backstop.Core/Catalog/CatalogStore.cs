using System.Globalization;
using System.Text.Json;
using System.Data.Common;

namespace Backstop.Core.Catalog;

/// <summary>
/// The catalog: snapshots, artifacts, copies, drills, events, the continuous archive, on an embedded SQLite file or a
/// shared PostgreSQL database (<see cref="CatalogEngine"/>) with the same SQL. Recording a snapshot is one transaction;
/// size history is read from recorded snapshots, so there is no separate history file to corrupt.
/// </summary>
public sealed partial class CatalogStore : IDisposable
{
    private static readonly IReadOnlyDictionary<string, long> NoFacts = new Dictionary<string, long>();

    private readonly DbConnection _db;

    private CatalogStore(DbConnection db, CatalogEngine engine)
    {
        _db = db;
        Engine = engine;
    }

    /// <summary>The newest schema this build knows (each engine's steps end there).</summary>
    public static int SchemaVersion => new SqliteCatalog("").Latest;

    internal CatalogEngine Engine { get; }

    /// <summary>The embedded catalog in a SQLite file.</summary>
    public static CatalogStore Open(string path) => Open(new SqliteCatalog(path));

    /// <summary>The configured catalog: the shared PostgreSQL database of <c>catalog.url</c>, else the SQLite file.</summary>
    public static CatalogStore Open(Config.BackstopConfig config) => Open(EngineOf(config));

    internal static CatalogEngine EngineOf(Config.BackstopConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.CatalogServer is { } server ? new PostgresCatalog(server, config.Machine) : new SqliteCatalog(config.CatalogPath);
    }

    internal DbConnection Connection => _db;

    /// <summary>The rows of one of the catalog's own tables (a name from <see cref="CatalogCopy.Tables"/>).</summary>
    internal long Count(string table)
    {
        if (!CatalogCopy.Tables.Contains(table))
        {
            throw new ArgumentException($"not a catalog table: {table}", nameof(table));
        }

        using var cmd = Command($"SELECT count(*) FROM {table}");
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    /// <summary>The catalog as a person names it: its file, or its URL (never a password).</summary>
    public string Describe => Engine.Describe;

    internal static CatalogStore Open(CatalogEngine engine)
    {
        DbConnection? db = null;
        try
        {
            db = engine.Connect();
            engine.Migrate(db);
            return new CatalogStore(db, engine);
        }
        catch (DbException e)
        {
            db?.Dispose();
            throw new Plugins.BackupException(engine.Explain(e), e);
        }
        catch
        {
            db?.Dispose();
            throw;
        }
    }

    public void BeginSnapshot(string id, string source, string kind, DateTimeOffset startedAt, string host)
    {
        if (!TryBeginSnapshot(id, source, kind, startedAt, host))
        {
            throw new InvalidOperationException($"snapshot {id} already exists in the catalog");
        }
    }

    /// <summary>Records a snapshot as running; false when the id is taken.</summary>
    /// <param name="machine">The machine that runs the source (a shared catalog refuses a name another machine defined).</param>
    public bool TryBeginSnapshot(string id, string source, string kind, DateTimeOffset startedAt, string host, string? machine = null)
    {
        using var tx = Begin();
        EnsureSource(source, kind, machine);
        using (var cmd = Command(
                   "INSERT INTO snapshots(id, source, state, started_at, host, pid) VALUES (@id, @s, 'running', @t, @h, @p) ON CONFLICT (id) DO NOTHING",
                   ("@id", id), ("@s", source), ("@t", Time(startedAt)), ("@h", host), ("@p", (long)Environment.ProcessId)))
        {
            if (cmd.ExecuteNonQuery() == 0)
            {
                return false; // the id is taken
            }
        }

        tx.Commit();
        return true;
    }

    /// <summary>
    /// Records the outcome of a snapshot, its artifacts and its copies, in one transaction. A run's outcome
    /// (<c>valid</c> or <c>failed</c>) adds one to the source's run counter, which retention never lowers; a rebuilt
    /// record (from a manifest) passes none.
    /// </summary>
    public void FinishSnapshot(SnapshotInfo s, string? runOutcome = null)
    {
        ArgumentNullException.ThrowIfNull(s);
        using var tx = Begin();
        if (runOutcome is not null)
        {
            CountRun(s.Source, runOutcome);
        }

        using (var cmd = Command(
                   """
                   UPDATE snapshots SET state = @st, finished_at = @f, raw_bytes = @r, stored_bytes = @sb, facts = @facts,
                       warnings = @w, error = @e, parent = @p, level = @l WHERE id = @id AND NOT (state = 'failed' AND @st = 'committed')
                   """,
                   ("@p", s.Parent), ("@l", s.Level), ("@st", StateName(s.State)), ("@f", s.FinishedAt is { } f ? Time(f) : null), ("@r", s.RawBytes),
                   ("@sb", s.StoredBytes), ("@facts", JsonSerializer.Serialize(s.Facts)), ("@w", JsonSerializer.Serialize(s.Warnings)),
                   ("@e", s.Error), ("@id", s.Id)))
        {
            if (cmd.ExecuteNonQuery() != 1)
            {
                throw Snapshot(s.Id) is { State: SnapshotState.Failed } failed
                    ? new Plugins.BackupException($"snapshot {s.Id} of '{s.Source}' not committed: it was recorded failed meanwhile ({failed.Error}); a failed record never turns committed, and the next run starts over")
                    : new InvalidOperationException($"snapshot {s.Id} was not begun in the catalog");
            }
        }

        foreach (var (a, seq) in s.Artifacts.Select((a, i) => (a, (long)i)))
        {
            using (var cmd = Command(
                       """
                       INSERT INTO artifacts(snapshot_id, name, file_name, raw_bytes, stored_bytes, sha256, compression, facts, reported, level, seq)
                       VALUES (@id, @n, @fn, @r, @sb, @h, @c, @facts, @rep, @l, @seq)
                       ON CONFLICT (snapshot_id, name) DO UPDATE SET file_name = excluded.file_name, raw_bytes = excluded.raw_bytes, stored_bytes = excluded.stored_bytes,
                           sha256 = excluded.sha256, compression = excluded.compression, facts = excluded.facts, reported = excluded.reported, level = excluded.level,
                           seq = excluded.seq
                       """, ("@l", (long)a.Level), ("@seq", seq),
                       ("@id", s.Id), ("@n", a.Name), ("@fn", a.FileName), ("@r", a.RawBytes), ("@sb", a.StoredBytes),
                       ("@h", a.Sha256), ("@c", a.Compression), ("@facts", JsonSerializer.Serialize(a.Facts)), ("@rep", JsonSerializer.Serialize(a.Reported))))
            {
                cmd.ExecuteNonQuery();
            }

            foreach (var c in a.Copies)
            {
                SetCopy(s.Id, a.Name, c);
            }
        }

        foreach (var b in s.Blobs)
        {
            AddSnapshotBlob(s.Id, b.FileName, b.RawBytes);
        }

        if (s.State == SnapshotState.Committed)
        {
            FenceInTransaction(s.Source);
        }

        tx.Commit();
    }

    /// <summary>Records that a snapshot needs a shared blob (at once, while it runs: a prune never removes a blob a running snapshot named).</summary>
    public void AddSnapshotBlob(string snapshotId, string file, long rawBytes)
    {
        using var cmd = Command("INSERT INTO snapshot_blobs(snapshot_id, file_name, raw_bytes) VALUES (@id, @f, @r) ON CONFLICT DO NOTHING",
            ("@id", snapshotId), ("@f", file), ("@r", rawBytes));
        cmd.ExecuteNonQuery();
    }

    /// <summary>
    /// A shared blob's copy on a target: verified (read back), failed, missing or corrupt; <paramref name="sealedTo"/>
    /// names the recipients it was sealed to (empty when not sealed, or not known), so a change of keys seals it again.
    /// </summary>
    public void SetBlobCopy(string source, string file, long rawBytes, long storedBytes, CopyInfo copy, string sealedTo = "")
    {
        ArgumentNullException.ThrowIfNull(copy);
        using var cmd = Command(
            """
            INSERT INTO blob_copies(source, file_name, target, raw_bytes, stored_bytes, sealed_to, state, checked_at, error) VALUES (@s, @f, @t, @r, @sb, @to, @st, @c, @e)
            ON CONFLICT(source, file_name, target) DO UPDATE SET raw_bytes = excluded.raw_bytes, stored_bytes = excluded.stored_bytes,
                sealed_to = excluded.sealed_to, state = excluded.state, checked_at = excluded.checked_at, error = excluded.error
            """,
            ("@s", source), ("@f", file), ("@t", copy.Target), ("@r", rawBytes), ("@sb", storedBytes), ("@to", sealedTo), ("@st", copy.State.ToString().ToLowerInvariant()),
            ("@c", Time(copy.CheckedAt)), ("@e", copy.Error));
        cmd.ExecuteNonQuery();
    }

    /// <summary>What a check found of a blob's copy (its stored size kept): a copy the catalog no longer knows is left unknown.</summary>
    public void UpdateBlobCopy(string source, string file, CopyInfo copy)
    {
        ArgumentNullException.ThrowIfNull(copy);
        using var cmd = Command(
            "UPDATE blob_copies SET state = @st, checked_at = @c, error = @e WHERE source = @s AND file_name = @f AND target = @t",
            ("@s", source), ("@f", file), ("@t", copy.Target), ("@st", copy.State.ToString().ToLowerInvariant()), ("@c", Time(copy.CheckedAt)), ("@e", copy.Error));
        cmd.ExecuteNonQuery();
    }

    /// <summary>Forgets a blob's copy on a target (removed by a prune).</summary>
    public void DeleteBlobCopy(string source, string file, string target)
    {
        using var cmd = Command("DELETE FROM blob_copies WHERE source = @s AND file_name = @f AND target = @t", ("@s", source), ("@f", file), ("@t", target));
        cmd.ExecuteNonQuery();
    }

    /// <summary>Every blob copy the catalog knows of a source: file, target, sizes and state.</summary>
    public IReadOnlyList<(string File, long RawBytes, long StoredBytes, string SealedTo, CopyInfo Copy)> BlobCopies(string source)
    {
        using var cmd = Command(
            "SELECT file_name, target, raw_bytes, stored_bytes, state, checked_at, error, sealed_to FROM blob_copies WHERE source = @s ORDER BY file_name, target",
            ("@s", source));
        using var r = cmd.ExecuteReader();
        var list = new List<(string, long, long, string, CopyInfo)>();
        while (r.Read())
        {
            list.Add((r.GetString(0), r.GetInt64(2), r.GetInt64(3), r.GetString(7),
                new CopyInfo(r.GetString(1), Enum.Parse<CopyState>(r.GetString(4), ignoreCase: true), ParseTime(r.GetString(5)), Str(r, 6))));
        }

        return list;
    }

    public void SetCopy(string snapshotId, string artifact, CopyInfo copy)
    {
        ArgumentNullException.ThrowIfNull(copy);
        using var cmd = Command(
            """
            INSERT INTO copies(snapshot_id, artifact, target, state, checked_at, error) VALUES (@id, @a, @t, @s, @c, @e)
            ON CONFLICT (snapshot_id, artifact, target) DO UPDATE SET state = excluded.state, checked_at = excluded.checked_at, error = excluded.error
            """,
            ("@id", snapshotId), ("@a", artifact), ("@t", copy.Target), ("@s", copy.State.ToString().ToLowerInvariant()),
            ("@c", Time(copy.CheckedAt)), ("@e", copy.Error));
        cmd.ExecuteNonQuery();
    }

    /// <summary>
    /// What a restore or a drill proved of copies (read from a reachable target and found corrupt, or absent), recorded
    /// in one transaction with what records the act itself (<paramref name="record"/>: a drill, an event): status, list,
    /// metrics and the next <c>latest</c> count from the truth at once. A copy pruned on purpose keeps that state.
    /// </summary>
    public void RecordFindings(IEnumerable<(string SnapshotId, string Artifact, CopyInfo Copy)> findings, Action record)
    {
        ArgumentNullException.ThrowIfNull(findings);
        ArgumentNullException.ThrowIfNull(record);
        using var tx = Begin();
        foreach (var (id, artifact, copy) in findings)
        {
            using var cmd = Command(
                "UPDATE copies SET state = @s, checked_at = @c, error = @e WHERE snapshot_id = @id AND artifact = @a AND target = @t AND state <> 'pruned'",
                ("@id", id), ("@a", artifact), ("@t", copy.Target), ("@s", copy.State.ToString().ToLowerInvariant()), ("@c", Time(copy.CheckedAt)), ("@e", copy.Error));
            cmd.ExecuteNonQuery();
        }

        record();
        tx.Commit();
    }

    /// <summary>Copy states found by one verify pass, recorded together.</summary>
    public void SetCopies(IEnumerable<(string SnapshotId, string Artifact, CopyInfo Copy)> copies)
    {
        ArgumentNullException.ThrowIfNull(copies);
        using var tx = Begin();
        foreach (var (id, artifact, copy) in copies)
        {
            SetCopy(id, artifact, copy);
        }

        tx.Commit();
    }

    /// <summary>
    /// Records what one verify pass found, compare-and-set: each copy is updated only while it is still as the verify
    /// read it (state and time of its last check), so a copy pruned meanwhile is never resurrected and a newer check
    /// (a heal, another verify) is never overwritten. Returns the results that were not recorded for that reason.
    /// </summary>
    public IReadOnlyList<(string SnapshotId, string Artifact, string Target)> SetCopiesIfUnchanged(IEnumerable<(string SnapshotId, string Artifact, CopyInfo Copy, CopyInfo? Before)> copies)
    {
        ArgumentNullException.ThrowIfNull(copies);
        using var tx = Begin();
        var skipped = new List<(string, string, string)>();
        foreach (var (id, artifact, copy, before) in copies)
        {
            using var cmd = before is null
                ? Command(
                    "INSERT INTO copies(snapshot_id, artifact, target, state, checked_at, error) VALUES (@id, @a, @t, @s, @c, @e) ON CONFLICT DO NOTHING",
                    ("@id", id), ("@a", artifact), ("@t", copy.Target), ("@s", copy.State.ToString().ToLowerInvariant()), ("@c", Time(copy.CheckedAt)), ("@e", copy.Error))
                : Command(
                    "UPDATE copies SET state = @s, checked_at = @c, error = @e WHERE snapshot_id = @id AND artifact = @a AND target = @t AND state = @ps AND checked_at = @pc",
                    ("@id", id), ("@a", artifact), ("@t", copy.Target), ("@s", copy.State.ToString().ToLowerInvariant()), ("@c", Time(copy.CheckedAt)), ("@e", copy.Error),
                    ("@ps", before.State.ToString().ToLowerInvariant()), ("@pc", Time(before.CheckedAt)));
            if (cmd.ExecuteNonQuery() == 0)
            {
                skipped.Add((id, artifact, copy.Target));
            }
        }

        tx.Commit();
        return skipped;
    }

    /// <summary>Snapshots left 'running' by a process that died: recorded as failed with the reason.</summary>
    public IReadOnlyList<SnapshotInfo> FailInterrupted(DateTimeOffset now, Func<SnapshotInfo, bool>? stillRunning = null)
    {
        var running = Load("s.state = 'running'", true).Where(s => stillRunning?.Invoke(s) != true).ToList();
        foreach (var s in running)
        {
            using var tx = Begin();
            using var cmd = Command(
                "UPDATE snapshots SET state = 'failed', finished_at = @f, error = @e WHERE id = @id AND state = 'running'",
                ("@f", Time(now)), ("@id", s.Id),
                ("@e", $"interrupted: the run on {s.Host} that started it at {Time(s.StartedAt)} ended without finishing (killed or crashed)"));
            if (cmd.ExecuteNonQuery() == 1)
            {
                CountRun(s.Source, "failed");
            }

            tx.Commit();
        }

        return running;
    }

    /// <summary>
    /// Removes failed records that finished before <paramref name="before"/> (their artifacts and copies with them),
    /// never a running or committed one; returns how many per source. The run counter keeps counting them.
    /// </summary>
    public IReadOnlyDictionary<string, int> PruneFailed(DateTimeOffset before)
    {
        using var tx = Begin();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        using (var cmd = Command("SELECT source, count(*) FROM snapshots WHERE state = 'failed' AND finished_at < @t GROUP BY source", ("@t", Time(before))))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                counts[r.GetString(0)] = (int)r.GetInt64(1);
            }
        }

        if (counts.Count > 0)
        {
            using var delete = Command("DELETE FROM snapshots WHERE state = 'failed' AND finished_at < @t", ("@t", Time(before)));
            delete.ExecuteNonQuery();
        }

        tx.Commit();
        return counts;
    }

    /// <summary>Runs finished per source and outcome since the catalog began (pruned snapshots included): a Prometheus counter.</summary>
    public IReadOnlyDictionary<(string Source, string Outcome), long> RunCounts()
    {
        using var cmd = Command("SELECT source, outcome, count FROM run_counts");
        using var r = cmd.ExecuteReader();
        var counts = new Dictionary<(string, string), long>();
        while (r.Read())
        {
            counts[(r.GetString(0), r.GetString(1))] = r.GetInt64(2);
        }

        return counts;
    }

    private void CountRun(string source, string outcome)
    {
        using var cmd = Command("INSERT INTO run_counts(source, outcome, count) VALUES (@s, @o, 1) ON CONFLICT(source, outcome) DO UPDATE SET count = run_counts.count + 1",
            ("@s", source), ("@o", outcome));
        cmd.ExecuteNonQuery();
    }

    public void AddEvent(string level, string? source, string? snapshotId, string message)
    {
        using var cmd = Command("INSERT INTO events(at, level, source, snapshot_id, message) VALUES (@a, @l, @s, @id, @m)",
            ("@a", Time(DateTimeOffset.UtcNow)), ("@l", level), ("@s", source), ("@id", snapshotId), ("@m", message));
        cmd.ExecuteNonQuery();
    }

    public IReadOnlyList<CatalogEvent> Events(int limit = 100)
    {
        using var cmd = Command("SELECT at, level, source, snapshot_id, message FROM events ORDER BY id DESC LIMIT @l", ("@l", (long)limit));
        using var r = cmd.ExecuteReader();
        var list = new List<CatalogEvent>();
        while (r.Read())
        {
            list.Add(new CatalogEvent(ParseTime(r.GetString(0)), r.GetString(1), Str(r, 2), Str(r, 3), r.GetString(4)));
        }

        return list;
    }

    /// <summary>All snapshots (optionally of one source), oldest first, with their artifacts and copies.</summary>
    public IReadOnlyList<SnapshotInfo> Snapshots(string? source = null) => Load("(CAST(@src AS TEXT) IS NULL OR s.source = @src)", true, ("@src", source));

    /// <summary>
    /// The newest <paramref name="limit"/> snapshots of a source (by start), oldest first: what a status needs, without
    /// reading a long history (<c>serve</c> computes every source's state every minute).
    /// </summary>
    /// <param name="facts">False: without facts and reported lists (empty), which a state does not need; a third of the allocations.</param>
    public IReadOnlyList<SnapshotInfo> RecentSnapshots(string source, int limit, bool facts = true) =>
        Load("s.id IN (SELECT id FROM snapshots WHERE source = @src ORDER BY started_at DESC, id DESC LIMIT @lim)", facts, ("@src", source), ("@lim", (long)limit)); // the index's own order

    /// <summary>
    /// The newest <paramref name="limit"/> snapshots of each named source, oldest first: what a fleet's status needs, in
    /// one round trip per table where the engine allows (a thousand sources on a server answer in milliseconds).
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<SnapshotInfo>> RecentSnapshotsOf(IReadOnlyList<string> sources, int limit, bool facts = true)
    {
        ArgumentNullException.ThrowIfNull(sources);
        if (Engine.NewestOfEachSql is not { } filter || sources.Count <= 1)
        {
            return sources.Distinct(StringComparer.Ordinal).ToDictionary(n => n, n => RecentSnapshots(n, limit, facts), StringComparer.Ordinal);
        }

        var loaded = Load(filter, facts, ("@names", sources.Distinct(StringComparer.Ordinal).ToArray()), ("@lim", (long)limit)).ToLookup(s => s.Source, StringComparer.Ordinal);
        return sources.Distinct(StringComparer.Ordinal).ToDictionary(n => n, n => (IReadOnlyList<SnapshotInfo>)loaded[n].ToList(), StringComparer.Ordinal);
    }

    public SnapshotInfo? Snapshot(string id) => Load("s.id = @id", true, ("@id", id)).SingleOrDefault();

    /// <summary>When a snapshot started and finished (null when it is unknown or still running).</summary>
    public (DateTimeOffset Started, DateTimeOffset Finished)? SnapshotTimes(string id)
    {
        using var cmd = Command("SELECT started_at, finished_at FROM snapshots WHERE id = @id AND finished_at IS NOT NULL", ("@id", id));
        using var r = cmd.ExecuteReader();
        return r.Read() ? (ParseTime(r.GetString(0)), ParseTime(r.GetString(1))) : null;
    }

    /// <summary>The snapshots that <paramref name="filter"/> (over <c>snapshots s</c>) selects, with their artifacts and copies.</summary>
    private List<SnapshotInfo> Load(string filter, bool facts, params (string Name, object? Value)[] parameters)
    {
        var loaded = LoadRows(filter, facts, parameters);
        return loaded.Any(s => s.Level > 0) ? WithAncestors(loaded) : loaded;
    }

    /// <summary>
    /// Each chained snapshot with the levels below it (parent first), loaded a generation at a time: whether a level
    /// can restore depends on every level under it.
    /// </summary>
    private List<SnapshotInfo> WithAncestors(List<SnapshotInfo> loaded)
    {
        var known = loaded.ToDictionary(s => s.Id, StringComparer.Ordinal);
        var wanted = loaded.Where(s => s.Parent is not null).Select(s => s.Parent!).Where(p => !known.ContainsKey(p)).ToHashSet(StringComparer.Ordinal);
        for (var round = 0; wanted.Count > 0 && round < 1000; round++)
        {
            var ids = wanted.Select((id, i) => ($"@w{i.ToString(CultureInfo.InvariantCulture)}", (object?)id)).ToArray();
            var more = LoadRows($"s.id IN ({string.Join(", ", ids.Select(p => p.Item1))})", facts: true, ids);
            wanted.Clear();
            foreach (var p in more)
            {
                known.TryAdd(p.Id, p);
            }

            foreach (var p in more.Where(p => p.Parent is not null && !known.ContainsKey(p.Parent)))
            {
                wanted.Add(p.Parent!);
            }
        }

        return loaded.Select(s => s.Level == 0 ? s : s with { Ancestors = Chain(s) }).ToList();

        List<SnapshotInfo> Chain(SnapshotInfo s)
        {
            var chain = new List<SnapshotInfo>();
            for (var p = s.Parent; p is not null && known.TryGetValue(p, out var parent) && chain.Count < s.Level; p = parent.Parent)
            {
                chain.Add(parent);
            }

            return chain;
        }
    }

    private List<SnapshotInfo> LoadRows(string filter, bool facts, params (string Name, object? Value)[] parameters)
    {
        var copies = new Dictionary<(string, string), List<CopyInfo>>();
        using (var cmd = Command(
                   $"SELECT c.snapshot_id, c.artifact, c.target, c.state, c.checked_at, c.error FROM copies c JOIN snapshots s ON s.id = c.snapshot_id WHERE {filter} ORDER BY c.target",
                   parameters))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var key = (r.GetString(0), r.GetString(1));
                if (!copies.TryGetValue(key, out var list))
                {
                    copies[key] = list = [];
                }

                list.Add(new CopyInfo(r.GetString(2), Enum.Parse<CopyState>(r.GetString(3), ignoreCase: true), ParseTime(r.GetString(4)), Str(r, 5)));
            }
        }

        var artifacts = new Dictionary<string, List<ArtifactInfo>>();
        using (var cmd = Command(
                   $"SELECT a.snapshot_id, a.name, a.file_name, a.raw_bytes, a.stored_bytes, a.sha256, a.compression, a.facts, a.reported, a.level FROM artifacts a JOIN snapshots s ON s.id = a.snapshot_id WHERE {filter} ORDER BY a.snapshot_id, a.seq, a.name",
                   parameters))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var id = r.GetString(0);
                if (!artifacts.TryGetValue(id, out var list))
                {
                    artifacts[id] = list = [];
                }

                var name = r.GetString(1);
                list.Add(new ArtifactInfo(name, r.GetString(2), r.GetInt64(3), r.GetInt64(4), r.GetString(5), r.GetString(6),
                    facts ? Facts(r.GetString(7)) : NoFacts, copies.GetValueOrDefault((id, name)) ?? [])
                {
                    Reported = facts ? JsonSerializer.Deserialize<List<string>>(r.GetString(8)) ?? [] : [],
                    Level = (int)r.GetInt64(9),
                });
            }
        }

        var blobs = new Dictionary<string, Dictionary<string, (long Raw, List<CopyInfo> Copies, Dictionary<string, long> Stored, Dictionary<string, string> SealedTo)>>(StringComparer.Ordinal);
        using (var cmd = Command(
                   $"""
                   SELECT b.snapshot_id, b.file_name, b.raw_bytes, c.target, c.stored_bytes, c.state, c.checked_at, c.error, c.sealed_to
                   FROM snapshot_blobs b JOIN snapshots s ON s.id = b.snapshot_id
                   LEFT JOIN blob_copies c ON c.source = s.source AND c.file_name = b.file_name
                   WHERE {filter} ORDER BY b.snapshot_id, b.file_name, c.target
                   """,
                   parameters))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var id = r.GetString(0);
                if (!blobs.TryGetValue(id, out var files))
                {
                    blobs[id] = files = new(StringComparer.Ordinal);
                }

                var file = r.GetString(1);
                if (!files.TryGetValue(file, out var blob))
                {
                    files[file] = blob = (r.GetInt64(2), [], new(StringComparer.Ordinal), new(StringComparer.Ordinal));
                }

                if (!r.IsDBNull(3))
                {
                    blob.Copies.Add(new CopyInfo(r.GetString(3), Enum.Parse<CopyState>(r.GetString(5), ignoreCase: true), ParseTime(r.GetString(6)), Str(r, 7)));
                    blob.Stored[r.GetString(3)] = r.GetInt64(4);
                    blob.SealedTo[r.GetString(3)] = r.GetString(8);
                }
            }
        }

        var result = new List<SnapshotInfo>();
        using (var cmd = Command(
                   $"""
                   SELECT s.id, s.source, src.kind, s.state, s.started_at, s.finished_at, s.host, s.raw_bytes, s.stored_bytes, s.facts, s.warnings, s.error,
                       s.parent, s.level
                   FROM snapshots s JOIN sources src ON src.name = s.source WHERE {filter} ORDER BY s.started_at, s.id
                   """,
                   parameters))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                var id = r.GetString(0);
                result.Add(new SnapshotInfo(
                    id, r.GetString(1), r.GetString(2), Enum.Parse<SnapshotState>(r.GetString(3), ignoreCase: true),
                    ParseTime(r.GetString(4)), r.IsDBNull(5) ? null : ParseTime(r.GetString(5)), r.GetString(6),
                    r.GetInt64(7), r.GetInt64(8), facts ? Facts(r.GetString(9)) : NoFacts,
                    JsonSerializer.Deserialize<List<string>>(r.GetString(10)) ?? [], Str(r, 11),
                    artifacts.GetValueOrDefault(id) ?? [])
                {
                    Parent = Str(r, 12),
                    Level = (int)r.GetInt64(13),
                    Blobs = blobs.TryGetValue(id, out var files)
                        ? files.Select(f => new BlobInfo(f.Key, f.Value.Raw, f.Value.Copies) { StoredBytes = f.Value.Stored, SealedTo = f.Value.SealedTo }).ToList()
                        : [],
                });
            }
        }

        return result;
    }

    public IReadOnlyList<(string Name, string Kind)> Sources()
    {
        using var cmd = Command("SELECT name, kind FROM sources ORDER BY name");
        using var r = cmd.ExecuteReader();
        var list = new List<(string, string)>();
        while (r.Read())
        {
            list.Add((r.GetString(0), r.GetString(1)));
        }

        return list;
    }

    public void Dispose() => _db.Dispose();

    internal static string Time(DateTimeOffset t) => Text.Json.Time(t);

    private static DateTimeOffset ParseTime(string s) =>
        DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    private static string StateName(SnapshotState s) => s.ToString().ToLowerInvariant();

    private static Dictionary<string, long> Facts(string json) =>
        JsonSerializer.Deserialize<Dictionary<string, long>>(json) ?? [];

    private static string? Str(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private DbTransaction Begin()
    {
        RequireOpen();
        return _db.BeginTransaction();
    }

    private void RequireOpen()
    {
        if (_db.State != System.Data.ConnectionState.Open)
        {
            throw new Plugins.BackupException(
                $"the connection to the {Describe} was lost mid-way (its server restarted, or the network dropped it): what this step would have recorded was not; " +
                "nothing unproven is recorded as good, and the next run records a snapshot left running as interrupted");
        }
    }

    private DbCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        RequireOpen();
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = name;
            p.Value = value ?? DBNull.Value;
            cmd.Parameters.Add(p);
        }

        return cmd;
    }
}
