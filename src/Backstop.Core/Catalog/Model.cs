namespace Backstop.Core.Catalog;

public enum SnapshotState
{
    Running,
    Committed,
    Failed,
}

public enum CopyState
{
    /// <summary>Read back (or stat'ed with a server-side checksum) and matched.</summary>
    Verified,

    /// <summary>The upload or its verification failed.</summary>
    Failed,

    /// <summary>Was verified once, and is gone now.</summary>
    Missing,

    /// <summary>Present, but its size or hash no longer matches.</summary>
    Corrupt,

    /// <summary>Removed on purpose by retention (<c>prune</c>).</summary>
    Pruned,
}

public sealed record CopyInfo(string Target, CopyState State, DateTimeOffset CheckedAt, string? Error);

public sealed record ArtifactInfo(
    string Name,
    string FileName,
    long RawBytes,
    long StoredBytes,
    string Sha256,
    string Compression,
    IReadOnlyDictionary<string, long> Facts,
    IReadOnlyList<CopyInfo> Copies)
{
    /// <summary>Facts taken from the source's word alone: the artifact's format check could not re-derive them from the content.</summary>
    public IReadOnlyList<string> Reported { get; init; } = [];

    /// <summary>0: the artifact restores alone; N: it holds only what changed since the parent snapshot's artifact of the same name.</summary>
    public int Level { get; init; }
}

/// <summary>
/// A blob the snapshot needs that its source shares between snapshots (content-addressed, stored once per target
/// under <c>&lt;source&gt;/blobs/sha256/</c>): its stored file, its size as content, and its copy on each target.
/// </summary>
public sealed record BlobInfo(string FileName, long RawBytes, IReadOnlyList<CopyInfo> Copies)
{
    /// <summary>The stored size on each target that holds it (what a quick verify compares).</summary>
    public IReadOnlyDictionary<string, long> StoredBytes { get; init; } = new Dictionary<string, long>();

    /// <summary>On each target, the recipients its copy is sealed to (empty: not sealed, or not known).</summary>
    public IReadOnlyDictionary<string, string> SealedTo { get; init; } = new Dictionary<string, string>();
}

public sealed record SnapshotInfo(
    string Id,
    string Source,
    string Kind,
    SnapshotState State,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    string Host,
    long RawBytes,
    long StoredBytes,
    IReadOnlyDictionary<string, long> Facts,
    IReadOnlyList<string> Warnings,
    string? Error,
    IReadOnlyList<ArtifactInfo> Artifacts)
{
    /// <summary>The snapshot this one stores the changes of (a level above a full); null for a full.</summary>
    public string? Parent { get; init; }

    /// <summary>0 for a full; N for the N-th level of a chain.</summary>
    public int Level { get; init; }

    /// <summary>
    /// The levels below this one, parent first, as the catalog holds them (empty for a full). Shorter than
    /// <see cref="Level"/> when a parent is no longer in the catalog: the chain is broken.
    /// </summary>
    public IReadOnlyList<SnapshotInfo> Ancestors { get; init; } = [];

    /// <summary>The shared blobs the snapshot needs besides its artifacts: a copy on a target counts only where every one is verified too.</summary>
    public IReadOnlyList<BlobInfo> Blobs { get; init; } = [];

    /// <summary>Whether every level below this one is in the catalog.</summary>
    public bool ChainComplete => Ancestors.Count == Level && Ancestors.Select((a, i) => a.Level == Level - 1 - i).All(x => x);

    /// <summary>Targets that hold a verified copy of every artifact of this snapshot itself (not its parents).</summary>
    public IReadOnlyList<string> OwnVerifiedTargets =>
        Artifacts.Count == 0
            ? []
            : Artifacts.SelectMany(a => a.Copies).Select(c => c.Target).Distinct(StringComparer.Ordinal)
                .Where(t => Artifacts.All(a => a.Copies.Any(c => c.Target == t && c.State == CopyState.Verified))
                            && Blobs.All(b => b.Copies.Any(c => c.Target == t && c.State == CopyState.Verified)))
                .Order(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Targets that can restore this snapshot: they hold a verified copy of every artifact of it and of every level
    /// below it (a chain is one unit). None when a level is missing from the catalog.
    /// </summary>
    public IReadOnlyList<string> VerifiedTargets =>
        Level == 0 ? OwnVerifiedTargets
        : !ChainComplete ? []
        : OwnVerifiedTargets.Where(t => Ancestors.All(p => p.OwnVerifiedTargets.Contains(t, StringComparer.Ordinal))).ToList();

    /// <summary>Each copy that is not verified, with its reason ("target 'nas': …"), one line per target.</summary>
    public IReadOnlyList<string> CopyProblems =>
        Artifacts.SelectMany(a => a.Copies)
            .Concat(Blobs.SelectMany(b => b.Copies.Select(c => c with { Error = $"blob {b.FileName}: {c.Error ?? "(no reason recorded)"}" })))
            .Concat(Blobs.SelectMany(b => Artifacts.SelectMany(a => a.Copies).Select(c => c.Target).Distinct(StringComparer.Ordinal)
                .Where(t => b.Copies.All(c => c.Target != t))
                .Select(t => new CopyInfo(t, CopyState.Missing, DateTimeOffset.MinValue, $"blob {b.FileName} is not stored there"))))
            .Where(c => c.State is not (CopyState.Verified or CopyState.Pruned))
            .GroupBy(c => c.Target, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"copy on '{g.Key}' {g.First().State.ToString().ToLowerInvariant()}: {g.First().Error ?? "(no reason recorded)"}").ToList();

    /// <summary>A snapshot counts only when committed with at least <paramref name="minCopies"/> verified copies.</summary>
    public bool IsValid(int minCopies) => State == SnapshotState.Committed && VerifiedTargets.Count >= minCopies;

    /// <summary>
    /// No good copy left, on positive evidence only: committed, and some artifact has no verified copy while every copy
    /// it has was read from a reachable target and found corrupt or absent (or was pruned). A copy that could not be
    /// read (a target down, a time-out: <see cref="CopyState.Failed"/>) never makes a snapshot unrestorable.
    /// </summary>
    public bool Unrestorable =>
        State == SnapshotState.Committed && (OwnUnrestorable || (Level > 0 && (!ChainComplete || Ancestors.Any(p => p.OwnUnrestorable || p.State != SnapshotState.Committed))));

    private bool OwnUnrestorable => Artifacts.Select(a => a.Copies).Concat(Blobs.Select(b => b.Copies)).Any(copies =>
        copies.Any(c => c.State is CopyState.Corrupt or CopyState.Missing)
        && copies.All(c => c.State is CopyState.Corrupt or CopyState.Missing or CopyState.Pruned));

    /// <summary>
    /// The snapshot's condition as <c>list</c>, <c>show</c>, the dashboard and the README name it: running, failed,
    /// valid (the policy's verified copies), short (restorable, with fewer verified copies than the policy asks now),
    /// unverified (no verified copy, none proven bad: a target could not be read), unrestorable, or pruned.
    /// </summary>
    public string Condition(int minCopies) => State switch
    {
        SnapshotState.Running => "running",
        SnapshotState.Failed => "failed",
        _ when Unrestorable => "unrestorable",
        _ when VerifiedTargets.Count >= minCopies => "valid",
        _ when VerifiedTargets.Count > 0 => "short",
        _ when Artifacts.SelectMany(a => a.Copies).All(c => c.State == CopyState.Pruned) => "pruned",
        _ => "unverified",
    };
}

public sealed record CatalogEvent(DateTimeOffset At, string Level, string? Source, string? SnapshotId, string Message);
