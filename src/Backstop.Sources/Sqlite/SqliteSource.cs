using System.Buffers.Binary;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Microsoft.Data.Sqlite;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Sqlite;

public sealed record SqliteOptions(string Path);

/// <summary>
/// A SQLite database, copied consistently with SQLite's online backup API into staging, checked with
/// <c>PRAGMA integrity_check</c>, counted (tables, rows), then shipped as the plain database file.
/// </summary>
public sealed class SqliteSourceKind : SourceKind<SqliteOptions>
{
    public override string Kind => "sqlite";

    public override string Summary => "An SQLite database, through the online backup API.";

    public override string RestoreTo => "a file";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("path", "/srv/app/app.db", "The database file") { Default = "required" },
    ];

    public override IReadOnlyList<string> Facts { get; } = ["tables", "rows"];

    public override IReadOnlyList<string> CountFacts { get; } = ["tables", "rows"];

    public override SqliteOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new SqliteOptions(map.PathValue("path") ?? throw new ConfigException(map.Location, $"{map.Path}: the key 'path' (the database file) is required"));
    }

    public override ISource Create(SourceDefinition definition, SqliteOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new SqliteSource(definition.Name, options, new SqliteDrill(), new SqliteHealth(options), definition.StateDirectory);
    }
}

internal sealed class SqliteSource(string name, SqliteOptions options, SqliteDrill drill, SqliteHealth health, string stateDirectory = "") : ISource, IStagedRestorable
{
    public T? Capability<T>() where T : class => drill as T ?? health as T ?? this as T;

    /// <summary>The run's staging folder while capturing (the format check spools there); null otherwise.</summary>
    private string? _staging;

    /// <summary>Writes the database file, then checks it as the backup was checked: integrity, tables and rows.</summary>
    public async Task<StagedRestore> StageAsync(string artifactName, Stream content, string destination, bool force, CancellationToken cancellationToken)
    {
        var path = RestoreDestination.File(destination, artifactName, force);
        var aside = await Staging.WriteAsideAsync(path, content, cancellationToken).ConfigureAwait(false);
        try
        {
            using var db = Open(aside.Temp, SqliteOpenMode.ReadOnly);
            if (Query(db, "PRAGMA integrity_check").Select(r => r[0]?.ToString()).ToList() is not ["ok"])
            {
                throw new BackupException($"the restored database {path} fails PRAGMA integrity_check");
            }

            return aside.Staged(Count(db, cancellationToken));
        }
        catch
        {
            aside.Remove();
            throw;
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            File.Delete(aside.Temp + "-wal"); // opening a WAL-mode database, even read-only, makes these beside it
            File.Delete(aside.Temp + "-shm");
        }
    }

    private string ArtifactName => Path.GetFileName(options.Path);

    public Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        var file = new FileInfo(options.Path);
        if (!file.Exists)
        {
            throw new BackupException($"source '{name}': the database {options.Path} does not exist; fix 'path'");
        }

        try
        {
            using var probe = file.OpenRead();
            Span<byte> header = stackalloc byte[16];
            if (probe.ReadAtLeast(header, 16, throwOnEndOfStream: false) < 16 || !header.SequenceEqual("SQLite format 3\0"u8))
            {
                throw new BackupException($"source '{name}': {options.Path} is not a SQLite 3 database");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BackupException($"source '{name}': cannot read {options.Path} ({e.Message}); fix its permissions");
        }

        var wal = new FileInfo(options.Path + "-wal");
        var need = 2 * (file.Length + (wal.Exists ? wal.Length : 0)); // the copy, and the format check's own
        return Task.FromResult(new SourcePreflight(new Dictionary<string, string> { ["sqlite"] = "SQLite " + SqliteVersion() }, need));
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var copy = Path.Combine(sink.StagingDirectory, ArtifactName);
        _staging = sink.StagingDirectory;
        Dictionary<string, long> facts;
        try
        {
            // The copy holds the whole database: created 0600 first, whatever the umask (SQLite would take 0644 less it).
            new FileStream(copy, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }).Dispose();
            using (var src = Open(options.Path, SqliteOpenMode.ReadOnly))
            using (var dst = Open(copy, SqliteOpenMode.ReadWriteCreate))
            {
                src.BackupDatabase(dst);
            }

            using var db = Open(copy, SqliteOpenMode.ReadOnly);
            var check = Query(db, "PRAGMA integrity_check").Select(r => r[0]?.ToString()).ToList();
            if (check is not ["ok"])
            {
                throw new BackupException($"source '{name}': PRAGMA integrity_check failed on the copy: {string.Join("; ", check.Take(5))}");
            }

            facts = Count(db, cancellationToken);
        }
        catch (SqliteException e) when (e.SqliteErrorCode == 13)
        {
            throw new BackupException(
                $"source '{name}': staging {sink.StagingDirectory} is full (SQLite: {e.Message}); {Quantities.FormatSize(DiskSpace.FreeBytes(sink.StagingDirectory))} free there, the database needs {Quantities.FormatSize(new FileInfo(options.Path).Length)}; free space or set 'staging' elsewhere");
        }
        catch (SqliteException e)
        {
            throw new BackupException($"source '{name}': SQLite error while copying {options.Path}: {e.Message}");
        }
        finally
        {
            SqliteConnection.ClearAllPools();
        }

