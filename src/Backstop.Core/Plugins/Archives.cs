namespace Backstop.Core.Plugins;

/// <summary>One file of a continuous archive (a WAL segment, a timeline history): where it goes and what it covers.</summary>
/// <param name="Folder">Its folder under the source's archive (a timeline, as 8 hex digits).</param>
/// <param name="Start">The position it begins at (an LSN), or 0 where that means nothing (a history file).</param>
/// <param name="End">The position it ends at (exclusive), or 0.</param>
public sealed record ArchiveItem(string Folder, string Name, long Start, long End);

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
