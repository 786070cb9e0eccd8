using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;

namespace Backstop.Sources.Restoring;

/// <summary>
/// Where a file-shaped restore is written before its copy has proven its SHA-256: a hidden folder inside the
/// destination folder, or a hidden file beside the destination file. Both are on the destination's file system, so
/// publishing is a rename per top-level name, never a copy; discarding removes the staging and any folder the restore
/// created. A staging left by a killed restore (its process gone) is removed by the next restore into that place.
/// </summary>
public static class Staging
{
    public const string Prefix = ".backstop-restore-";

    /// <summary>A folder restore: checks the destination, creates it when missing, and the staging folder inside it.</summary>
    public sealed class Folder
    {
        private readonly string? _createdTop;

        private Folder(string destination, string path, string? createdTop) => (Destination, Path, _createdTop) = (destination, path, createdTop);

        /// <summary>The destination folder (absolute).</summary>
        public string Destination { get; }

        /// <summary>The staging folder: write here.</summary>
        public string Path { get; }

        public static Folder Begin(string destination, bool force)
        {
            var dir = System.IO.Path.GetFullPath(destination);
            if (File.Exists(dir))
            {
                throw new DestinationException($"--to {destination} is a file; restore into a folder");
            }

            var createdTop = TopMissing(dir);
            if (createdTop is null)
            {
                RemoveStale(dir);
                if (!force && Directory.EnumerateFileSystemEntries(dir).Any())
                {
                    throw new DestinationException($"--to {destination} is not empty; choose an empty folder, or add --force to restore over it");
                }
            }

            Directory.CreateDirectory(dir);
            var staging = System.IO.Path.Combine(dir, StagingName());
            Directory.CreateDirectory(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return new Folder(dir, staging, createdTop);
        }

        /// <summary>
        /// Moves everything staged into the destination. A name already there (with --force) is replaced when it is a
        /// file or symlink, merged when both are folders, and refused when a folder would be replaced by a file.
        /// </summary>
        public void Publish()
        {
            RefuseConflicts(Path, Destination); // before anything moves: a conflict found midway would leave half a restore
            Merge(Path, Destination);
            Directory.Delete(Path);
        }

        public void Discard()
        {
            RemoveTree(Path);
            RemoveEmpty(Destination, _createdTop);
        }

        public StagedRestore Staged(IReadOnlyDictionary<string, long> found, Action? afterPublish = null) =>
            new(found, () =>
            {
                Publish();
                afterPublish?.Invoke();
            }, Discard);
    }

