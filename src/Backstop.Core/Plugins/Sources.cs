using Backstop.Core.Config;

namespace Backstop.Core.Plugins;

/// <summary>A kind of source (files, sqlite, postgres…): parses its typed options and creates sources.</summary>
public interface ISourceKind
{
    string Kind { get; }

    /// <summary>The facts this kind reports; <c>expect: {min_&lt;fact&gt;: …}</c> accepts exactly these.</summary>
    IReadOnlyList<string> Facts { get; }

    /// <summary>
    /// The facts that count what the source holds (files, tables, rows, keys, documents…): the default expectations
    /// catch one that falls to 0 or shrinks past <c>max_shrink</c>. Not sizes already covered by raw bytes, not
    /// positions such as etcd's revision.
    /// </summary>
    IReadOnlyList<string> CountFacts { get; }

    /// <summary>Whether the kind has paths that <c>expect: {mount: true}</c> can require to be mount points.</summary>
    bool ChecksMounts => false;

    /// <summary>
    /// Whether the kind can store only what changed since a parent snapshot (<c>incremental:</c>; on by default for
    /// such kinds), through <see cref="ICaptureSink.Chain"/>.
    /// </summary>
    bool StoresChanges => false;

    /// <summary>
    /// Where a source of this kind comes back in a recovery when no <c>needs:</c> says otherwise: lower first. The
    /// stages: <see cref="RecoveryStage"/>.
    /// </summary>
    int RecoveryOrder => RecoveryStage.Data;

    /// <summary>What <c>restore --to</c> takes for this kind, in a few words ("a folder", "postgresql://USER@HOST:PORT/DB"): restore's help is made of these.</summary>
    string RestoreTo => "a folder";

    /// <summary>An example of <c>--to</c> for this kind worth showing in restore's help (a URL form); none for a plain path.</summary>
    string? RestoreToExample => null;

    object ParseOptions(ConfigMap map);

    /// <summary>
    /// The kind's own keys, documented (its <c>drill:</c> keys as <c>drill.KEY</c>): the configuration reference and
    /// its unknown-key check come from them, and a test holds them to what <see cref="ParseOptions"/> reads.
    /// </summary>
    IReadOnlyList<KeyDoc> Keys { get; }

    /// <summary>One sentence on what the kind backs up and how (the configuration reference's line for it).</summary>
    string Summary => "";

    /// <summary>
    /// The kind's own keys of a source's <c>drill:</c> block (besides <c>every</c>), parsed into its options record; null
    /// when it has none. <see cref="DrillKeys"/> names them for the unknown-key error.
    /// </summary>
    object? ParseDrillOptions(ConfigMap map) => null;

    /// <summary>The kind's own <c>drill:</c> keys.</summary>
    IReadOnlyList<string> DrillKeys => [];

    /// <summary>Why a source with these options must only be stored encrypted (its backup holds secrets), or null.</summary>
    string? RequiresEncryption(object options) => null;

    /// <summary>
    /// Whether a source with these options keeps a continuous archive besides its snapshots (<c>wal:</c>; PostgreSQL's
    /// WAL in mode: physical): the kind's sources then implement <see cref="IContinuousArchive"/>.
    /// </summary>
    bool KeepsArchive(object options) => false;

    /// <summary>Whether any source of this kind can keep a continuous archive (its <c>wal.*</c> keys are documented).</summary>
    bool CanKeepArchive => false;

    /// <summary>Where in the archive a snapshot of such a source starts and becomes consistent, read from its facts; null when they do not say.</summary>
    ArchiveRange? BaseRange(IReadOnlyDictionary<string, long> facts) => null;

    /// <summary>The archive's lineage (the newest timeline's history) from its files' kept contents; null when it has a single line.</summary>
    IReadOnlyList<ArchiveStretch>? Lineage(IEnumerable<ArchiveFile> files) => null;

    ISource Create(SourceDefinition definition);
}

/// <summary>
/// The default order of a recovery: images first (nothing runs without them), then the cluster's state, then its
/// objects (workloads held at zero replicas), then data (databases, volumes), then files; workloads are released last.
/// </summary>
public static class RecoveryStage
{
    public const int Images = 0;
    public const int ClusterState = 1;
    public const int ClusterObjects = 2;
    public const int Data = 3;
    public const int Files = 4;
}

/// <summary>Base for a source kind with a typed options record.</summary>
public abstract class SourceKind<TOptions> : ISourceKind where TOptions : class
{
    public abstract string Kind { get; }

