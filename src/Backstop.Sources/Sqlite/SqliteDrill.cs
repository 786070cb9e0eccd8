using Backstop.Core.Plugins;
using Backstop.Sources.Scratch;
using Microsoft.Data.Sqlite;

namespace Backstop.Sources.Sqlite;

/// <summary>
/// An SQLite drill: the database file is restored into a scratch folder (the restore counts its tables and rows,
/// compared with the snapshot's), then opened again on its own and put through <c>PRAGMA integrity_check</c>.
/// </summary>
internal sealed class SqliteDrill : IDrillable
{
    public Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var folder = FolderScratch.Create(scope, "sqlite");
        return Task.FromResult<IDrillScratch>(new FolderScratch($"the scratch folder {folder}", folder, ct =>
        {
            var checks = new List<DrillCheck>();
            foreach (var artifact in scope.Artifacts)
            {
                ct.ThrowIfCancellationRequested();
                var path = Core.Text.SafeNames.Inside(folder, artifact.Name);
                try
                {
                    using var db = SqliteSource.Open(path, SqliteOpenMode.ReadOnly);
                    var result = string.Join("; ", SqliteSource.Query(db, "PRAGMA integrity_check").Select(r => r[0]?.ToString()));
                    checks.Add(new DrillCheck($"{artifact.Name}: PRAGMA integrity_check", "ok", result, result == "ok"));
                }
                finally
                {
                    SqliteConnection.ClearAllPools();
                }
            }

            return Task.FromResult<IReadOnlyList<DrillCheck>>(checks);
        }, new Dictionary<string, string> { ["sqlite"] = "built in " + SqliteSource.SqliteVersion() }));
    }
}

/// <summary>Where an SQLite source's data lives, for <c>doctor</c>'s single-point-of-failure check.</summary>
internal sealed class SqliteHealth(SqliteOptions options) : IHealthChecked
{
    public SourcePlace Place => new(null, [options.Path]);
}
