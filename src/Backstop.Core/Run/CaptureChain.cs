using Backstop.Core.Plugins;

namespace Backstop.Core.Run;

/// <summary>
/// A chained capture's place on this machine: the listings of each snapshot are kept in
/// <c>&lt;source state&gt;/listings/&lt;snapshot&gt;/&lt;artifact&gt;</c> (0700 folders, as the source state is), read by the next
/// level to find what changed without reading unchanged files. Only the newest committed snapshot's are kept.
/// </summary>
/// <param name="fetch">Reads the parent's artifact of a name from a target into a file (its SHA-256 checked); false when it could not.</param>
internal sealed class CaptureChain(string cache, string snapshot, string? parent, int level, Func<string, string, CancellationToken, Task<bool>>? fetch = null)
    : ICaptureChain
{
    private readonly HashSet<string> _incremental = new(StringComparer.Ordinal);

    public int Level => level;

    /// <summary>The snapshot this level stores the changes of (null at level 0).</summary>
    public string? Parent => parent;

    private string Folder => Path.Combine(cache, snapshot);

    public async Task<Stream?> OpenParentListingAsync(string listingArtifact, CancellationToken cancellationToken)
    {
        if (parent is null)
        {
            return null;
        }

        var folder = Path.Combine(cache, parent);
        var path = Path.Combine(folder, Safe(listingArtifact));
        if (!File.Exists(path))
        {
            // Not on this machine (a rebuilt catalog, a new machine, a lost state folder): read from a target, once.
            FileSystem.PrivateFolder.Ensure(cache);
            Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (fetch is null || !await fetch(listingArtifact, path, cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
        }

        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    public Stream CreateListing(string artifactName)
    {
        FileSystem.PrivateFolder.Ensure(cache);
        Directory.CreateDirectory(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return new FileStream(Path.Combine(Folder, Safe(artifactName)), new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 0, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
    }

    public Stream OpenListing(string artifactName) => new FileStream(Path.Combine(Folder, Safe(artifactName)), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);

    public void Incremental(string artifactName)
    {
        lock (_incremental)
        {
            _incremental.Add(artifactName);
        }
    }

    public bool IsIncremental(string artifactName)
    {
        lock (_incremental)
        {
            return _incremental.Contains(artifactName);
        }
    }

    /// <summary>The snapshot committed: its listings stay, every older snapshot's go.</summary>
    public void Keep()
    {
        foreach (var old in Directory.Exists(cache) ? Directory.GetDirectories(cache) : [])
        {
            if (Path.GetFileName(old) != snapshot)
            {
                Directory.Delete(old, recursive: true);
            }
        }
    }

    /// <summary>The snapshot failed: its listings go.</summary>
    public void Discard()
    {
        if (Directory.Exists(Folder))
        {
            Directory.Delete(Folder, recursive: true);
        }
    }

    private static string Safe(string artifactName) =>
        Text.SafeNames.IsSafeFileName(artifactName) ? artifactName : throw new BackupException($"'{artifactName}' is not a safe artifact name for a listing");
}