    public abstract IReadOnlyList<string> Facts { get; }

    public abstract IReadOnlyList<string> CountFacts { get; }

    public virtual bool ChecksMounts => false;

    public virtual bool StoresChanges => false;

    public virtual int RecoveryOrder => RecoveryStage.Data;

    public virtual string RestoreTo => "a folder";

    public virtual string? RestoreToExample => null;

    public abstract TOptions Parse(ConfigMap map);

    public abstract IReadOnlyList<KeyDoc> Keys { get; }

    public virtual string Summary => "";

    public abstract ISource Create(SourceDefinition definition, TOptions options);

    public virtual object? ParseDrillOptions(ConfigMap map) => null;

    /// <summary>The kind's own <c>drill:</c> keys: those of its <see cref="Keys"/> rows under <c>drill.</c>, declared once there.</summary>
    public virtual IReadOnlyList<string> DrillKeys =>
        [.. Keys.Select(k => k.Key).Where(k => k.StartsWith("drill.", StringComparison.Ordinal)).Select(k => k[6..].Split('.', '[')[0]).Distinct(StringComparer.Ordinal)];

    public virtual string? RequiresEncryption(object options) => null;

    public virtual bool KeepsArchive(object options) => false;

    public virtual bool CanKeepArchive => false;

    public virtual ArchiveRange? BaseRange(IReadOnlyDictionary<string, long> facts) => null;

    public virtual IReadOnlyList<ArchiveStretch>? Lineage(IEnumerable<ArchiveFile> files) => null;

    object ISourceKind.ParseOptions(ConfigMap map) => Parse(map);

    ISource ISourceKind.Create(SourceDefinition definition) => Create(definition, (TOptions)definition.Options);
}

/// <summary>One thing to back up. It never knows where its bytes go.</summary>
public interface ISource
{
    /// <summary>
    /// Checks everything the capture needs before any work starts (tools resolved to absolute paths, files
    /// readable, the server reachable). Throws <see cref="BackupException"/> with the reason and the fix.
    /// </summary>
    Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken);

    /// <summary>Writes one stream per artifact into the sink and reports each artifact's facts.</summary>
    Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken);

    /// <summary>
    /// Checks the format of an artifact as stored (decompressed), against the facts captured. Returns null when the
    /// kind has no format check for that artifact.
    /// </summary>
    IArtifactValidator? ValidatorFor(string artifactName);

    /// <summary>
    /// The stock-tool commands that restore this artifact without Backstop: the stored file's name, and the
    /// placeholders DEST (a folder) or URL, HOST, PORT, USER, DB (a server), each a whole shell word or joined to a
    /// path with '/', never inside quotes (they are filled in quoted).
    /// </summary>
    string RestoreRecipe(string artifactName, string storedFile);

    /// <summary>
    /// The part of this source that has a capability (<see cref="IRestorable"/>, <see cref="IDrillable"/>,
    /// <see cref="IHealthChecked"/>, <see cref="IContinuousArchive"/>…), or null when it has none. Core asks this, never
    /// casts: a kind made of small types, one per capability, returns each; by default the source itself is asked.
    /// </summary>
    T? Capability<T>() where T : class => this as T;

    /// <summary>
    /// The placeholders <c>--to</c> fills in a stock-tool recipe (<c>restore --explain</c>): DEST for a folder, by
    /// default; a kind that restores into a server parses its own URI into URL, HOST, PORT, USER, DB (never a password).
    /// </summary>
    IReadOnlyDictionary<string, string> RecipePlaces(string destination) =>
        Uri.TryCreate(destination, UriKind.Absolute, out var uri) && uri.UserInfo.Contains(':', StringComparison.Ordinal)
            ? throw new ConfigException("--to: leave the password out of the URI (it would be visible to every user and printed in the recipe)")
            : new Dictionary<string, string>(StringComparer.Ordinal) { ["DEST"] = destination };
}

/// <summary>
/// A kind whose recovery comes in two steps (a cluster's objects: everything but the workloads first, the workloads last,
/// once the data they use is back): a runbook runs <c>Hold</c> in place of the artifact's recipe, and every <c>Release</c>
/// after the last source is in.
/// </summary>
public interface IStagedRecovery
{
    /// <summary>The two steps for an artifact, or null when it restores in one (the recipe's placeholders, the stored file as a shell word).</summary>
    (string Hold, string Release)? RecoverySteps(string artifactName, string storedFile);
}

