using Backstop.Core.Plugins;

namespace Backstop.Core.Run;

/// <summary>
/// A chained capture's place on this machine: the listings of each snapshot are kept in
/// <c>&lt;source state&gt;/listings/&lt;snapshot&gt;/&lt;artifact&gt;</c> (0700 folders, as the source state is), read by the next
/// level to find what changed without reading unchanged files. Only the newest committed snapshot's are kept.
/// </summary>
internal sealed class CaptureChain(string cache, string snapshot, string? parent, int level) : ICaptureChain
{
    private readonly HashSet<string> _incremental = new(StringComparer.Ordinal);

    public int Level => level;

    /// <summary>The snapshot this level stores the changes of (null at level 0).</summary>
    public string? Parent => parent;

    private string Folder => Path.Combine(cache, snapshot);

    /// <summary>Whether this machine still holds a snapshot's listings.</summary>
    public static bool HasListings(string cache, string snapshot) => Directory.Exists(Path.Combine(cache, snapshot));

    public Stream? OpenParentListing(string artifactName)
    {
        if (parent is null)
        {
            return null;
        }

        var path = Path.Combine(cache, parent, Safe(artifactName));
        return File.Exists(path) ? new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16) : null;
    }

    public Stream CreateListing(string artifactName)
    {
        Util.PrivateFolder.Ensure(cache);
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
        Util.SafeNames.IsSafeFileName(artifactName) ? artifactName : throw new BackupException($"'{artifactName}' is not a safe artifact name for a listing");
}
