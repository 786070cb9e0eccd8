using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Core.Text;

namespace Backstop.Targets.Local;

/// <summary>A local target: its folder (never created with its parents), and an optional marker file that must be in it.</summary>
public sealed record LocalOptions(string Path, string? Marker = null);

public sealed class LocalTargetKind : TargetKind<LocalOptions>
{
    public override string Kind => "local";

    public override string Summary => "A folder on this machine (a disk, a mounted share). It is created only when its parent exists.";

    public override bool LivesWithRunner => true;

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("path", "/var/backups/backstop", "The folder; created only when its parent exists (an unmounted share is never filled)") { Default = "required" },
        new("marker", ".backstop-target", "A file that must be in the folder, or the target is refused (a USB disk that is not plugged in)"),
    ];

    public override LocalOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var path = map.PathValue("path") ?? throw new ConfigException(map.Location, $"{map.Path}: the key 'path' is required for a local target");
        var marker = map.String("marker");
        if (marker is not null && (marker.Length == 0 || marker.Contains('/', StringComparison.Ordinal) || marker is "." or ".."))
        {
            throw map.Error("marker", "a file name in the target's folder (like .backstop-target), without '/'");
        }

        return new LocalOptions(path, marker);
    }

    public override ITarget Create(TargetDefinition definition, LocalOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(options);
        return new LocalTarget(definition.Name, options.Path, options.Marker);
    }
}

/// <summary>
/// A directory on a local (or mounted) file system: writes under a temporary name, fsyncs the file, renames it
/// into place and fsyncs the folder, so an object is either whole at its key or absent. Its folder is created only when
/// its parent exists and is not empty (an unmounted share's mount point is not filled silently), and with a
/// <c>marker</c> it is never created: the marker file must be there.
/// </summary>
public sealed class LocalTarget(string name, string root, string? marker = null) : ITarget
{
    private const string PartialSuffix = ".partial";

    public string Name { get; } = name;

    public string Where => root;

    public TargetPlace Place => TargetPlace.Folder(root);

    public string FetchCommand(string key, string localPath) =>
        $"cp -- {ShellWord.Quote(System.IO.Path.Combine(root, key))} {ShellWord.Quote(localPath)}";

    public TargetCapabilities Capabilities { get; } = new(AtomicPublish: true, FreeSpaceQuery: true, ServerSideChecksum: false);

    public Task ProbeAsync(CancellationToken cancellationToken)
    {
        try
        {
            EnsureRoot();
            // A random name created new (O_EXCL|O_NOFOLLOW): a NAS folder may be writable by others, and a link planted
            // under a predictable name must never make a probe truncate the file it points to.
            var probe = Path.Combine(root, $".backstop-probe-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}");
            using (Posix.NewFile.TryCreate(probe) ?? throw new IOException($"{probe} exists"))
            {
            }

            File.Delete(probe);
            return Task.CompletedTask;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BackupException($"target '{Name}': cannot write to {root}: {e.Message}; check the path and its permissions");
        }
    }

    /// <summary>
    /// The target's folder is there, or is created when its parent exists and no marker is configured; the marker is
    /// there when configured. A share unmounted before or during a run is never written under.
    /// </summary>
    private void EnsureRoot()
    {
        if (!Directory.Exists(root))
        {
            var parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(root));
            if (marker is not null)
            {
                throw new BackupException(
                    $"target '{Name}': {root} does not exist, so its marker {marker} is not there: is the disk or share mounted? (Backstop never creates a target folder that has a marker)");
            }

            if (parent is null || !Directory.Exists(parent))
            {
                throw new BackupException(
                    $"target '{Name}': {root} does not exist, nor does its parent {parent}: is the disk or share mounted? Backstop never creates a target's parent folders; create them yourself if this path is right");
            }

            // An empty parent is what a mount point looks like while its disk is not mounted: creating the folder there
            // would put the backups on the wrong disk, hidden once the right one is mounted again. An empty parent that
            // is a mount point (/proc/self/mountinfo: a device comparison misses bind mounts) is a freshly mounted disk.
            if (!Directory.EnumerateFileSystemEntries(parent).Any() && !MountTable.IsMountPoint(parent))
            {
                throw new BackupException(
                    $"target '{Name}': {root} does not exist and its parent {parent} is empty and not a mount point, as an unmounted mount point is: is the disk or share mounted? " +
                    $"If this is right, create {root} yourself (and consider marker: .backstop-target)");
            }

            Directory.CreateDirectory(root, PrivateDirectory);
        }

