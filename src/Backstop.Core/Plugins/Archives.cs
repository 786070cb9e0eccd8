namespace Backstop.Core.Plugins;

/// <summary>One file of a continuous archive (a WAL segment, a timeline history): where it goes and what it covers.</summary>
/// <param name="Folder">Its folder under the source's archive (a timeline, as 8 hex digits).</param>
/// <param name="Start">The position it begins at (an LSN), or 0 where that means nothing (a history file).</param>
/// <param name="End">The position it ends at (exclusive), or 0.</param>
public sealed record ArchiveItem(string Folder, string Name, long Start, long End);

/// <summary>
/// Where a snapshot of an archiving source sits in its archive: the folder (timeline) it was taken on, the position the
/// archive must be replayed from, and the position at which it becomes consistent.
/// </summary>
public sealed record ArchiveRange(string Folder, long Start, long End);

/// <summary>
/// A source that also archives continuously between its snapshots (PostgreSQL's WAL, pushed by <c>archive_command</c>):
/// each file is named by the server, shipped through the same pipeline as an artifact, read back, and recorded with
/// the range it covers, so that the source restores to any point its archive reaches.
/// </summary>
public interface IContinuousArchive
{
    /// <summary>What a file handed to <c>wal-push</c> is, from its name and size; throws <see cref="BackupException"/> for one that is not an archive file.</summary>
    ArchiveItem Identify(string fileName, long size);
}

/// <summary>Where a point-in-time restore stops: a time, a position (a kind's own notation: an LSN), or neither (the end of the archive).</summary>
public sealed record RestorePoint(DateTimeOffset? Time, string? Position)
{
    public static RestorePoint End { get; } = new(null, null);

    public override string ToString() => Time is { } t ? Util.Json.Time(t) : Position ?? "the end of the archive";
}

/// <summary>A file of the archive as a restore sees it: what it covers and when it was archived.</summary>
public sealed record ArchiveFile(string Folder, string Name, long Start, long End, DateTimeOffset At);

/// <summary>The archive of the snapshot's source, read from verified copies, each checked against the SHA-256 recorded when it was pushed.</summary>
public interface IArchiveReader
{
    IReadOnlyList<ArchiveFile> Files { get; }

    /// <summary>Writes a file's content (decrypted, decompressed, its hash checked) to <paramref name="path"/>, trying each target that holds it.</summary>
    Task FetchAsync(string name, string path, CancellationToken cancellationToken);
}

/// <summary>
/// A kind whose snapshots restore to a point of their continuous archive (PostgreSQL base backups and WAL): the restore
/// picks the newest snapshot that <see cref="Covers"/> the point, restores its artifact, then hands over the archive.
/// </summary>
public interface IPointInTimeRestorable
{
    /// <summary>Whether this source's snapshots restore only with their archive (a base backup); false: they restore alone.</summary>
    bool RestoresToPoints { get; }

    /// <summary>Whether a restore to the point can start from this snapshot (it ends before the point).</summary>
    bool Covers(Catalog.SnapshotInfo snapshot, RestorePoint point);

    /// <summary>The archive files a restore to the point needs, before anything is written; throws naming why the point is out of reach.</summary>
    IReadOnlyList<ArchiveFile> Needs(Catalog.SnapshotInfo basis, RestorePoint point, IArchiveReader archive);

    /// <summary>Puts what the archive adds into the restored folder: the files up to the point, and what makes the server replay them to it.</summary>
    Task<IReadOnlyList<string>> FinishAsync(string destination, Catalog.SnapshotInfo basis, RestorePoint point, IArchiveReader archive, CancellationToken cancellationToken);
}

/// <summary>
/// A row a source wrote into itself at a known position of its archive (PostgreSQL: <c>backstop_pitr_marker</c>, and the
/// LSN right after its commit): a drill recovers to <see cref="Position"/> and finds exactly the markers up to
/// <see cref="Seq"/>. <see cref="Label"/> is the position in the kind's notation (an LSN).
/// </summary>
public sealed record RecoveryMarker(long Seq, long Position, string Label, DateTimeOffset At);

/// <summary>A source that writes recovery markers (<c>serve</c> does, every <see cref="MarkerEvery"/>), for drills to a random moment.</summary>
public interface IRecoveryMarked
{
    /// <summary>How often serve writes one; null when the source is not configured to (no marker database).</summary>
    TimeSpan? MarkerEvery { get; }

    /// <summary>Writes the next marker and returns it, its position read right after its commit.</summary>
    Task<RecoveryMarker> WriteMarkerAsync(CancellationToken cancellationToken);
}
