using Backstop.Core.Plugins;
using Backstop.Core.Tar;
using Backstop.Core.FileSystem;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Trees;

/// <summary>
/// One tree artifact: paths captured as one pax tar that <c>tar -x</c> alone restores (folders, symlinks, hard links,
/// modes, owners, times, extended attributes and ACLs), and, in a chain, the listing the next level compares with; restored
/// level by level into a staging folder. The files kind stores its paths as one; the Kubernetes kind stores each
/// volume's folder as one.
/// </summary>
internal sealed class FileTree(string source, string artifact)
{
    /// <summary>The tar artifact this tree is stored as.</summary>
    public string Artifact => artifact;

    /// <summary>The artifact that holds a chained tar's listing.</summary>
    public static string ListingName(string tarArtifact) => Path.GetFileNameWithoutExtension(tarArtifact) + ".listing";

    /// <summary>Whether an artifact is a chain's listing: it is for the next level's change detection, with nothing in it to restore.</summary>
    public static bool IsListing(string artifactName) => artifactName.EndsWith(".listing", StringComparison.Ordinal);

    public IArtifactValidator? ValidatorFor(string artifactName) => artifactName == artifact ? new TreeValidator() : null;

    public static string RestoreRecipe(string artifactName, string storedFile) =>
        IsListing(artifactName)
            ? "# the listing of the tree, for the next level's change detection; nothing to restore"
            : $"mkdir -p DEST && zstd -dc {storedFile} | tar -x --incremental --xattrs --xattrs-include='*' --acls -pf - -C DEST";