        if (marker is not null && !File.Exists(Path.Combine(root, marker)))
        {
            throw new BackupException(
                $"target '{Name}': the marker file {marker} is not in {root}: the disk or share is not mounted there, or this is the wrong folder; once it is the right one, create it (touch {Path.Combine(root, marker)})");
        }
    }

    public Task<long?> FreeBytesAsync(CancellationToken cancellationToken) => Task.FromResult<long?>(DiskSpace.FreeBytes(root));

    private const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken)
    {
        var final = PathOf(key);
        var dir = Path.GetDirectoryName(final)!;
        EnsureRoot();
        Directory.CreateDirectory(dir, PrivateDirectory);
        var temp = Path.Combine(dir, $".{Path.GetFileName(final)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}{PartialSuffix}");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 0,
            Options = FileOptions.None,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite, // backups are private: 0600, in folders of 0700
        };
        FileStream stream;
        try
        {
            stream = new FileStream(temp, options);
        }
        catch (DirectoryNotFoundException)
        {
            // Another job's sweep took the folder while it was still empty (serve runs sources side by side): made again.
            Directory.CreateDirectory(dir, PrivateDirectory);
            stream = new FileStream(temp, options);
        }

        return Task.FromResult<ITargetUpload>(new Upload(this, stream, temp, final, dir));
    }

    public Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        try
        {
            var stream = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.Read,
                BufferSize = 0,
                Options = FileOptions.SequentialScan,
            });

            // Every read of a stored object (the read-back after commit, verify --deep, a restore) reads the disk:
            // pages still cached from the write would prove only what memory holds.
            Posix.DropCachedPages(stream.SafeFileHandle);
            return Task.FromResult<Stream>(stream);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ObjectNotFoundException(Name, key);
        }
    }

    public Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken)
    {
        var info = new FileInfo(PathOf(key));
        return Task.FromResult(info.Exists ? new ObjectInfo(key, info.Length, info.LastWriteTimeUtc) : null);
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        if (!Directory.Exists(root))
        {
            yield break;
        }

        // Walk only the folders that can hold the prefix.
        var slash = prefix.LastIndexOf('/');
        var start = slash < 0 ? root : PathOf(prefix[..slash]);
        if (!Directory.Exists(start))
        {
            yield break;
        }

        foreach (var file in Directory.EnumerateFiles(start, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false }))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var key = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            if (!key.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }

            var info = new FileInfo(file);
            if (info.Exists)
            {
                yield return new ObjectInfo(key, info.Length, info.LastWriteTimeUtc);
            }
        }
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        if (!File.Exists(path))
        {
            return Task.CompletedTask;
        }

        File.Delete(path);
        PruneEmptyFolders(Path.GetDirectoryName(path));
        return Task.CompletedTask;
    }

    /// <summary>Empty folders under the prefixes (an interrupted run's snapshot folder made before its first file), deepest first.</summary>
    public Task<IReadOnlyList<string>> SweepLeftoversAsync(IReadOnlyCollection<string> idlePrefixes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idlePrefixes);
        var removed = new List<string>();
        foreach (var prefix in idlePrefixes)
        {
            var top = Path.TrimEndingDirectorySeparator(PathOf(prefix));
            if (!Directory.Exists(top))
            {
                continue;
            }

            var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = false };
            foreach (var dir in Directory.EnumerateDirectories(top, "*", options).OrderByDescending(d => d.Length).ToList())
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    if (!Directory.EnumerateFileSystemEntries(dir).Any())
                    {
                        Directory.Delete(dir);
                        removed.Add($"removed the empty folder {Path.GetRelativePath(root, dir).Replace(Path.DirectorySeparatorChar, '/')}/ from target '{Name}' (left by an interrupted run)");
                    }
                }
                catch (IOException)
                {
                    // written to meanwhile, or gone: not empty, or already swept
                }
            }
        }

        return Task.FromResult<IReadOnlyList<string>>(removed);
    }

    /// <summary>Removes folders left empty, up to (not including) the root.</summary>
    private void PruneEmptyFolders(string? dir)
    {
        var top = Path.TrimEndingDirectorySeparator(root);
        while (dir is not null && dir.Length > top.Length && dir.StartsWith(top, StringComparison.Ordinal)
               && Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any())
        {
            try
            {
                Directory.Delete(dir);
            }
            catch (IOException)
            {
                return; // something was written there meanwhile
            }

            dir = Path.GetDirectoryName(dir);
        }
    }

    private string PathOf(string key)
    {
        if (key.Length == 0 || key.Split('/').Any(p => p is ".." or "." || p.Length == 0 && key.Length > 0 && !key.EndsWith('/')))
        {
            throw new ArgumentException($"invalid object key '{key}'", nameof(key));
        }

        return Path.Combine(root, key.Replace('/', Path.DirectorySeparatorChar));
    }

    private sealed class Upload(LocalTarget target, FileStream stream, string temp, string final, string dir) : ITargetUpload
    {
        private const long WritebackChunk = 8 << 20;
        private bool _committed;
        private long _written;
        private long _writebackStarted;

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            await stream.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            _written += data.Length;
            if (_written - _writebackStarted >= WritebackChunk)
            {
                // Let the disk work while we produce the rest: commit's fsync then waits for the tail only.
                Posix.StartWriteback(stream.SafeFileHandle, _writebackStarted, _written - _writebackStarted);
                _writebackStarted = _written;
            }
        }

        public async Task CommitAsync(CancellationToken cancellationToken)
        {
            if (_written == 0)
            {
                throw new BackupException($"target '{target.Name}': refusing to store {Path.GetFileName(final)} empty");
            }

            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            stream.Flush(flushToDisk: true);
            await stream.DisposeAsync().ConfigureAwait(false);
            File.Move(temp, final, overwrite: true); // rename(2): the old object until this instant, the new one after
            Posix.FsyncDirectory(dir);
            _committed = true;
        }

        public async ValueTask DisposeAsync()
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            if (!_committed)
            {
                File.Delete(temp);
                target.PruneEmptyFolders(dir);
            }
        }

    }
}