/// <summary>What preflight learned: tools used (name → "path version") and staging space the capture needs.</summary>
public sealed record SourcePreflight(IReadOnlyDictionary<string, string> Tools, long StagingBytesNeeded)
{
    public static SourcePreflight None { get; } = new(new Dictionary<string, string>(), 0);
}

/// <summary>Where a source writes its artifacts during capture.</summary>
public interface ICaptureSink
{
    /// <summary>A private folder for this snapshot's temporary files; removed after the run.</summary>
    string StagingDirectory { get; }

    /// <summary>Starts an artifact (e.g. <c>files.tar</c>); the stream seals and ships while it is written.</summary>
    Task<IArtifactWriter> BeginArtifactAsync(string name, CancellationToken cancellationToken);

    /// <summary>A problem that does not fail the snapshot, recorded on it (e.g. a file changed while read).</summary>
    void Warn(string message);

    /// <summary>
    /// The chain this capture belongs to, for a kind that stores only what changed (<see cref="ISourceKind.StoresChanges"/>)
    /// with <c>incremental</c> on; null when every snapshot of the source is full.
    /// </summary>
    ICaptureChain? Chain => null;

    /// <summary>Where blobs shared between snapshots go (<see cref="IBlobStore"/>); null where a capture keeps everything in its artifacts.</summary>
    IBlobStore? Blobs => null;
}

/// <summary>
/// Where a chained capture stands: level 0 stores everything, level N only what changed since its parent (level N-1),
/// found by comparing with the parent's listing of the tree (no unchanged file is read). Each chained artifact
/// keeps its listing, both as an artifact of the snapshot (so a rebuilt catalog has it) and cached on this machine.
/// </summary>
public interface ICaptureChain
{
    /// <summary>0 for a full, else the number of levels above the full.</summary>
    int Level { get; }

    /// <summary>
    /// The parent's listing artifact of that name: from this machine's cache, else read from a target that holds a
    /// verified copy (its SHA-256 checked) into the cache. Null at level 0, when the parent has no such artifact, or
    /// when no copy could be read (said as a notice): the caller then stores its artifact whole.
    /// </summary>
    Task<Stream?> OpenParentListingAsync(string listingArtifact, CancellationToken cancellationToken);

    /// <summary>Where this snapshot's listing artifact is kept on this machine (a new file, written once).</summary>
    Stream CreateListing(string listingArtifact);

    /// <summary>This snapshot's listing, as written (to store it as an artifact too).</summary>
    Stream OpenListing(string listingArtifact);

    /// <summary>Says that an artifact holds only what changed since the parent's artifact of the same name (it restores over it).</summary>
    void Incremental(string artifactName);
}

/// <summary>One artifact being written. Write the whole content, then <see cref="CompleteAsync"/> with its facts.</summary>
public interface IArtifactWriter : IAsyncDisposable
{
    Stream Content { get; }

    Task CompleteAsync(IReadOnlyDictionary<string, long> facts, CancellationToken cancellationToken);
}

/// <summary>
/// Reads an artifact's content (as produced during the run, and as stored during <c>verify --deep</c>), checks its
/// format, and returns the facts it finds there, which must equal the facts the source reported.
/// </summary>
public interface IArtifactValidator
{
    /// <summary>Throws <see cref="BackupException"/> naming what is wrong with the format.</summary>
    Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken);
}

/// <summary>A source kind that can put an artifact back (<c>backstop restore</c>).</summary>
public interface IRestorable
{
    /// <summary>
    /// The artifacts to restore, in order, when the caller named none (or the one named); throws
    /// <see cref="Config.ConfigException"/> when the choice does not fit the destination.
    /// </summary>
    IReadOnlyList<string> Plan(IReadOnlyList<string> artifacts, string destination) => artifacts;

    /// <summary>
    /// Whether an artifact holds something to restore; false for one kept for the backup's own use (a chain's
    /// listing), which restore, drills and <c>restore --explain</c> leave out.
    /// </summary>
    bool Restores(string artifactName) => true;

    /// <summary>
    /// Restores one artifact's content (decompressed, already proven by its SHA-256) to the destination. Refuses a
    /// non-empty destination unless <paramref name="force"/>. Returns the facts found in what was restored, to be
    /// compared with the snapshot's.
    /// </summary>
    Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken);
}

