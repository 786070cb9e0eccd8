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

    public override string ToString() => Time is { } t ? Text.Json.Time(t) : Position ?? "the end of the archive";
}

/// <summary>
/// How a restored folder replays its archive: the archive's files go into <see cref="ArchiveFolder"/> (relative to the
/// destination), <see cref="EmptyFiles"/> are created, <see cref="ConfigText"/> is appended to <see cref="ConfigFile"/>,
/// the folder is given to <see cref="Owner"/> (the server's OS user; null: whoever restores), and <see cref="Start"/>
/// (DEST standing for the folder) starts it.
/// </summary>
public sealed record RecoverySetup(string ArchiveFolder, IReadOnlyList<string> EmptyFiles, string ConfigFile, string ConfigText, string? Owner, string Start)
{
    /// <summary>Files written only where the restored folder has none (a server that kept its configuration elsewhere), with their content.</summary>
    public IReadOnlyDictionary<string, string> IfMissing { get; init; } = new Dictionary<string, string>();
}

/// <summary>A file of the archive as a restore sees it: what it covers and when it was archived.</summary>
public sealed record ArchiveFile(string Folder, string Name, long Start, long End, DateTimeOffset At)
{
    /// <summary>The content of a small file that places nothing (a timeline history), kept in the catalog; else null.</summary>
    public string? Detail { get; init; }
}

/// <summary>One stretch of the archive's lineage: a folder (timeline) followed up to <see cref="Until"/> (exclusive), where the next one branches off.</summary>
public sealed record ArchiveStretch(string Folder, long Until);

/// <summary>
/// The chain of a continuous archive from a position: within a folder (a timeline) each file begins where the one
/// before it ended; where a later folder begins (a timeline switch, its first file holding the switch point) the chain
/// leaves the earlier folder and goes on in it, so that what the old timeline holds past the switch is never followed.
/// </summary>
public static class ArchiveChain
{
    /// <summary>
    /// The files from <paramref name="start"/> on <paramref name="folder"/>, contiguous, and the first file past a gap
    /// (null when the chain simply ends). With a <paramref name="lineage"/> (the newest timeline's history), the chain
    /// follows it: each folder up to where the next branches off, whatever other folders hold; a base on no stretch of
    /// it reaches nothing. Without one, each later folder is taken where its first file begins.
    /// </summary>
    public static (IReadOnlyList<T> Files, T? GapBefore) Follow<T>(IEnumerable<T> files, Func<T, (string Folder, long Start, long End)> place, string folder, long start,
        IReadOnlyList<ArchiveStretch>? lineage = null)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(place);
        // A base on a timeline newer than the newest history the archive holds (its history never archived: a copy
        // promoted with archiving off, then made the primary) has no ancestors to follow: its own line, as PostgreSQL reads it.
        if (lineage is { Count: > 0 } && lineage.Any(l => l.Folder == folder))
        {
            return Along(files.Where(f => place(f).End > 0).ToList(), place, folder, start, lineage);
        }

        var folders = files.Where(f => place(f).End > 0 && string.CompareOrdinal(place(f).Folder, folder) >= 0)
            .GroupBy(f => place(f).Folder, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => g.OrderBy(f => place(f).Start).ToList()).ToList();
        var chain = new List<T>();
        if (folders.Count == 0 || place(folders[0][0]).Folder != folder)
        {
            return (chain, null);
        }

        var position = start;
        for (var i = 0; i < folders.Count; i++)
        {
            var switchAt = i + 1 < folders.Count ? place(folders[i + 1][0]).Start : long.MaxValue;
            foreach (var f in folders[i].Where(f => place(f).End > position && place(f).Start < switchAt))
            {
                if (place(f).Start > position)
                {
                    return (chain, f);
                }

                chain.Add(f);
                position = place(f).End;
            }

            if (i + 1 < folders.Count && position < switchAt)
            {
                // The next timeline begins past where this one's files end: the WAL between them was never archived.
                return (chain, folders[i + 1][0]);
            }
        }

        return (chain, null);
    }

    private static (IReadOnlyList<T> Files, T? GapBefore) Along<T>(List<T> files, Func<T, (string Folder, long Start, long End)> place, string folder, long start,
        IReadOnlyList<ArchiveStretch> lineage)
        where T : class
    {
        var chain = new List<T>();
        var first = -1;
        for (var i = 0; i < lineage.Count && first < 0; i++)
        {
            first = lineage[i].Folder == folder && start < lineage[i].Until ? i : -1;
        }

        if (first < 0)
        {
            return (chain, null);
        }

        var position = start;
        for (var i = first; i < lineage.Count; i++)
        {
            var stretch = lineage[i];
            // The segment that holds a switch is the next timeline's: this one gives the files that end by it.
            var here = files.Where(f => place(f).Folder == stretch.Folder && place(f).End > position && (i == lineage.Count - 1 || place(f).End <= stretch.Until))
                .OrderBy(f => place(f).Start).ToList();
            foreach (var f in here)
            {
                if (place(f).Start > position)
                {
                    return (chain, f);
                }

                chain.Add(f);
                position = place(f).End;
            }

            if (i + 1 < lineage.Count && files.Where(f => place(f).Folder == lineage[i + 1].Folder && place(f).End > position).MinBy(f => place(f).Start) is { } next
                && place(next).Start > position)
            {
                return (chain, next); // the WAL between this timeline's last file and the next one's first was never archived
            }
        }

        return (chain, null);
    }
}

/// <summary>The archive of the snapshot's source, read from verified copies, each checked against the SHA-256 recorded when it was pushed.</summary>
public interface IArchiveReader
{
    IReadOnlyList<ArchiveFile> Files { get; }

    /// <summary>The source's recovery markers (commits at known positions and times), oldest first; empty when it writes none.</summary>
    IReadOnlyList<RecoveryMarker> Markers { get; }

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

    /// <summary>What the restored folder needs besides the archive's files to replay them to the point (written by <see cref="FinishAsync"/>, and by hand from <c>restore --explain</c>).</summary>
    RecoverySetup Recovery(Catalog.SnapshotInfo basis, RestorePoint point);

    /// <summary>
    /// <c>restore --start</c>: starts the restored folder's server on a free loopback port (as its owner) and waits until
    /// it has replayed to the point and promoted; returns where it runs and how to stop it. It keeps running.
    /// </summary>
    Task<string> StartAsync(string destination, CancellationToken cancellationToken);

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

/// <summary>
/// A source whose archive <c>serve</c> can receive itself where the server cannot push it (<c>wal: {receive: true}</c>;
/// PostgreSQL: <c>pg_receivewal</c> on a replication slot): files appear in a spool folder, complete ones under their
/// own names, and serve pushes each through the same path as <c>wal-push</c>, deleting it once stored.
/// </summary>
public interface IArchiveReceiver
{
    /// <summary>Receives into <paramref name="spool"/> until cancelled, or until the stream ends or fails (throws naming why).</summary>
    Task ReceiveAsync(string spool, CancellationToken cancellationToken);

    /// <summary>Whether a file of the spool is complete, ready to push (one still being written has another name).</summary>
    bool IsComplete(string fileName);
}
