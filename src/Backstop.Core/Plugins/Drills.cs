namespace Backstop.Core.Plugins;

/// <summary>One check of a drill: what the snapshot recorded (or the rule), what the restored copy showed, and whether they agree.</summary>
public sealed record DrillCheck(string Name, string Expected, string Found, bool Passed);

/// <summary>An artifact of the snapshot being drilled, with what its backup recorded.</summary>
public sealed record DrillArtifact(string Name, IReadOnlyDictionary<string, long> Facts, IReadOnlyList<string> Reported);

/// <summary>
/// What a source kind's drill is given: a private scratch folder that the drill runner creates (0700) and always
/// removes, a random token for scratch names (databases, namespaces), the snapshot's artifacts, the kind's
/// <c>drill:</c> options, and a way to record what must be cleaned up if this process dies (<see cref="Leave"/>).
/// </summary>
public sealed class DrillScope(string folder, string token, string snapshotId, DateTimeOffset snapshotStartedAt, IReadOnlyList<DrillArtifact> artifacts,
    Action<string> note, Func<string, int, CancellationToken, Task<byte[]>> peek)
{
    /// <summary>
    /// The first bytes of an artifact's content (decrypted, decompressed), read from a copy before the restore: what a
    /// kind needs to set the scratch place up (the server version a dump came from). Not hash-checked: only the
    /// restore's content is trusted, and it is.
    /// </summary>
    public Task<byte[]> PeekAsync(string artifact, int bytes, CancellationToken cancellationToken) => peek(artifact, bytes, cancellationToken);

    /// <summary>The scratch folder: everything the drill writes on this host goes here.</summary>
    public string Folder => folder;

    /// <summary>A random lowercase hex token, for scratch names that must not meet anything existing.</summary>
    public string Token => token;

    public string SnapshotId => snapshotId;

    public DateTimeOffset SnapshotStartedAt => snapshotStartedAt;

    public IReadOnlyList<DrillArtifact> Artifacts => artifacts;

    /// <summary>A restore to a point of the archive: where it stops (null: a snapshot alone).</summary>
    public RestorePoint? Point { get; init; }

    /// <summary>The recovery marker the point is (null: none); the kind checks that exactly the markers up to it are there.</summary>
    public RecoveryMarker? Marker { get; init; }

    /// <summary>Says something about the drill (which server, what was skipped) into its report.</summary>
    public void Note(string message) => note(message);

    /// <summary>The file that lists what a killed drill leaves outside its folder (processes, scratch databases).</summary>
    public const string LeftoversFile = "leftovers";

    /// <summary>
    /// Records, before it is made, something outside the folder that a drill killed with -9 would leave (a process
    /// as <c>pid:PID:START</c>, a scratch database as <c>db:NAME</c>, a folder as <c>dir:PATH</c>); the next drill
    /// or run sweeps it (<see cref="IDrillable.SweepAsync"/> for what only the kind knows how to remove).
    /// </summary>
    public void Leave(string leftover)
    {
        ArgumentException.ThrowIfNullOrEmpty(leftover);
        if (leftover.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException("a leftover is one line", nameof(leftover));
        }

        using var file = new FileStream(Path.Combine(folder, LeftoversFile), FileMode.Append, FileAccess.Write, FileShare.Read);
        file.Write(System.Text.Encoding.UTF8.GetBytes(leftover + "\n"));
        file.Flush(flushToDisk: true);
    }
}

/// <summary>A source kind whose snapshots can be drilled: restored into a scratch place, loaded and checked.</summary>
public interface IDrillable
{
    /// <summary>
    /// Sets the scratch place up (a folder, a throwaway server, a scratch database on a drill server). Timed apart
    /// from the RTO. Throws <see cref="BackupException"/> naming what is missing (a server binary, a drill server).
    /// </summary>
    Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken);

    /// <summary>
    /// Removes one leftover of a drill that was killed (a <c>db:</c> line it recorded); processes and folders are the
    /// runner's. Best effort: returns a message when it could not.
    /// </summary>
    Task<string?> SweepAsync(string leftover, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    /// <summary>
    /// The throwaway server a drill of this source starts on this host ("a throwaway PostgreSQL cluster"), or null when
    /// it starts none (a folder, a configured drill server): doctor warns when such a server would run as Backstop's
    /// own OS user (not root, so it cannot switch to backstop-drill).
    /// </summary>
    string? ThrowawayServer => null;
}

/// <summary>
/// A scratch place for one drill. The runner restores each artifact (in <see cref="Order"/>) to
/// <see cref="Destination"/> through the same path as <c>restore</c>, then calls <see cref="LoadAsync"/> and
/// <see cref="CheckAsync"/>, and always disposes it (which removes the scratch servers and databases).
/// </summary>
public interface IDrillScratch : IAsyncDisposable
{
    /// <summary>What the scratch place is, for the report ("a throwaway PostgreSQL 16 cluster on 127.0.0.1:PORT").</summary>
    string Description { get; }

    /// <summary>Tools the drill used, name → "path version", for the evidence file.</summary>
    IReadOnlyDictionary<string, string> Tools { get; }

    /// <summary>The artifacts in the order they must be restored (globals before databases).</summary>
    IReadOnlyList<string> Order(IReadOnlyList<string> artifacts) => artifacts;

    /// <summary>Where one artifact is restored: a folder, a file or a server URI, as <c>restore --to</c> takes.</summary>
    string Destination(string artifact);

    /// <summary>Loads what was restored where that is a step of its own (a redis-server reading the RDB). Timed as load.</summary>
    Task LoadAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The kind's own checks on what was restored and loaded (integrity, keys in a live server, smoke queries, a spot check).</summary>
    Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken);
}