/// <summary>
/// A restore written where nothing sees it yet (a hidden folder or file beside the destination, on the same file
/// system): <see cref="Publish"/> renames it into the destination's names once the copy it came from has proven its
/// SHA-256; <see cref="Discard"/> removes it and anything the restore created.
/// </summary>
public sealed class StagedRestore(IReadOnlyDictionary<string, long> found, Action publish, Action discard)
{
    private bool _done;

    /// <summary>The facts found in what was staged, to be compared with the snapshot's.</summary>
    public IReadOnlyDictionary<string, long> Found => found;

    /// <summary>Moves what was staged into place; when that fails, what was not moved yet is removed.</summary>
    public void Publish()
    {
        ObjectDisposedException.ThrowIf(_done, this);
        _done = true;
        try
        {
            publish();
        }
        catch
        {
            discard();
            throw;
        }
    }

    /// <summary>Removes what was staged; does nothing once published or discarded.</summary>
    public void Discard()
    {
        if (!_done)
        {
            _done = true;
            discard();
        }
    }
}

/// <summary>
/// A source kind whose restore can be staged: the restore reads the copy once, hashing it while the content is
/// written aside, and publishes only when the hash matches (a bad copy is discarded and the next target tried).
/// Kinds that write into a server (databases) are <see cref="IRestorable"/> only: their copy is proven first.
/// </summary>
/// <summary>
/// A staged restorable whose artifacts may be levels of a chain (<see cref="Catalog.ArtifactInfo.Level"/>): the full
/// and every level above it are applied oldest first into one staging, published once the last level is in.
/// </summary>
public interface IChainRestorable : IRestorable
{
    /// <summary>Begins a chain restore of an artifact: checks the destination and makes the staging beside it.</summary>
    IChainStage BeginChain(string artifactName, string destination, bool force);
}

/// <summary>One chain restore being staged.</summary>
public interface IChainStage
{
    /// <summary>Applies one level's content (decompressed, not yet proven): the full first (<paramref name="level"/> 0), then each level.</summary>
    Task ApplyAsync(Stream content, int level, CancellationToken cancellationToken);

    /// <summary>After the last level: what to publish, with the facts found in the whole staged tree.</summary>
    StagedRestore Finish();

    /// <summary>Removes what was staged (a level failed its hash or its read).</summary>
    void Discard();
}

public interface IStagedRestorable : IRestorable
{
    /// <summary>
    /// Writes one artifact's content (decompressed, not yet proven) aside the destination and returns what to publish.
    /// Refuses a non-empty destination unless <paramref name="force"/>. On an error nothing is left behind.
    /// </summary>
    Task<StagedRestore> StageAsync(string artifactName, Stream content, string destination, bool force, CancellationToken cancellationToken);

    async Task<IReadOnlyDictionary<string, long>> IRestorable.RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        var staged = await StageAsync(artifactName, content, destination, force, cancellationToken).ConfigureAwait(false);
        staged.Publish();
        return staged.Found;
    }
}

/// <summary>
/// A source kind whose restore can take part of an artifact (a files tar): only the paths that
/// <c>--include</c> globs match, relative to <c>--strip-prefix</c>. The whole copy is still read and hash-checked.
/// </summary>
public interface IPartialRestore
{
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1716", Justification = "A keyword only in Visual Basic; kinds are written in C#.")]
    void Select(IReadOnlyList<string> include, string? stripPrefix);
}

/// <summary>
/// A kind whose sources take their own <c>drill:</c> keys, parsed once into <typeparamref name="TDrillOptions"/> and
/// handed to the source it creates: no kind reads its drill options back from an <c>object</c>.
/// </summary>
public abstract class SourceKind<TOptions, TDrillOptions> : SourceKind<TOptions> where TOptions : class where TDrillOptions : class
{
    /// <summary>The <c>drill:</c> block's kind keys (those under <c>drill.</c> in <see cref="SourceKind{TOptions}.Keys"/>); null when none is given.</summary>
    public abstract TDrillOptions? ParseDrill(ConfigMap map);

    public abstract ISource Create(SourceDefinition definition, TOptions options, TDrillOptions? drill);

    public sealed override object? ParseDrillOptions(ConfigMap map) => ParseDrill(map);

    public sealed override ISource Create(SourceDefinition definition, TOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return Create(definition, options, (TDrillOptions?)definition.Drill.Options);
    }
}
