using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.ExampleKind;

/// <summary>What a <c>lines</c> source reads: one text file.</summary>
public sealed record LinesOptions(string Path);

/// <summary>
/// The example kind (docs/architecture.md, "How to add a source kind"): a text file stored as <c>lines.txt</c>, with
/// its lines and bytes as facts, checked by counting them again, and restored into a folder. Everything a kind needs
/// and nothing more: keys (from which the reference and the unknown-key hints are made), a parser with errors at
/// <c>file:line:column</c>, a source that streams (never holds the file whole), a format check, a stock-tool recipe,
/// and restore as a capability.
/// </summary>
public sealed class LinesSourceKind : SourceKind<LinesOptions>
{
    public override string Kind => "lines";

    public override string Summary => "A text file, as `lines.txt` (an example kind).";

    public override string RestoreTo => "a folder (the file lands as DEST/lines.txt)";

    public override string? RestoreToExample => "/srv/restore";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("path", "/etc/motd", "The text file to back up") { Default = "required" },
    ];

    public override IReadOnlyList<string> Facts { get; } = ["lines", "bytes"];

    public override IReadOnlyList<string> CountFacts { get; } = ["lines"];

    public override LinesOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new LinesOptions(map.ResolvePath(map.RequireString("path")));
    }

    public override ISource Create(SourceDefinition definition, LinesOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(options);
        return new LinesSource(definition.Name, options);
    }
}

/// <summary>Captures the file, checks a stored copy, and restores it (the source is its own restore part: a small kind needs no more).</summary>
internal sealed class LinesSource(string name, LinesOptions options) : ISource, IRestorable, IArtifactValidator
{
    internal const string Artifact = "lines.txt";

    public Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken) =>
        File.Exists(options.Path)
            ? Task.FromResult(SourcePreflight.None)
            : throw new BackupException($"source '{name}': {options.Path} does not exist; fix 'path'");

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        await using var artifact = await sink.BeginArtifactAsync(Artifact, cancellationToken).ConfigureAwait(false);
        await using var file = new FileStream(options.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.SequentialScan);
        var facts = await CountingCopyAsync(file, artifact.Content, cancellationToken).ConfigureAwait(false);
        await artifact.CompleteAsync(facts, cancellationToken).ConfigureAwait(false);
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => artifactName == Artifact ? this : null;

    public Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken) =>
        CountingCopyAsync(content, Stream.Null, cancellationToken);

    public string RestoreRecipe(string artifactName, string storedFile) => $"mkdir -p DEST && zstd -dc {storedFile} > DEST/{Artifact}";

    public async Task<IReadOnlyDictionary<string, long>> RestoreAsync(string artifactName, Stream content, string destination, bool force,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        Directory.CreateDirectory(destination);
        var path = Path.Combine(destination, Artifact);
        if (File.Exists(path) && !force)
        {
            throw new BackupException($"{path} exists; restore into an empty folder, or add --force");
        }

        // Written beside, then renamed: a restore cut short never leaves half a file under the name.
        var partial = path + ".partial";
        IReadOnlyDictionary<string, long> found;
        await using (var output = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            found = await CountingCopyAsync(content, output, cancellationToken).ConfigureAwait(false);
            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        File.Move(partial, path, overwrite: true);
        return found;
    }

    /// <summary>Copies a stream and counts its bytes and lines (a last line without its newline counts too).</summary>
    private static async Task<IReadOnlyDictionary<string, long>> CountingCopyAsync(Stream from, Stream to, CancellationToken cancellationToken)
    {
        var buffer = new byte[1 << 16];
        long bytes = 0, lines = 0;
        var last = (byte)'\n';
        int read;
        while ((read = await from.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            await to.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            lines += buffer.AsSpan(0, read).Count((byte)'\n');
            bytes += read;
            last = buffer[read - 1];
        }

        return new Dictionary<string, long> { ["lines"] = lines + (last == (byte)'\n' ? 0 : 1), ["bytes"] = bytes };
    }
}
