using System.Data.Common;
using System.Globalization;
using Backstop.Core.Config;
using Backstop.Core.FileSystem;
using Microsoft.Data.Sqlite;

namespace Backstop.Core.Catalog;

/// <summary>
/// The embedded catalog: one SQLite file (WAL, foreign keys, synchronous writes), its version in
/// <c>PRAGMA user_version</c>, migrations serialised by <c>BEGIN IMMEDIATE</c>.
/// </summary>
internal sealed class SqliteCatalog(string path) : CatalogEngine
{
    private static readonly string[] History =
    [
        """
        CREATE TABLE sources (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL
        );
        CREATE TABLE snapshots (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL REFERENCES sources(name),
            state TEXT NOT NULL CHECK (state IN ('running', 'committed', 'failed')),
            started_at TEXT NOT NULL,
            finished_at TEXT,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            raw_bytes INTEGER NOT NULL DEFAULT 0,
            stored_bytes INTEGER NOT NULL DEFAULT 0,
            facts TEXT NOT NULL DEFAULT '{}',
            warnings TEXT NOT NULL DEFAULT '[]',
            error TEXT
        );
        CREATE INDEX snapshots_by_source ON snapshots(source, started_at);
        CREATE TABLE artifacts (
            snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            file_name TEXT NOT NULL,
            raw_bytes INTEGER NOT NULL,
            stored_bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            compression TEXT NOT NULL,
            facts TEXT NOT NULL,
            PRIMARY KEY (snapshot_id, name)
        );
        CREATE TABLE copies (
            snapshot_id TEXT NOT NULL,
            artifact TEXT NOT NULL,
            target TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('verified', 'failed', 'missing', 'corrupt')),
            checked_at TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (snapshot_id, artifact, target),
            FOREIGN KEY (snapshot_id, artifact) REFERENCES artifacts(snapshot_id, name) ON DELETE CASCADE
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            level TEXT NOT NULL,
            source TEXT,
            snapshot_id TEXT,
            message TEXT NOT NULL
        );
        """,
        """
        CREATE TABLE copies_v2 (
            snapshot_id TEXT NOT NULL,
            artifact TEXT NOT NULL,
            target TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('verified', 'failed', 'missing', 'corrupt', 'pruned')),
            checked_at TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (snapshot_id, artifact, target),
            FOREIGN KEY (snapshot_id, artifact) REFERENCES artifacts(snapshot_id, name) ON DELETE CASCADE
        );
        INSERT INTO copies_v2 SELECT * FROM copies;
        DROP TABLE copies;
        ALTER TABLE copies_v2 RENAME TO copies;
        """,
        """
        ALTER TABLE artifacts ADD COLUMN reported TEXT NOT NULL DEFAULT '[]';
        """,
        """
        CREATE TABLE drills (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            snapshot_id TEXT NOT NULL,
            at TEXT NOT NULL,
            passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
            seconds REAL NOT NULL,
            setup_seconds REAL NOT NULL,
            rto_seconds INTEGER,
            rto_met INTEGER CHECK (rto_met IN (0, 1)),
            error TEXT,
            evidence TEXT,
            detail TEXT NOT NULL
        );
        CREATE INDEX drills_by_source ON drills(source, id);
        """,
        """
        CREATE TABLE notify_state (
            notifier TEXT NOT NULL,
            subject TEXT NOT NULL,
            state TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (notifier, subject)
        );
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            notifier TEXT NOT NULL,
            event TEXT NOT NULL,
            subject TEXT,
            delivered INTEGER NOT NULL CHECK (delivered IN (0, 1)),
            attempts INTEGER NOT NULL,
            error TEXT
        );
        CREATE INDEX notifications_by_notifier ON notifications(notifier, id);
        """,
        """
        CREATE TABLE run_counts (
            source TEXT NOT NULL,
            outcome TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (source, outcome)
        );
        INSERT INTO run_counts(source, outcome, count)
            SELECT source, CASE state WHEN 'committed' THEN 'valid' ELSE 'failed' END, count(*) FROM snapshots WHERE state <> 'running' GROUP BY 1, 2;
        CREATE INDEX snapshots_running ON snapshots(state) WHERE state = 'running';
        """,
        """
        ALTER TABLE drills ADD COLUMN target TEXT;
        UPDATE drills SET target = json_extract(detail, '$.copies[0].target') WHERE json_valid(detail);
        """,
        """
        ALTER TABLE snapshots ADD COLUMN parent TEXT;
        ALTER TABLE snapshots ADD COLUMN level INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE artifacts ADD COLUMN level INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX snapshots_by_parent ON snapshots(parent) WHERE parent IS NOT NULL;
        """,
        """
        CREATE TABLE blob_copies (
            source TEXT NOT NULL,
            file_name TEXT NOT NULL,
            target TEXT NOT NULL,
            raw_bytes INTEGER NOT NULL,
            stored_bytes INTEGER NOT NULL,
            sealed_to TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL CHECK (state IN ('verified', 'failed', 'missing', 'corrupt', 'pruned')),
            checked_at TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (source, file_name, target)
        );
        CREATE TABLE snapshot_blobs (
            snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
            file_name TEXT NOT NULL,
            raw_bytes INTEGER NOT NULL,
            PRIMARY KEY (snapshot_id, file_name)
        );
        """,
        """
        CREATE TABLE rehearsals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            scenario TEXT NOT NULL,
            at TEXT NOT NULL,
            passed INTEGER NOT NULL CHECK (passed IN (0, 1)),
            seconds REAL NOT NULL,
            rto_seconds INTEGER NOT NULL,
            rto_met INTEGER NOT NULL CHECK (rto_met IN (0, 1)),
            error TEXT,
            runbook TEXT,
            detail TEXT NOT NULL
        );
        CREATE INDEX rehearsals_by_scenario ON rehearsals(scenario, id);
        """,
        """
        CREATE TABLE archive (
            source TEXT NOT NULL,
            name TEXT NOT NULL,
            folder TEXT NOT NULL,
            start_pos INTEGER NOT NULL,
            end_pos INTEGER NOT NULL,
            raw_bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            stored_file TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (source, name)
        );
        CREATE TABLE archive_copies (
            source TEXT NOT NULL,
            name TEXT NOT NULL,
            target TEXT NOT NULL,
            stored_bytes INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('verified', 'failed', 'missing', 'corrupt', 'pruned')),
            checked_at TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (source, name, target),
            FOREIGN KEY (source, name) REFERENCES archive(source, name) ON DELETE CASCADE
        );
        """,
        """
        CREATE TABLE markers (
            source TEXT NOT NULL,
            seq INTEGER NOT NULL,
            position INTEGER NOT NULL,
            label TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (source, seq)
        );
        -- A partial segment ends at a promotion: it places nothing in the chain (recorded with a whole segment's range before).
        UPDATE archive SET start_pos = 0, end_pos = 0 WHERE name LIKE '%.partial';
        -- The content of a small file that places nothing (a timeline history): the archive's lineage.
        ALTER TABLE archive ADD COLUMN detail TEXT;
        """,
        """
        -- Artifacts keep their order by a column both engines have (was the rowid).
        ALTER TABLE artifacts ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        UPDATE artifacts SET seq = rowid;
        -- The machine that defines a source (a fleet's names are unique across machines).
        ALTER TABLE sources ADD COLUMN machine TEXT;
        -- Each agent's last report, so a silent machine is named.
        CREATE TABLE machines (
            name TEXT PRIMARY KEY,
            seen_at TEXT NOT NULL,
            pid INTEGER NOT NULL,
            version TEXT NOT NULL,
            every_seconds INTEGER
        );
        -- The newest snapshots of a source in one index walk, ties broken by id.
        CREATE INDEX snapshots_by_source_id ON snapshots(source, started_at, id);
        DROP INDEX snapshots_by_source;
        """,
    ];

