using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Core.Catalog;

/// <summary>
/// The recovery window of a source that keeps a continuous archive (PostgreSQL's WAL), as <c>status</c> shows it: a
/// restore reaches any point from <see cref="From"/> (the oldest base snapshot that becomes consistent) to
/// <see cref="To"/> (the newest archived file reached from a base without a gap, verified on a configured target).
/// <see cref="RpoSeconds"/> is the current RPO: what a person would lose if the source died now, at least.
/// <see cref="Failing"/> says why the present cannot be reached (a gap before the newest archived file, a base that
/// never becomes consistent, an RPO over <c>wal.max_rpo</c>); <see cref="Degraded"/> what is weaker than it should be
/// (a gap inside the window, a target without a verified copy of some of its files).
/// </summary>
public sealed record ArchiveWindow(
    DateTimeOffset? From,
    DateTimeOffset? To,
    string? FromSnapshot,
    string? NewestFile,
    long? RpoSeconds,
    long MaxRpoSeconds,
    int Files,
    IReadOnlyList<string> Failing,
    IReadOnlyList<string> Degraded)
{
    public bool RpoMet => RpoSeconds is { } rpo && rpo <= MaxRpoSeconds;

    /// <summary>
    /// Walks the archive from each restorable base snapshot (oldest first): within a folder (a timeline) each file must
    /// begin where the one before it ended; a later folder continues the chain where its first file begins at or
    /// before the chain's position (a timeline switch). Only files verified on a configured target count.
    /// </summary>
    public static ArchiveWindow Compute(SourceDefinition def, IReadOnlyList<SnapshotInfo> snapshots, IReadOnlyList<ArchiveInfo> archive, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(def);
        ArgumentNullException.ThrowIfNull(snapshots);
        ArgumentNullException.ThrowIfNull(archive);
        var policy = def.Archive ?? throw new ArgumentException($"source '{def.Name}' keeps no archive", nameof(def));
        var maxRpo = (long)policy.MaxRpo.TotalSeconds;
        var failing = new List<string>();
        var degraded = new List<string>();
        var positioned = archive.Where(a => a.End > 0).ToList();
        var usable = positioned.Where(a => a.Copies.Any(c => c.State == CopyState.Verified && def.Targets.Contains(c.Target))).ToList();
        var usableNames = usable.Select(a => a.Name).ToHashSet(StringComparer.Ordinal);
        var bases = snapshots.Where(s => StatusReport.Restorable(def, s) && s.FinishedAt is not null)
            .Select(s => (Snapshot: s, Range: policy.BaseRange(s.Facts))).Where(b => b.Range is not null).OrderBy(b => b.Snapshot.FinishedAt).ToList();
        if (bases.Count == 0)
        {
            return new ArchiveWindow(null, null, null, null, null, maxRpo, usable.Count, [], []);
        }

        // Read from the histories a restore would have (verified on a configured target), as a restore reads them.
        var lineage = policy.Lineage(archive.Where(a => a.Detail is not null && a.Copies.Any(c => c.State == CopyState.Verified && def.Targets.Contains(c.Target)))
            .Select(a => a.AsFile()));
        var consistent = new List<(SnapshotInfo Snapshot, ArchiveInfo Last)>();
        var gaps = new Dictionary<string, (ArchiveInfo Last, ArchiveInfo Next)>(StringComparer.Ordinal);
        foreach (var (snapshot, range) in bases)
        {
            var (chain, gapBefore) = ArchiveChain.Follow(usable, a => (a.Folder, a.Start, a.End), range!.Folder, range.Start, lineage);
            var last = chain.Count > 0 ? chain[^1] : null;
            if (last is not null && last.End >= range!.End)
            {
                consistent.Add((snapshot, last));
            }

            if (gapBefore is not null && last is not null)
            {
                gaps[last.Name] = (last, gapBefore);
            }
        }

        var newest = bases[^1].Snapshot;
        if (consistent.Count == 0 || consistent[^1].Snapshot != newest)
        {
            failing.Add($"base snapshot {newest.Id} never becomes consistent: the archive does not reach its end (is the server's archive_command 'backstop wal-push', and does it succeed?)");
        }

        if (consistent.Count == 0)
        {
            return new ArchiveWindow(null, null, null, null, null, maxRpo, usable.Count, failing, degraded);
        }

        // The furthest point any base reaches (the newest base's chain normally), and the oldest base whose chain is whole.
        var reach = consistent.MaxBy(c => (c.Last.At, c.Snapshot.FinishedAt))!;
        var to = reach.Last;
        var from = consistent.First(c => c.Last == to).Snapshot; // the window is whole from there: no gap between it and the end
        var rpo = (long)Math.Max(0, (now - to.At).TotalSeconds);
        var newer = archive.Where(a => a.End > 0 && a.At > to.At && string.CompareOrdinal(a.Folder, to.Folder) >= 0).OrderBy(a => a.At).ToList();
        if (newer.Count > 0)
        {
            var unstored = newer.Where(a => !usableNames.Contains(a.Name)).ToList();
            failing.Add($"the archive breaks after {to.Name}: {newer.Count} newer file(s) up to {newer[^1].Name} cannot be reached" +
                        (unstored.Count > 0 ? $" ({unstored[0].Name} has no verified copy on any target: {FirstError(unstored[0]) ?? "never stored"})" : " (a file between them was never archived)") +
                        $"; restores end at {Text.Json.Time(to.At)} until a new base backup (backstop run --source {def.Name}) starts a new window");
        }
        else if (rpo > maxRpo)
        {
            failing.Add($"the newest archived file ({to.Name}) is {Quantities.FormatDuration(TimeSpan.FromSeconds(rpo))} old, wal.max_rpo is {Quantities.FormatDuration(policy.MaxRpo)}: " +
                        "is the server archiving (pg_stat_archiver), and is archive_timeout set below max_rpo?");
        }

        foreach (var (last, next) in gaps.Values.Where(g => g.Last.At < to.At))
        {
            degraded.Add($"the archive has a gap after {last.Name} (next: {next.Name}): no restore reaches a point between {Text.Json.Time(last.At)} and the next base snapshot");
        }

        // Each file of the window on each configured target: a copy that is not verified weakens it.
        var window = positioned.Where(a => a.At <= to.At && usableNames.Contains(a.Name) && consistent.Any(c => InChain(a, c.Snapshot, policy))).ToList();
        foreach (var target in def.Targets.Distinct(StringComparer.Ordinal))
        {
            var lacking = window.Where(a => !a.Copies.Any(c => c.Target == target && c.State == CopyState.Verified)).ToList();
            if (lacking.Count > 0)
            {
                var copy = lacking[0].Copies.FirstOrDefault(c => c.Target == target);
                degraded.Add($"{lacking.Count} archived file(s) have no verified copy on target '{target}' (first: {lacking[0].Name}, " +
                             $"{(copy is null ? "never stored there" : $"{copy.State.ToString().ToLowerInvariant()}: {copy.Error ?? "no reason recorded"}")}); the next run heals them");
            }
        }

        return new ArchiveWindow(from.FinishedAt, to.At, from.Id, to.Name, rpo, maxRpo, usable.Count, failing, degraded);
    }

    private static string? FirstError(ArchiveInfo file) => file.Copies.Select(c => c.Error).FirstOrDefault(e => e is not null);

    private static bool InChain(ArchiveInfo file, SnapshotInfo basis, ArchivePolicy policy) =>
        policy.BaseRange(basis.Facts) is { } r && string.CompareOrdinal(file.Folder, r.Folder) >= 0 && file.End > r.Start;
}