    /// <summary>
    /// Writes <paramref name="paths"/> (less what <paramref name="exclude"/> matches) as the tar artifact; in a chain,
    /// above level 0, only what changed since the parent's listing, and the new listing as an artifact too.
    /// </summary>
    public async Task CaptureAsync(ICaptureSink sink, IReadOnlyList<string> paths, IReadOnlyList<Glob> exclude, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var chain = sink.Chain;
        var parent = chain is null || chain.Level == 0 ? null : await ParentListingAsync(chain, sink, cancellationToken).ConfigureAwait(false);
        Listing.Reader? previous = null;
        Listing.Writer? listing = null;
        TreeWalker walker;
        try
        {
            previous = parent is null ? null : new Listing.Reader(parent);
            listing = chain is null ? null : new Listing.Writer(chain.CreateListing(ListingName(artifact)));
            await using (var writer = await sink.BeginArtifactAsync(artifact, cancellationToken).ConfigureAwait(false))
            {
                walker = new TreeWalker(source, exclude, sink, previous, listing, cancellationToken);
                var tar = new PaxWriter(writer.Content);
                walker.WalkAll(tar, paths);
                tar.Finish();
                await writer.CompleteAsync(walker.Facts(), cancellationToken).ConfigureAwait(false);
                if (previous is not null)
                {
                    chain!.Incremental(artifact);
                }
            }
        }
        finally
        {
            previous?.Dispose();
            listing?.Dispose();
        }

        if (chain is not null)
        {
            // The listing as an artifact too: a catalog rebuilt from the targets, or another machine, continues the chain from it.
            await using var copy = await sink.BeginArtifactAsync(ListingName(artifact), cancellationToken).ConfigureAwait(false);
            await using (var cached = chain.OpenListing(ListingName(artifact)))
            {
                await cached.CopyToAsync(copy.Content, cancellationToken).ConfigureAwait(false);
            }

            await copy.CompleteAsync(new Dictionary<string, long> { ["entries"] = walker.Listed }, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The parent's listing of this artifact, read through once first: a damaged one (a cache file cut short) is said,
    /// and this artifact is stored whole (restorable alone) rather than compared with it.
    /// </summary>
    private async Task<Stream?> ParentListingAsync(ICaptureChain chain, ICaptureSink sink, CancellationToken cancellationToken)
    {
        try
        {
            await using (var check = await chain.OpenParentListingAsync(ListingName(artifact), cancellationToken).ConfigureAwait(false))
            {
                if (check is null)
                {
                    return null;
                }

                Listing.Reader.Check(check);
            }
        }
        catch (BackupException e)
        {
            sink.Warn($"{artifact} is stored whole: {e.Message}");
            return null;
        }

        return await chain.OpenParentListingAsync(ListingName(artifact), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Begins a restore into <paramref name="destination"/>, of the whole tree or of <paramref name="selection"/>.</summary>
    public static IChainStage BeginChain(string destination, bool force, TreeSelection? selection = null) =>
        new ChainStage(selection, Staging.Folder.Begin(destination, force));

    /// <summary>
    /// Extracts into a staging folder inside the destination; publishing moves its top-level names into place. A full
    /// is a chain of one level: the same extraction, the same facts counted from what was staged.
    /// </summary>
    public static async Task<StagedRestore> StageAsync(Stream content, string destination, bool force, TreeSelection? selection, CancellationToken cancellationToken)
    {
        var stage = BeginChain(destination, force, selection);
        try
        {
            await stage.ApplyAsync(content, 0, cancellationToken).ConfigureAwait(false);
            return stage.Finish();
        }
        catch
        {
            stage.Discard();
            throw;
        }
    }

    /// <summary>A chain's levels extracted in order into one staging folder; the tree's facts counted once the last is in.</summary>
    private sealed class ChainStage(TreeSelection? selection, Staging.Folder folder) : IChainStage
    {
        private TarExtractor.TarExtraction? _last;
        private readonly Dictionary<string, PaxEntry> _folders = new(StringComparer.Ordinal);

        public async Task ApplyAsync(Stream content, int level, CancellationToken cancellationToken)
        {
            _last = await TarExtractor.ExtractAsync(content, folder.Path, cancellationToken, selection is null ? null : selection.Select, level > 0, deferFolders: true,
                selection is null ? null : selection.Place).ConfigureAwait(false);
            foreach (var (path, entry) in _last.Folders)
            {
                _folders[path] = entry; // the newest level's mode and time for each folder
            }
        }

        public StagedRestore Finish()
        {
            var last = _last ?? throw new InvalidOperationException("no level was applied");
            var counted = TarExtractor.Count(folder.Path); // before the folders get their modes (a 0500 one is still open to this user)
            TarExtractor.ApplyFolders(_folders.Select(f => (f.Key, f.Value)));
            var tree = new Dictionary<string, long>
            {
                ["files"] = counted["files"], ["bytes"] = counted["bytes"],
                ["directories"] = last.Facts["directories"], // every level lists every folder
                ["symlinks"] = counted["symlinks"], ["specials"] = counted["specials"],
                ["changed_files"] = last.Facts["files"], ["changed_bytes"] = last.Facts["bytes"], // what the newest level itself held
            };
            var facts = selection is null ? tree : tree.ToDictionary(f => "selected_" + f.Key, f => f.Value);
            if (selection is not null && facts["selected_files"] + facts["selected_directories"] + facts["selected_symlinks"] == 0)
            {
                throw new BackupException("nothing in the snapshot matches --include/--strip-prefix; 'backstop ls SNAPSHOT' shows its paths");
            }

            return folder.Staged(facts, () => TarExtractor.ApplyRoot(folder.Destination, last.Root));
        }

        public void Discard() => folder.Discard();
    }
}

/// <summary>
/// Part of a tree's tar: entries whose absolute path (or a folder above it) an include glob matches, and with a strip
/// prefix only those under it, named relative to it. Facts are then said as selected_*, not compared with the backup's.
/// </summary>
internal sealed class TreeSelection
{
    private readonly List<Glob> _globs;
    private readonly string? _prefix;

    public TreeSelection(IReadOnlyList<string> include, string? stripPrefix)
    {
        _globs = include.Select(g => new Glob(g)).ToList();
        _prefix = stripPrefix is null ? null : RawFs.FromPath(stripPrefix.Trim('/'));
    }

    /// <summary>Where an entry lands (its raw name, relative to the strip prefix), or null when it is outside the prefix.</summary>
    public string? Place(string entry)
    {
        if (string.IsNullOrEmpty(_prefix))
        {
            return entry;
        }

        var relative = entry.TrimEnd('/');
        return relative == _prefix ? "." : relative.StartsWith(_prefix + "/", StringComparison.Ordinal) ? relative[(_prefix.Length + 1)..] : null;
    }

    /// <summary>Where a selected entry lands, or null when it is not selected.</summary>
    public string? Select(string entry) =>
        // Entry names are raw (the bytes stored); globs match the names as a person reads them.
        _globs.Count > 0 && !_globs.Any(g => Ancestors("/" + RawFs.Display(entry.TrimEnd('/'))).Any(g.Matches)) ? null : Place(entry);

    private static IEnumerable<string> Ancestors(string path)
    {
        for (var p = path; p.Length > 1; p = p[..Math.Max(p.LastIndexOf('/'), 1)])
        {
            yield return p;
        }
    }
}