    /// <summary>
    /// A file restore: the content goes to a hidden file beside <paramref name="path"/>, renamed over it on publish.
    /// Folders created for it are removed again, when still empty, if the restore is not published.
    /// </summary>
    public static async Task<Aside> WriteAsideAsync(string path, Stream content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        var dir = System.IO.Path.GetDirectoryName(path)!;
        var createdTop = TopMissing(dir);
        Directory.CreateDirectory(dir);
        RemoveStale(dir);
        var aside = new Aside(System.IO.Path.Combine(dir, StagingName() + "-" + System.IO.Path.GetFileName(path)), path, createdTop);
        try
        {
            await using var file = new FileStream(aside.Temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            await content.CopyToAsync(file, 1 << 18, cancellationToken).ConfigureAwait(false);
            file.Flush(flushToDisk: true);
            aside.Bytes = file.Length;
            return aside;
        }
        catch
        {
            aside.Remove();
            throw;
        }
    }

    /// <summary>A file written beside its destination by <see cref="WriteAsideAsync"/>, not yet in place.</summary>
    public sealed class Aside(string temp, string path, string? createdTop)
    {
        /// <summary>The hidden file: read it back here.</summary>
        public string Temp { get; } = temp;

        public long Bytes { get; internal set; }

        /// <summary>Deletes the hidden file and the folders created for it that are still empty.</summary>
        public void Remove()
        {
            File.Delete(Temp);
            RemoveEmpty(System.IO.Path.GetDirectoryName(Temp)!, createdTop);
        }

        /// <summary>What publishes (a rename over the destination's name) or discards it.</summary>
        public StagedRestore Staged(IReadOnlyDictionary<string, long> found) => new(found, () => File.Move(Temp, path, overwrite: true), Remove);
    }

    /// <summary>Removes <paramref name="dir"/> and its parents up to <paramref name="createdTop"/> (folders a restore created) while they are empty.</summary>
    private static void RemoveEmpty(string dir, string? createdTop)
    {
        for (var d = dir; createdTop is not null && d is not null && d.Length >= createdTop.Length; d = System.IO.Path.GetDirectoryName(d))
        {
            if (!Directory.Exists(d) || Directory.EnumerateFileSystemEntries(d).Any())
            {
                return;
            }

            Directory.Delete(d);
        }
    }

    /// <summary>The outermost folder of <paramref name="dir"/> that does not exist yet (null when it exists).</summary>
    private static string? TopMissing(string dir)
    {
        string? top = null;
        for (var d = dir; d is not null && !Directory.Exists(d); d = System.IO.Path.GetDirectoryName(d))
        {
            top = d;
        }

        return top;
    }

    private static string StagingName() => Stale.Name(Prefix);

    /// <summary>Removes stagings in <paramref name="dir"/> whose restore process is gone.</summary>
    private static void RemoveStale(string dir)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir, Prefix + "*"))
        {
            if (Stale.OwnerIsGone(System.IO.Path.GetFileName(entry), Prefix))
            {
                if (Posix.TryLstat(entry, out var st, out _) && st.IsDirectory)
                {
                    RemoveTree(entry);
                }
                else
                {
                    File.Delete(entry);
                }
            }
        }
    }

    private static void Merge(string from, string to)
    {
        foreach (var entry in Directory.GetFileSystemEntries(from))
        {
            var target = System.IO.Path.Combine(to, System.IO.Path.GetFileName(entry));
            if (!Posix.TryLstat(entry, out var staged, out var error))
            {
                throw new IOException($"cannot read {entry}: {error}");
            }

            if (!Posix.TryLstat(target, out var there, out _))
            {
                MoveInto(entry, target, staged);
                continue;
            }

            if (staged.IsDirectory && there.IsDirectory)
            {
                // Merge, then give the folder the archive's mode and time (read before its content moved out). Both
                // sides need write permission meanwhile (a non-root restore over read-only folders).
                MakeWritable(entry, staged);
                MakeWritable(target, there);
                Merge(entry, target);
                Directory.Delete(entry);
                ApplyStatus(target, staged);
                continue;
            }

            Refuse(target, staged, there);
            if (!TryRename(entry, target)) // replaces the file or symlink in one step
            {
                CopyAcross(entry, target, staged);
            }
        }
    }

    /// <summary>Every name where the staging and the destination disagree on folder or not, found before anything moves.</summary>
    private static void RefuseConflicts(string from, string to)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(from))
        {
            var target = System.IO.Path.Combine(to, System.IO.Path.GetFileName(entry));
            if (!Posix.TryLstat(target, out var there, out _) || !Posix.TryLstat(entry, out var staged, out _))
            {
                continue;
            }

            if (staged.IsDirectory && there.IsDirectory)
            {
                // An archive folder without owner read (0311) is listed all the same, then given its mode back (the
                // merge reads it to apply it later).
                var closed = (staged.Mode & 0x1C0) != 0x1C0;
                if (closed)
                {
                    MakeWritable(entry, staged);
                }

                try
                {
                    RefuseConflicts(entry, target);
                }
                finally
                {
                    if (closed)
                    {
                        File.SetUnixFileMode(entry, (UnixFileMode)(staged.Mode & 0xFFF));
                    }
                }

                continue;
            }

            Refuse(target, staged, there);
        }
    }

    private static void Refuse(string target, FileStatus staged, FileStatus there)
    {
        if (there.IsDirectory)
        {
            throw new DestinationException($"cannot restore {target}: a folder is there and the backup has a file; remove it, or restore into an empty folder (nothing was moved)");
        }

        if (staged.IsDirectory)
        {
            throw new DestinationException($"cannot restore the folder {target}: a file or symlink is there; remove it, or restore into an empty folder (nothing was moved)");
        }
    }

    /// <summary>Moving a folder to another parent rewrites its '..': a folder restored without write permission gets it for the move.</summary>
    private static void MoveInto(string entry, string target, FileStatus staged)
    {
        var readOnlyFolder = staged.IsDirectory && (staged.Mode & 0x80) == 0 && Environment.UserName != "root";
        if (readOnlyFolder)
        {
            File.SetUnixFileMode(entry, (UnixFileMode)((staged.Mode | 0x80) & 0xFFF));
        }

        if (!TryRename(entry, target))
        {
            CopyAcross(entry, target, staged);
            return;
        }

        if (readOnlyFolder)
        {
            File.SetUnixFileMode(target, (UnixFileMode)(staged.Mode & 0xFFF));
            File.SetLastWriteTimeUtc(target, staged.Modified.UtcDateTime);
        }
    }

    private const int CrossDevice = 18; // EXDEV

    /// <summary>rename(2), or false when <paramref name="target"/> is on another file system (a mount point inside the destination).</summary>
    private static bool TryRename(string entry, string target)
    {
        try
        {
            Posix.Rename(entry, target);
            return true;
        }
        catch (IOException e) when (e.HResult == CrossDevice)
        {
            return false;
        }
    }

    /// <summary>
    /// Publishing onto another file system: what rename cannot move is copied, a file to a hidden name beside its
    /// destination then renamed over it (so a reader never sees half a file), a folder created then merged; owner,
    /// mode and time are the archive's. Names hard-linked together in the archive become separate files there.
    /// </summary>
    private static void CopyAcross(string entry, string target, FileStatus staged)
    {
        if (staged.IsDirectory)
        {
            Directory.CreateDirectory(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            Merge(entry, target);
            Directory.Delete(entry);
            ApplyStatus(target, staged);
            return;
        }

        var temp = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(target)!, StagingName() + "-" + System.IO.Path.GetFileName(target));
        try
        {
            if (staged.IsSymlink)
            {
                File.CreateSymbolicLink(temp, new FileInfo(entry).LinkTarget!);
                if (Environment.UserName == "root")
                {
                    Posix.Lchown(temp, (int)staged.Uid, (int)staged.Gid);
                }
            }
            else if (staged.IsRegular)
            {
                File.Copy(entry, temp);
                ApplyStatus(temp, staged);
            }
            else
            {
                throw new IOException($"cannot move {entry} to {target}: it is on another file system, and only files, folders and symlinks are copied across");
            }

            Posix.Rename(temp, target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) // name the destination, not the hidden copy
        {
            File.Delete(temp);
            var reason = e is IOException && e.HResult is > 0 and < 4096 ? System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(e.HResult)
                : e is UnauthorizedAccessException ? "permission denied" : e.Message;
            throw new IOException($"cannot write {target} (another file system inside the destination): {reason}", e.HResult);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }

        File.Delete(entry);
    }

    private static void ApplyStatus(string path, FileStatus st)
    {
        if (Environment.UserName == "root")
        {
            Posix.Lchown(path, (int)st.Uid, (int)st.Gid);
        }

        File.SetUnixFileMode(path, (UnixFileMode)(st.Mode & 0xFFF));
        File.SetLastWriteTimeUtc(path, st.Modified.UtcDateTime);
    }

    private static void MakeWritable(string dir, FileStatus st)
    {
        if ((st.Mode & 0x1C0) != 0x1C0)
        {
            File.SetUnixFileMode(dir, (UnixFileMode)((st.Mode | 0x1C0) & 0xFFF));
        }
    }

    /// <summary>Removes a tree without following symlinks, also folders restored without write permission.</summary>
    private static void RemoveTree(string path)
    {
        if (!Directory.Exists(path))
        {
            return;
        }

        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            OpenUp(path);
            Directory.Delete(path, recursive: true);
        }
    }

    private static void OpenUp(string dir)
    {
        if (!Posix.TryLstat(dir, out var st, out _) || !st.IsDirectory)
        {
            return;
        }

        MakeWritable(dir, st);
        foreach (var sub in Directory.EnumerateDirectories(dir))
        {
            OpenUp(sub);
        }
    }
}
