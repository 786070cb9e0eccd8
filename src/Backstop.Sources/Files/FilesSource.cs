using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Sources.Trees;

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
public sealed partial class FilesSourceKind : SourceKind<FilesOptions, FilesDrillOptions>
{
    public override int RecoveryOrder => RecoveryStage.Files;

    public override string Kind => "files";

    public override string Summary => "Folders and files, into one tar per snapshot (`files.tar`).";

    public override string RestoreTo => "a folder (paths land under DEST/<their absolute path>)";

    public override string? RestoreToExample => "/srv/restore";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("paths", "[/srv/app, /etc/app]", "Folders and files to back up") { Default = "required" },
        new("exclude", "[\"*.log\", \"cache/**\"]", "Glob patterns left out (relative to each path; ** crosses folders)"),
        new("drill.spot_check", "10%", "The share of files a drill compares byte for byte with the live ones") { Default = "every file's hash" },
    ];

    public override IReadOnlyList<string> Facts { get; } = ["files", "bytes", "directories", "symlinks"];

    public override IReadOnlyList<string> CountFacts { get; } = ["files"];

    public override bool ChecksMounts => true;

    public override bool StoresChanges => true;

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

    public override ISource Create(SourceDefinition definition, FilesOptions options, FilesDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new FilesSource(definition.Name, options, new FilesDrill(drill), new FilesHealth(options), definition.Expect.Mount);
    }
}

/// <summary>
/// A files source: its paths as one tree artifact (<see cref="FileTree"/>), checked for mounts first when asked, and restored
/// (whole, by chain, or in part); its drill and health are parts of their own.
/// </summary>
internal sealed class FilesSource(string name, FilesOptions options, FilesDrill drill, FilesHealth health, bool requireMounts = false)
    : ISource, IStagedRestorable, IChainRestorable, IPartialRestore
{
    public T? Capability<T>() where T : class => drill as T ?? health as T ?? this as T;

    internal const string ArtifactName = "files.tar";
    private readonly FileTree _tree = new(name, ArtifactName);
    private TreeSelection? _selection;

    public bool Restores(string artifactName) => !FileTree.IsListing(artifactName);

    public IChainStage BeginChain(string artifactName, string destination, bool force) => FileTree.BeginChain(destination, force, _selection);

    public void Select(IReadOnlyList<string> include, string? stripPrefix) => _selection = new TreeSelection(include, stripPrefix);

    public Task<StagedRestore> StageAsync(string artifactName, Stream content, string destination, bool force, CancellationToken cancellationToken) =>
        FileTree.StageAsync(content, destination, force, _selection, cancellationToken);

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

    public Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken) => _tree.CaptureAsync(sink, options.Paths, options.Globs, cancellationToken);

    public IArtifactValidator? ValidatorFor(string artifactName) => _tree.ValidatorFor(artifactName);

    public string RestoreRecipe(string artifactName, string storedFile) => FileTree.RestoreRecipe(artifactName, storedFile);
}