        await using var artifact = await sink.BeginArtifactAsync(ArtifactName, cancellationToken).ConfigureAwait(false);
        await using (var file = new FileStream(copy, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
        {
            await file.CopyToAsync(artifact.Content, 1 << 17, cancellationToken).ConfigureAwait(false);
        }

        await artifact.CompleteAsync(facts, cancellationToken).ConfigureAwait(false);
        File.Delete(copy);
    }

    /// <summary>Tables and rows, counted the same way at capture, in the format check and after a restore.</summary>
    private static Dictionary<string, long> Count(SqliteConnection db, CancellationToken ct)
    {
        var names = Query(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").Select(r => (string)r[0]!).ToList();
        long rows = 0;
        foreach (var t in names)
        {
            ct.ThrowIfCancellationRequested();
            rows += Convert.ToInt64(Query(db, $"SELECT COUNT(*) FROM \"{t.Replace("\"", "\"\"", StringComparison.Ordinal)}\"")[0][0],
                System.Globalization.CultureInfo.InvariantCulture);
        }

        return new Dictionary<string, long> { ["tables"] = names.Count, ["rows"] = rows };
    }

    /// <summary>
    /// The format check re-derives tables and rows from the stored bytes: spooled (0600) into the run's staging, or the
    /// source's private folder for verify --deep, opened, integrity-checked and counted, then removed.
    /// </summary>
    public IArtifactValidator? ValidatorFor(string artifactName) =>
        _staging is not null ? new DatabaseValidator(_staging, isPrivate: false)
        : stateDirectory.Length > 0 ? new DatabaseValidator(stateDirectory, isPrivate: true)
        : throw new InvalidOperationException("an SQLite source needs its state folder (set by the configuration loader)");

    public string RestoreRecipe(string artifactName, string storedFile) => $"zstd -d < {storedFile} > DEST/{Core.Text.ShellWord.QuoteIfNeeded(artifactName)}";

    internal static SqliteConnection Open(string path, SqliteOpenMode mode)
    {
        SQLitePCL.Batteries_V2.Init();
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = mode, Pooling = false }.ToString());
        c.Open();
        return c;
    }

    internal static List<object?[]> Query(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        using var r = cmd.ExecuteReader();
        var list = new List<object?[]>();
        while (r.Read())
        {
            var row = new object?[r.FieldCount];
            r.GetValues(row!);
            list.Add(row);
        }

        return list;
    }

    internal static string SqliteVersion()
    {
        using var db = Open(":memory:", SqliteOpenMode.Memory);
        return (string)Query(db, "SELECT sqlite_version()")[0][0]!;
    }

    /// <summary>
    /// The stored file is a whole SQLite database: its header, a length of page size × page count, PRAGMA
    /// integrity_check, and the tables and rows it holds (re-derived from the bytes, compared with the source's).
    /// </summary>
    private sealed class DatabaseValidator(string folder, bool isPrivate) : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            long pageSize = 0, pages = 0, length = 0;
            return await CheckSpool.RunAsync(folder, isPrivate, ".db", async spool =>
            {
                var header = new byte[100];
                var n = await content.ReadAtLeastAsync(header, 100, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (n < 100 || !header.AsSpan(0, 16).SequenceEqual("SQLite format 3\0"u8))
                {
                    throw new BackupException("the file does not start with a SQLite 3 header");
                }

                pageSize = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(16));
                if (pageSize == 1)
                {
                    pageSize = 65536;
                }

                pages = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(28));
                await spool.WriteAsync(header.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                length = n;
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    await spool.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    length += read;
                }
            }, path =>
            {
                if (pages > 0 && length != pageSize * pages)
                {
                    throw new BackupException($"the database has {length} bytes, its header says {pages} pages of {pageSize}");
                }

                try
                {
                    using var db = Open(path, SqliteOpenMode.ReadOnly);
                    if (Query(db, "PRAGMA integrity_check").Select(r => r[0]?.ToString()).ToList() is not ["ok"])
                    {
                        throw new BackupException("the stored database fails PRAGMA integrity_check");
                    }

                    return Task.FromResult<IReadOnlyDictionary<string, long>>(Count(db, cancellationToken));
                }
                catch (SqliteException e)
                {
                    throw new BackupException($"the stored database cannot be read by SQLite: {e.Message}");
                }
                finally
                {
                    SqliteConnection.ClearAllPools();
                }
            }).ConfigureAwait(false);
        }
    }
}