    private static readonly IReadOnlyList<(int, string)> AllSteps = History.Select((sql, i) => (i + 1, sql)).ToList();

    public string Path { get; } = path;

    public override string Describe => $"catalog {Path}";

    public override IReadOnlyList<(int Version, string Sql)> Steps => AllSteps;

    public override DbConnection Connect()
    {
        SQLitePCL.Batteries_V2.Init();
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path, Pooling = false }.ToString());
        try
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL;";
            cmd.ExecuteNonQuery();
            return db;
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    public override int ReadVersion(DbConnection db, DbTransaction? tx)
    {
        ArgumentNullException.ThrowIfNull(db);
        using var cmd = db.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "PRAGMA user_version";
        return Convert.ToInt32(cmd.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    // IMMEDIATE: the write lock at once, so two processes cannot both read the old version.
    public override DbTransaction BeginMigration(DbConnection db) => ((SqliteConnection)db).BeginTransaction(deferred: false);

    public override string WriteVersion(int version) => $"PRAGMA user_version = {version.ToString(CultureInfo.InvariantCulture)};";

    public override string Explain(DbException e)
    {
        // A full disk makes SQLite fail to open (it cannot grow the WAL index): that is no damage, and a rebuild is not the fix.
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path)) ?? ".";
        long? free;
        try
        {
            free = DiskSpace.FreeBytes(folder);
        }
        catch (Exception f) when (f is IOException or UnauthorizedAccessException)
        {
            free = null;
        }

        return e is SqliteException { SqliteErrorCode: 13 } || free < 1 << 20
            ? $"{Describe} cannot be opened: the disk holding it is full ({Quantities.FormatSize(Math.Max(0, free ?? 0))} free at {folder}; {e?.Message}); free space there and run again " +
              "(a full disk damages nothing; if it is still refused with room to spare, 'backstop catalog rebuild --force' recreates it from the manifests on the targets)"
            : $"{Describe} cannot be opened: {e?.Message}; if it is damaged, 'backstop catalog rebuild --force' recreates it from the manifests on the targets (the damaged file is kept)";
    }
}
