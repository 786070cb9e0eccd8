using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Core.Run;

/// <summary>Hands a source one <see cref="ArtifactWriter"/> per artifact and keeps their results.</summary>
internal sealed class CaptureSink(
    string source,
    string snapshot,
    string stagingDirectory,
    IReadOnlyList<ITarget> targets,
    CompressionOptions compression,
    IReadOnlyList<Sealing.Age.AgeRecipient>? recipients,
    ISource plugin,
    RunObserver observer) : ICaptureSink
{
    private readonly List<ArtifactWriter> _writers = [];

    public string StagingDirectory { get; } = stagingDirectory;

    public ICaptureChain? Chain { get; init; }

    public BlobStore? SharedBlobs { get; init; }

    public IBlobStore? Blobs => SharedBlobs;

    public List<string> Warnings { get; } = [];

    public IEnumerable<ArtifactResult> Results => _writers.Where(w => w.Result is not null).Select(w => w.Result!);

    public IEnumerable<ArtifactWriter> Writers => _writers;

    public async Task<IArtifactWriter> BeginArtifactAsync(string name, CancellationToken cancellationToken)
    {
        if (!Text.SafeNames.IsSafeFileName(name))
        {
            throw new BackupException($"the '{source}' source named an artifact '{name}', which is not a safe file name (a source must encode names it gets from a server)");
        }

        if (_writers.Any(w => w.Name == name))
        {
            throw new InvalidOperationException($"artifact {name} was already written in this snapshot");
        }

        var progress = new ArtifactProgress(source, name);
        var writer = await ArtifactWriter.StartAsync(source, snapshot, name, targets, compression, recipients, progress,
            plugin.ValidatorFor(name), cancellationToken).ConfigureAwait(false);
        _writers.Add(writer);
        observer.ArtifactStarted(progress);
        return new ObservedWriter(writer, progress, observer);
    }

    public void Warn(string message)
    {
        lock (Warnings)
        {
            Warnings.Add(message);
        }
    }

    /// <summary>Tells the observer when the artifact is done, whatever the source does with disposal.</summary>
    private sealed class ObservedWriter(ArtifactWriter writer, ArtifactProgress progress, RunObserver observer) : IArtifactWriter
    {
        public Stream Content => writer;

        public async Task CompleteAsync(IReadOnlyDictionary<string, long> facts, CancellationToken cancellationToken)
        {
            await writer.CompleteAsync(facts, cancellationToken).ConfigureAwait(false);
            observer.ArtifactFinished(progress);
        }

        public ValueTask DisposeAsync() => writer.DisposeAsync();
    }
}
