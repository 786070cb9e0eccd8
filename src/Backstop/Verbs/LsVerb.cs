using System.CommandLine;
using System.Globalization;
using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing;
using Backstop.Core.Sealing.Age;
using Backstop.Core.FileSystem;
using Backstop.Core.Streams;
using Backstop.Core.Tar;

namespace Backstop.Cli.Verbs;

/// <summary>
/// <c>ls SNAPSHOT [PATH]</c>: what a snapshot's tar artifacts hold, streamed from the first verified copy that opens
/// (decrypted and decompressed on the way, never written anywhere), one line per entry as <c>tar -tv</c> prints it.
/// A listing proves nothing about the copy: <c>verify --deep</c> and <c>restore</c> check its hash.
/// </summary>
internal static class LsVerb
{
    /// <summary>The <c>ls</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var lsSnapshot = new Argument<string>("SNAPSHOT") { Description = "A snapshot id, a prefix only it has, or latest (with --source)" };
        var lsPath = new Argument<string?>("PATH") { Description = "Only this path and what is under it (as backed up: /srv/app)", Arity = ArgumentArity.ZeroOrOne };
        var lsSources = new Option<string[]>("--source", "-s") { Description = "The source whose snapshot is meant (for latest, or to narrow a prefix)", HelpName = "NAME" };
        var lsArtifact = new Option<string?>("--artifact") { Description = "Only this artifact (see show); by default every tar artifact", HelpName = "NAME" };
        var ls = new Command("ls", "What a snapshot's tar artifacts hold, streamed from a stored copy: mode, owner, size, time, name (--json: one object per entry)")
        {
            lsSnapshot,
            lsPath,
            lsSources,
            lsArtifact
        };
        ls.SetAction((p, ct) => LsVerb.ExecuteAsync(Context.From(p), p.GetValue(lsSnapshot)!, p.GetValue(lsPath), p.GetValue(lsSources) ?? [], p.GetValue(lsArtifact), ct));
        return ls;
    }

    /// <summary>Whether a tar entry is the path asked for or under it; a relative path may start at any folder.</summary>
    private static bool Under(string entry, string path, bool relative)
    {
        if (entry == path || entry.StartsWith(path + "/", StringComparison.Ordinal))
        {
            return true;
        }

        if (!relative)
        {
            return false;
        }

        return ("/" + entry + "/").Contains("/" + path + "/", StringComparison.Ordinal);
    }

    public static async Task<int> ExecuteAsync(Context context, string name, string? path, IReadOnlyCollection<string> only, string? artifact, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        using var catalog = Context.OpenCatalog(config);
        var snapshot = Context.FindSnapshot(config, catalog, name, only);
        var tars = snapshot.Artifacts.Where(a => artifact is null ? a.Name.EndsWith(".tar", StringComparison.Ordinal) : a.Name == artifact).ToList();
        if (tars.Count == 0)
        {
            throw new ConfigException(artifact is null
                ? $"snapshot {snapshot.Id} holds no tar artifact to list ({string.Join(", ", snapshot.Artifacts.Select(a => a.Name))}); 'backstop show {snapshot.Id}' describes it"
                : $"--artifact {artifact}: snapshot {snapshot.Id} has {string.Join(", ", snapshot.Artifacts.Select(a => a.Name))}");
        }

        // An absolute PATH is a path in the backed-up tree; a relative one (ls latest channels) is any folder or file of
        // that name, at whatever depth under the source's own paths (as find -path '*/channels' finds it).
        var prefix = path?.Trim('/');
        var relative = path is not null && !path.StartsWith('/');
        var identities = Sealed.Identities(config.Encryption);
        var entries = new List<LsEntryDocument>();
        var shown = 0;
        foreach (var a in tars)
        {
            var levels = a.Level > 0 ? Core.Restore.Restorer.Levels(snapshot, a) : [(snapshot, a)];
            await foreach (var (e, level) in EntriesAsync(config, levels, identities, cancellationToken).ConfigureAwait(false))
            {
                var entryName = RawFs.Display(RawFs.FromBytes(e.Name)).TrimEnd('/');
                if (!string.IsNullOrEmpty(prefix) && !Under(entryName, prefix, relative))
                {
                    continue;
                }

                shown++;
                var type = e.Type switch
                {
                    PaxType.Directory => "directory",
                    PaxType.SymbolicLink => "symlink",
                    PaxType.HardLink => "hardlink",
                    PaxType.File => "file",
                    PaxType.Fifo => "fifo",
                    PaxType.CharacterDevice => "characterdevice",
                    _ => "blockdevice",
                };
                var linkName = RawFs.Display(RawFs.FromBytes(e.LinkName));
                var mtime = DateTimeOffset.UnixEpoch.AddTicks(e.MTimeNs / 100);
                if (context.Json)
                {
                    entries.Add(new LsEntryDocument(a.Name, "/" + entryName, type, Convert.ToString(e.Mode, 8).PadLeft(4, '0'), e.Uid, e.Gid, e.Size, mtime,
                        linkName.Length > 0 ? linkName : null, e.Xattrs.Count > 0 ? e.Xattrs.Select(x => x.Key).ToList() : null,
                        e.AclAccess is not null || e.AclDefault is not null ? true : null, e.Sparse is not null ? true : null, level.Artifact.Level, level.Snapshot.Id));
                }
                else
                {
                    // Names come from an archive: a control character in one (an escape sequence) is shown as '?', never sent to the terminal.
                    var link = e.Type is PaxType.SymbolicLink ? $" -> {Core.Text.ServerText.Escape(linkName)}"
                        : e.Type is PaxType.HardLink ? $" link to /{Core.Text.ServerText.Escape(linkName)}" : "";
                    var where = levels.Count > 1 && e.Type != PaxType.Directory ? $"  (level {level.Artifact.Level}, {level.Snapshot.Id})" : "";
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{Mode(e)} {e.Uid}/{e.Gid} {e.Size,12} {mtime.UtcDateTime:yyyy-MM-dd HH:mm} /{Core.Text.ServerText.Escape(entryName)}{link}{where}"));
                }
            }
        }

        if (context.Json)
        {
            JsonOutput.Write(new LsDocument(snapshot.Id, snapshot.Source, entries));
        }
        else if (shown == 0 && prefix is not null)
        {
            await Console.Error.WriteLineAsync($"backstop: nothing under /{prefix} in snapshot {snapshot.Id}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        return ExitCodes.Ok;
    }

    /// <summary>
    /// The entries of an artifact as its snapshot holds them, with the level that stored each. A full: its tar, in order.
    /// A level of a chain: the newest level's folders say which names are there (their dumpdirs); each one's entry is
    /// taken from the newest level that stored it, read newest first; the listing is in name order.
    /// </summary>
    private static async IAsyncEnumerable<(PaxEntry Entry, (SnapshotInfo Snapshot, ArtifactInfo Artifact) Level)> EntriesAsync(BackstopConfig config,
        List<(SnapshotInfo Snapshot, ArtifactInfo Artifact)> levels, IReadOnlyList<AgeIdentity> identities,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (levels.Count == 1)
        {
            await using var content = await OpenAsync(config, levels[0].Snapshot, levels[0].Artifact, identities, cancellationToken).ConfigureAwait(false);
            var reader = new PaxReader(new ForwardOnlyStream(content));
            while (await Task.Run(reader.Next, cancellationToken).ConfigureAwait(false) is { } e)
            {
                yield return (e, levels[0]);
            }

            yield break;
        }

        var present = new HashSet<string>(StringComparer.Ordinal);
        var folders = new HashSet<string>(StringComparer.Ordinal);
        var found = new Dictionary<string, (PaxEntry, (SnapshotInfo, ArtifactInfo))>(StringComparer.Ordinal);
        for (var i = levels.Count - 1; i >= 0; i--)
        {
            await using var content = await OpenAsync(config, levels[i].Snapshot, levels[i].Artifact, identities, cancellationToken).ConfigureAwait(false);
            var reader = new PaxReader(new ForwardOnlyStream(content));
            var newest = i == levels.Count - 1;
            while (await Task.Run(reader.Next, cancellationToken).ConfigureAwait(false) is { } e)
            {
                var name = RawFs.FromBytes(e.Name).TrimEnd('/');
                if (newest && e.Type == PaxType.Directory)
                {
                    folders.Add(name);
                    present.Add(name);
                    foreach (var child in e.DumpDirNames().Select(n => RawFs.FromBytes(n)))
                    {
                        present.Add(name == "." ? child : name + "/" + child);
                    }
                }

                // Under a folder of the newest level, a name is there only if that level lists it; a root given as a file is not under one.
                var governed = name != "." && folders.Contains("."); // a backup of '/': its top folder's entry is "."
                for (var slash = name.LastIndexOf('/'); slash > 0 && !governed; slash = name.LastIndexOf('/', slash - 1))
                {
                    governed = folders.Contains(name[..slash]);
                }

                if ((present.Contains(name) || !governed) && !found.ContainsKey(name))
                {
                    found[name] = (e, levels[i]);
                }
            }
        }

        foreach (var (_, value) in found.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            yield return value;
        }
    }

    /// <summary>The artifact's content from the first verified copy that opens.</summary>
    private static async Task<Stream> OpenAsync(BackstopConfig config, SnapshotInfo snapshot, ArtifactInfo a, IReadOnlyList<AgeIdentity> identities, CancellationToken ct)
    {
        var problems = new List<string>();
        foreach (var copy in a.Copies.Where(c => c.State == CopyState.Verified))
        {
            if (config.Targets.FirstOrDefault(t => t.Name == copy.Target) is not { } definition)
            {
                continue;
            }

            Stream? stored = null;
            try
            {
                var target = Core.Storage.GuardedTarget.Create(Plugins.Registry, definition);
                stored = await target.OpenReadAsync(Core.Storage.Layout.Key(snapshot.Source, snapshot.Id, a.FileName), ct).ConfigureAwait(false);
                return Sealed.Open(stored, a.FileName, identities);
            }
            catch (Exception e) when (e is BackupException or IOException or UnauthorizedAccessException)
            {
                if (stored is not null)
                {
                    await stored.DisposeAsync().ConfigureAwait(false);
                }

                problems.Add($"'{copy.Target}': {e.Message}");
            }
        }

        throw new BackupException($"no copy of {a.FileName} could be read{(problems.Count > 0 ? ": " + string.Join("; ", problems) : " (none is verified on a configured target)")}");
    }

    /// <summary>drwxr-xr-x, as tar -tv and ls -l print it.</summary>
    private static string Mode(PaxEntry e)
    {
        var kind = e.Type switch
        {
            PaxType.Directory => 'd', PaxType.SymbolicLink => 'l', PaxType.HardLink => 'h', PaxType.Fifo => 'p', PaxType.CharacterDevice => 'c',
            PaxType.BlockDevice => 'b', _ => '-',
        };
        var m = e.Mode;
        var chars = new char[10];
        chars[0] = kind;
        var letters = "rwxrwxrwx";
        for (var i = 0; i < 9; i++)
        {
            chars[i + 1] = (m & (1 << (8 - i))) != 0 ? letters[i] : '-';
        }

        return new string(chars);
    }
}
