using System.Data.Common;

namespace Backstop.Core.Catalog;

/// <summary>
/// What differs between the engines that keep a catalog (SQLite embedded, PostgreSQL shared): how a connection opens,
/// the schema's steps, where its version lives and how two processes are kept from migrating at once. Everything else
/// (every query of <see cref="CatalogStore"/>) is one SQL text both engines accept: <c>@name</c> parameters,
/// <c>ON CONFLICT</c> upserts with the table named, no rowid, no JSON functions, integers read as 64-bit.
/// </summary>
internal abstract class CatalogEngine
{
    /// <summary>The catalog as a person names it in a message: its file, or its URL without a password.</summary>
    public abstract string Describe { get; }

    /// <summary>An open connection, set up for the catalog (the caller owns it).</summary>
    public abstract DbConnection Connect();

    /// <summary>The schema's steps in order, each bringing it to <c>Version</c> from the step before.</summary>
    public abstract IReadOnlyList<(int Version, string Sql)> Steps { get; }

    /// <summary>The schema version of a connected catalog (0 when empty), read without locking.</summary>
    public abstract int ReadVersion(DbConnection db, DbTransaction? tx);

    /// <summary>A transaction that no other process migrating this catalog can hold at the same time.</summary>
    public abstract DbTransaction BeginMigration(DbConnection db);

    /// <summary>The SQL that records a version inside the migration's transaction.</summary>
    public abstract string WriteVersion(int version);

    /// <summary>Why a connection failed, with what to do about it (never a password).</summary>
    public abstract string Explain(DbException e);

    /// <summary>After rows were copied in with their ids: what the engine needs so new rows get new ids.</summary>
    public virtual void AfterCopy(DbConnection db, DbTransaction tx, IEnumerable<string> tables)
    {
    }

    /// <summary>
    /// A filter over <c>snapshots s</c> that keeps the newest <c>@lim</c> snapshots of each source in <c>@names</c> (an
    /// array) in one statement, where the engine can (a lateral join: one index walk per source); null where it cannot,
    /// and a query per source costs nothing (an embedded file).
    /// </summary>
    public virtual string? NewestOfEachSql => null;

    /// <summary>The newest version this build knows.</summary>
    public int Latest => Steps[^1].Version;

    /// <summary>
    /// Brings the schema to <see cref="Latest"/>, once across processes: each step runs in a transaction that holds the
    /// engine's migration lock and reads the version again, so two agents opening a new catalog migrate it once. A
    /// catalog newer than this build is refused (a build that does not know its tables would write wrong rows).
    /// </summary>
    public void Migrate(DbConnection db)
    {
        ArgumentNullException.ThrowIfNull(db);
        if (ReadVersion(db, null) == Latest)
        {
            return;
        }

        while (true)
        {
            using var tx = BeginMigration(db);
            var version = ReadVersion(db, tx);
            if (version > Latest)
            {
                throw new Plugins.BackupException(
                    $"{Describe} has schema version {version}, newer than this backstop knows ({Latest}): another agent upgraded it; upgrade backstop here to a version that knows schema {version} before it writes to this catalog");
            }

            if (version == Latest)
            {
                return;
            }

            var (next, sql) = Steps.First(s => s.Version > version);
            using (var cmd = db.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = sql + "\n" + WriteVersion(next);
                cmd.ExecuteNonQuery();
            }

            tx.Commit();
        }
    }
}
