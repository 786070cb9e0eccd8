using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using System.Formats.Tar;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Util;

namespace Backstop.Sources.Files;

public sealed record FilesOptions(IReadOnlyList<string> Paths, IReadOnlyList<string> Exclude)
{
    internal IReadOnlyList<Glob> Globs { get; } = Exclude.Select(e => new Glob(e)).ToList();
}

/// <summary>
/// Paths as one pax tar (<c>files.tar</c>): folders, symlinks, hard links, modes, owners and times, so that
/// <c>tar -x</c> alone restores it. A file that changes or vanishes while read is a warning; one that cannot be
/// read fails the artifact unless excluded.
/// </summary>
public sealed partial class FilesSourceKind : SourceKind<FilesOptions>
{
    public override string Kind => "files";

    public override string Summary => "Folders and files, into one tar per snapshot (`files.tar`).";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("paths", "[/srv/app, /etc/app]", "Folders and files to back up") { Default = "required" },
        new("exclude", "[\"*.log\", \"cache/**\"]", "Glob patterns left out (relative to each path; ** crosses folders)"),
        new("drill.spot_check", "10%", "The share of files a drill compares byte for byte with the live ones") { Default = "every file's hash" },
    ];

    public override IReadOnlyList<string> Facts { get; } = ["files", "bytes", "directories", "symlinks"];

    public override IReadOnlyList<string> CountFacts { get; } = ["files"];

    public override bool ChecksMounts => true;

    public override FilesOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var paths = map.StringList("paths");
        if (paths is null || paths.Count == 0)
        {
            throw new ConfigException(map.LocationOf("paths"), $"{map.Path}.paths: at least one path to back up is required");
        }

        var exclude = map.StringList("exclude") ?? [];
        foreach (var e in exclude)
        {
            if (e.Trim().Length == 0)
            {
                throw map.Error("exclude", "an exclude pattern cannot be empty");
            }
        }

        try
        {
            return new FilesOptions(paths.Select(map.ResolvePath).ToList(), exclude);
        }
        catch (ArgumentException e)
        {
            throw map.Error("exclude", $"a pattern is not valid ({e.Message})");
        }
    }

    public override ISource Create(SourceDefinition definition, FilesOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new FilesSource(definition.Name, options, definition.Expect.Mount);
    }
}

