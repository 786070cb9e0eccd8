using Backstop.Core.Config;

namespace Backstop.Core.Plugins;

/// <summary>A kind of target (local, sftp, s3…): parses its typed options and creates targets.</summary>
public interface ITargetKind
{
    string Kind { get; }

    object ParseOptions(ConfigMap map);

    /// <summary>The kind's own keys, documented: the configuration reference and its unknown-key check come from them.</summary>
    IReadOnlyList<KeyDoc> Keys { get; }

    /// <summary>One sentence on where the kind keeps copies (the configuration reference's line for it).</summary>
    string Summary => "";

    /// <summary>
    /// Whether a target of this kind keeps its copies on the machine that runs Backstop (a local folder) unless its
    /// <c>machine:</c> says otherwise; false: on a machine of its own (a NAS, a bucket).
    /// </summary>
    bool LivesWithRunner => false;

    ITarget Create(TargetDefinition definition);
}

public abstract class TargetKind<TOptions> : ITargetKind where TOptions : class
{
    public abstract string Kind { get; }

    public abstract TOptions Parse(ConfigMap map);

    public abstract IReadOnlyList<KeyDoc> Keys { get; }

    public virtual string Summary => "";

    public virtual bool LivesWithRunner => false;

    public abstract ITarget Create(TargetDefinition definition, TOptions options);

    object ITargetKind.ParseOptions(ConfigMap map) => Parse(map);

    ITarget ITargetKind.Create(TargetDefinition definition) => Create(definition, (TOptions)definition.Options);
}

/// <summary>What a target can do, so that the pipeline decides once instead of asking each plugin.</summary>
public sealed record TargetCapabilities(bool AtomicPublish, bool FreeSpaceQuery, bool ServerSideChecksum);

/// <summary>
/// An object on a target: its key (with '/' separators, relative to the target's root), size, and the SHA-256 of
/// its bytes when the target keeps one beside the object (S3 metadata), so a stat can tell a replaced object.
/// </summary>
public sealed record ObjectInfo(string Key, long Size, DateTimeOffset Modified, string? Sha256 = null);

/// <summary>
/// One place backups are stored. It never knows what the bytes are. Keys are relative paths with '/'
/// separators: <c>&lt;source&gt;/&lt;snapshot&gt;/&lt;file&gt;</c>.
/// </summary>
/// <summary>
/// Where a target keeps its copies: the host that holds them (null: elsewhere, or not known — a cloud service), and for
/// a folder on this machine its path. doctor's single-point-of-failure check and restore --explain's choice of a
/// local file read it; no kind is named for it.
/// </summary>
public sealed record TargetPlace(string? Host, string? Path = null)
{
    /// <summary>A folder on this machine.</summary>
    public static TargetPlace Folder(string path) => new("localhost", path);

    /// <summary>Whether the copies are on this machine (a folder, or a server on a loopback address).</summary>
    public bool OnThisHost => Host is { } h && (h is "localhost" or "::1" or "[::1]" || h.StartsWith("127.", StringComparison.Ordinal)
                                                || string.Equals(h, Environment.MachineName, StringComparison.OrdinalIgnoreCase));
}

public interface ITarget
{
    string Name { get; }

    /// <summary>A human description of where this target stores (a path, a URL), for messages.</summary>
    string Where { get; }

    /// <summary>Where the copies are (see <see cref="TargetPlace"/>); by default not known.</summary>
    TargetPlace Place => new(null);

    TargetCapabilities Capabilities { get; }

    /// <summary>Checks the target is reachable and writable; throws <see cref="BackupException"/> otherwise.</summary>
    Task ProbeAsync(CancellationToken cancellationToken);

    /// <summary>Free bytes where the target stores, or null when it cannot tell.</summary>
    Task<long?> FreeBytesAsync(CancellationToken cancellationToken);

    /// <summary>Starts writing an object under a temporary name; it becomes visible at its key only on commit.</summary>
    Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken);

    /// <summary>Opens an object for reading; throws <see cref="ObjectNotFoundException"/> when it is missing.</summary>
    Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken);

    Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken);

    /// <summary>Every object whose key starts with the prefix, temporary ones included.</summary>
    IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Deletes an object; deleting a missing object is not an error.</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// Removes what this target's own writes leave when their process dies and that <see cref="ListAsync"/> cannot show:
    /// empty folders under the given prefixes (the caller knows nothing under them is being written now), and uploads a
    /// process that is gone began (an S3 multipart upload it journaled). Returns one sentence per thing removed, or per
    /// thing the target cannot remove (with what to do), for the run's notices. By default nothing: every leftover of
    /// such a target shows in its listing, and the run's sweep removes it from there.
    /// </summary>
    Task<IReadOnlyList<string>> SweepLeftoversAsync(IReadOnlyCollection<string> idlePrefixes, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>([]);

    /// <summary>
    /// The stock-tool command that copies one object to a local file without Backstop (a runbook's fetch step),
    /// shell-quoted; credentials never in it (the tool's own configuration, or a placeholder a person fills).
    /// </summary>
    string FetchCommand(string key, string localPath) =>
        $"# copy {key} from target '{Name}' ({Where}) to {Text.ShellWord.Quote(localPath)} with the tool that reads it";
}

/// <summary>An object being written. Disposing it without <see cref="CommitAsync"/> removes what was written.</summary>
public interface ITargetUpload : IAsyncDisposable
{
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Makes the object durable and visible at its key, whole.</summary>
    Task CommitAsync(CancellationToken cancellationToken);
}

public sealed class ObjectNotFoundException(string target, string key)
    : Exception($"target '{target}': {key} does not exist")
{
    public string Target { get; } = target;

    public string Key { get; } = key;
}