internal sealed partial class FilesSource(string name, FilesOptions options, bool requireMounts = false, string artifact = FilesSource.ArtifactName)
    : ISource, IStagedRestorable, IPartialRestore
{
    private Func<string, string?>? _select;

    /// <summary>
    /// Part of the tar: entries whose absolute path (or a folder above it) an include glob matches, and with a strip
    /// prefix only those under it, named relative to it. Facts are then said as selected_*, not compared with the backup's.
    /// </summary>
    public void Select(IReadOnlyList<string> include, string? stripPrefix)
    {
        var globs = include.Select(g => new Glob(g)).ToList();
        var prefix = stripPrefix?.Trim('/');
        _select = entry =>
        {
            var absolute = "/" + entry.TrimEnd('/');
            if (globs.Count > 0 && !globs.Any(g => Ancestors(absolute).Any(g.Matches)))
            {
                return null;
            }

            if (string.IsNullOrEmpty(prefix))
            {
                return entry;
            }

            var relative = entry.TrimEnd('/');
            return relative == prefix ? "." : relative.StartsWith(prefix + "/", StringComparison.Ordinal) ? relative[(prefix.Length + 1)..] : null;
        };
    }

    private static IEnumerable<string> Ancestors(string path)
    {
        for (var p = path; p.Length > 1; p = p[..Math.Max(p.LastIndexOf('/'), 1)])
        {
            yield return p;
        }
    }

    /// <summary>Extracts into a staging folder inside the destination; publishing moves its top-level names into place.</summary>
    public async Task<StagedRestore> StageAsync(string artifactName, Stream content, string destination, bool force, CancellationToken cancellationToken)
    {
        var folder = Common.Staging.Folder.Begin(destination, force);
        try
        {
            var extraction = await TarExtractor.ExtractAsync(content, folder.Path, cancellationToken, _select).ConfigureAwait(false);
            var facts = _select is null ? extraction.Facts : extraction.Facts.ToDictionary(f => "selected_" + f.Key, f => f.Value);
            if (_select is not null && facts["selected_files"] + facts["selected_directories"] + facts["selected_symlinks"] == 0)
            {
                throw new BackupException("nothing in the snapshot matches --include/--strip-prefix; 'backstop ls SNAPSHOT' shows its paths");
            }

            return folder.Staged(facts, () => TarExtractor.ApplyRoot(folder.Destination, extraction.Root));
        }
        catch
        {
            folder.Discard();
            throw;
        }
    }

    internal const string ArtifactName = "files.tar";
    private readonly IReadOnlyList<Glob> _exclude = options.Globs;

    public Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        foreach (var p in options.Paths)
        {
            if (!Posix.TryLstat(p, out _, out var error))
            {
                throw new BackupException($"source '{name}': path {p} cannot be read ({error}); fix 'paths' or the permissions");
            }
        }

        if (requireMounts)
        {
            var points = MountTable.MountPoints();
            var unmounted = options.Paths.Where(p => !MountTable.IsMountPoint(p, points)).ToList();
            if (unmounted.Count > 0)
            {
                throw new BackupException(
                    $"source '{name}': {string.Join(", ", unmounted)} {(unmounted.Count == 1 ? "is" : "are")} not a mount point (expect.mount is true): the disk or share is not mounted; mount it, or remove expect.mount if the path is not meant to be one");
            }
        }

        return Task.FromResult(SourcePreflight.None);
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        await using var writer = await sink.BeginArtifactAsync(artifact, cancellationToken).ConfigureAwait(false);
        var facts = new Walker(name, _exclude, sink, cancellationToken);
        using (var tar = new TarWriter(writer.Content, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var root in options.Paths)
            {
                facts.Walk(tar, root);
            }
        }

        await writer.CompleteAsync(facts.Facts(), cancellationToken).ConfigureAwait(false);
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => artifactName == artifact ? new TarValidator() : null;

    public string RestoreRecipe(string artifactName, string storedFile) => $"mkdir -p DEST && zstd -dc {storedFile} | tar -xpf - -C DEST";

    /// <summary>Walks the paths depth-first in name order and writes each entry.</summary>
    private sealed class Walker(string source, IReadOnlyList<Glob> exclude, ICaptureSink sink, CancellationToken cancellationToken)
    {
        private readonly Dictionary<(ulong, ulong), string> _hardLinks = [];
        private long _files;
        private long _bytes;
        private long _directories;
        private long _symlinks;
        private long _specials;

        public Dictionary<string, long> Facts() => new()
        {
            ["files"] = _files,
            ["bytes"] = _bytes,
            ["directories"] = _directories,
            ["symlinks"] = _symlinks,
            ["specials"] = _specials,
        };

        public void Walk(TarWriter tar, string root)
        {
            // The root by its path (as configured); everything under it relative to the folders held open above it.
            if (!Posix.TryLstat(root, out var rootStatus, out var rootError))
            {
                sink.Warn($"{root} vanished before it was read ({rootError})");
                return;
            }

            if (!rootStatus.IsDirectory)
            {
                WriteEntry(tar, null, root, root, rootStatus);
                return;
            }

            Write(tar, Entry(TarEntryType.Directory, EntryName(root), rootStatus));
            _directories++;
            var top = PinnedDirectory.OpenRoot(root, rootStatus, out var problem, out _);
            if (top is null)
            {
                throw Unreadable(root, problem ?? "it cannot be opened");
            }

            var stack = new Stack<(PinnedDirectory Folder, string[] Names, int Next)>();
            try
            {
                stack.Push((top, List(top), 0));
                while (stack.Count > 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var (folder, names, next) = stack.Pop();
                    if (next == names.Length)
                    {
                        folder.Dispose();
                        continue;
                    }

                    stack.Push((folder, names, next + 1));
                    var name = names[next];
                    var path = folder.Combine(name);
                    if (exclude.Any(g => g.Matches(path)))
                    {
                        continue;
                    }

                    if (!folder.TryLstat(name, out var st, out var error))
                    {
                        if (path.Contains('\uFFFD', StringComparison.Ordinal))
                        {
                            // Listed by the folder but not found under the name .NET decoded: its bytes are not UTF-8. It
                            // cannot be stored under its own name, and skipping it would be a backup missing a file.
                            throw Unreadable(path, "its name is not valid UTF-8, and backstop stores names as UTF-8 (pax); rename it (convmv -f latin1 -t utf8) or exclude it");
                        }

                        sink.Warn($"{path} vanished before it was read ({error})");
                        continue;
                    }

                    if (!st.IsDirectory)
                    {
                        WriteEntry(tar, folder, name, path, st);
                        continue;
                    }

                    var child = folder.OpenChild(name, st, out problem, out var kind);
                    if (child is null)
                    {
                        if (kind == OpenProblem.Unreadable)
                        {
                            throw Unreadable(path, problem ?? "it cannot be opened");
                        }

                        // Gone, or swapped for a symlink (or anything else) since it was listed: never followed.
                        sink.Warn(kind == OpenProblem.Vanished ? $"{path}/ vanished before it was read" : $"{path}/ was not read: {problem}; it is not in this backup");
                        continue;
                    }

                    Write(tar, Entry(TarEntryType.Directory, EntryName(path), st));
                    _directories++;
                    string[] children;
                    try
                    {
                        children = List(child);
                    }
                    catch
                    {
                        child.Dispose();
                        throw;
                    }

                    stack.Push((child, children, 0));
                }
            }
            finally
            {
                foreach (var (folder, _, _) in stack)
                {
                    folder.Dispose();
                }
            }
        }

        private string[] List(PinnedDirectory folder)
        {
            try
            {
                return folder.Names();
            }
            catch (DirectoryNotFoundException)
            {
                sink.Warn($"{folder.Path}/ vanished while it was read");
                return [];
            }
            catch (UnauthorizedAccessException e)
            {
                throw Unreadable(folder.Path, e.Message);
            }
        }

        private static string EntryName(string path) => path.TrimStart('/') is { Length: > 0 } name ? name : ".";

        /// <summary>A symlink, a regular file or a special file, in <paramref name="folder"/> (null: a root given by its path).</summary>
        private void WriteEntry(TarWriter tar, PinnedDirectory? folder, string name, string path, FileStatus st)
        {
            if (st.IsSymlink)
            {
                Write(tar, Entry(TarEntryType.SymbolicLink, EntryName(path), st, folder?.LinkTarget(name) ?? new FileInfo(path).LinkTarget ?? ""));
                _symlinks++;
            }
            else if (st.IsRegular)
            {
                WriteFile(tar, folder, name, path, EntryName(path), st);
            }
            else if (st.Type is 0x1000 or 0x2000 or 0x6000)
            {
                // A FIFO, a character or a block device: its name, mode, owner and device number (no data), as GNU tar keeps them.
                var entry = Entry(st.Type switch { 0x1000 => TarEntryType.Fifo, 0x2000 => TarEntryType.CharacterDevice, _ => TarEntryType.BlockDevice },
                    EntryName(path), st);
                if (st.Type != 0x1000)
                {
                    entry.DeviceMajor = st.RdevMajor;
                    entry.DeviceMinor = st.RdevMinor;
                }

                Write(tar, entry);
                _specials++;
            }
            else
            {
                sink.Warn($"{path} is a {TypeName(st)}, which is not backed up (tar has no form for it)");
            }
        }

        private void WriteFile(TarWriter tar, PinnedDirectory? folder, string name, string path, string entryName, FileStatus st)
        {
            if (st.Links > 1 && _hardLinks.TryGetValue((st.Device, st.Inode), out var first))
            {
                Write(tar, Entry(TarEntryType.HardLink, entryName, st, first));
                _files++;
                return;
            }

            var handle = folder is not null
                ? folder.OpenFile(name, st, out var problem, out var kind)
                : PinnedDirectory.OpenFile(Posix.Open(path, Posix.ORdonly | Posix.ONofollow | Posix.ONonblock | Posix.OCloexec, 0), st, out problem, out kind);
            switch (kind)
            {
                case OpenProblem.Vanished:
                    sink.Warn($"{path} vanished before it was read");
                    return;
                case OpenProblem.Replaced:
                    // Swapped for a symlink, a FIFO or another file since it was listed: never followed, never waited on.
                    sink.Warn($"{path} was not read: {problem}; it is not in this backup");
                    return;
                case OpenProblem.Unreadable:
                    throw Unreadable(path, problem ?? "it cannot be opened");
            }

            var stream = new FileStream(handle!, FileAccess.Read, bufferSize: 0);
            var entry = Entry(TarEntryType.RegularFile, entryName, st);
            using (var data = new FixedLengthStream(stream, st.Size))
            {
                entry.DataStream = data;
                Write(tar, entry);
                if (data.Shrank || data.Grew)
                {
                    sink.Warn($"{path} {(data.Shrank ? "shrank" : "grew")} while it was read; the copy holds its first {st.Size} bytes");
                }
                else if (Posix.TryFstat((int)handle!.DangerousGetHandle(), out var after, out _)
                         && (after.MtimeSeconds != st.MtimeSeconds || after.MtimeNanos != st.MtimeNanos || after.Size != st.Size))
                {
                    sink.Warn($"{path} changed while it was read; the copy may mix old and new content");
                }
            }

            if (st.Links > 1)
            {
                _hardLinks[(st.Device, st.Inode)] = entryName;
            }

            _files++;
            _bytes += st.Size;
        }

        private BackupException Unreadable(string path, string why) =>
            new($"source '{source}': cannot read {path} ({why}); fix its permissions or add it to 'exclude'");

        /// <summary>
        /// A pax entry; a GNU one when the name or link target holds a newline: .NET's reader refuses a pax record whose
        /// value holds one (a valid record, which GNU tar reads), while GNU long-name entries carry any byte but NUL.
        /// </summary>
        private static PosixTarEntry Entry(TarEntryType type, string name, FileStatus st, string? linkName = null)
        {
            PosixTarEntry entry = name.Contains('\n', StringComparison.Ordinal) || linkName?.Contains('\n', StringComparison.Ordinal) == true
                ? new GnuTarEntry(type, name)
                : new PaxTarEntry(type, name);
            if (linkName is not null)
            {
                entry.LinkName = linkName;
            }

            entry.Mode = (UnixFileMode)(st.Mode & 0xFFF);
            entry.Uid = (int)st.Uid;
            entry.Gid = (int)st.Gid;
            entry.UserName = Posix.UserName(st.Uid);
            entry.GroupName = Posix.GroupName(st.Gid);
            entry.ModificationTime = st.Modified;
            return entry;
        }

        private static void Write(TarWriter tar, TarEntry entry) => tar.WriteEntry(entry);

        private static string TypeName(FileStatus st) => st.Type switch
        {
            0xC000 => "socket",
            0x1000 => "named pipe",
            0x2000 => "character device",
            0x6000 => "block device",
            _ => "special file",
        };
    }

    /// <summary>
    /// Re-reads the tar and counts its files and bytes, which must be what the capture counted. Backstop's own pax
    /// reader: it checks every header's checksum, requires the end-of-archive blocks, and skips content without copying
    /// where the stream allows (the run's check); a stored copy read by <c>verify --deep</c> is hostile input to it.
    /// </summary>
    private sealed class TarValidator : IArtifactValidator
    {
        public Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken) =>
            Task.Run<IReadOnlyDictionary<string, long>>(() =>
            {
                long files = 0, bytes = 0;
                var reader = new Pax.PaxReader(content);
                while (reader.Next() is { } entry)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    if (entry.Type is Pax.PaxType.File)
                    {
                        files++;
                        bytes += entry.Size;
                    }
                    else if (entry.Type == Pax.PaxType.HardLink)
                    {
                        files++;
                    }
                }

                return new Dictionary<string, long> { ["files"] = files, ["bytes"] = bytes };
            }, cancellationToken);
    }
}
