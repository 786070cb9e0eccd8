using System.Diagnostics;
using Backstop.Core.Catalog;

namespace Backstop.Core.Run;

/// <summary>Live counters of one artifact, read by progress displays while the pipeline writes them.</summary>
public sealed class ArtifactProgress(string source, string name)
{
    private long _raw;
    private long _stored;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public string Source { get; } = source;

    public string Name { get; } = name;

    public long RawBytes => Interlocked.Read(ref _raw);

    public long StoredBytes => Interlocked.Read(ref _stored);

    public TimeSpan Elapsed => _clock.Elapsed;

    public string Stage { get; set; } = "capturing";

    /// <summary>How long each stage took (capturing, committing, verifying), for the log and the benchmark.</summary>
    public List<(string Stage, TimeSpan Took)> Stages { get; } = [];

    private TimeSpan _stageStart;

    internal void Enter(string stage)
    {
        var now = _clock.Elapsed;
        Stages.Add((Stage, now - _stageStart));
        _stageStart = now;
        Stage = stage;
    }

    internal void AddRaw(long n) => Interlocked.Add(ref _raw, n);

    internal void AddStored(long n) => Interlocked.Add(ref _stored, n);

    internal void Stop() => _clock.Stop();
}

/// <summary>What a run tells its audience (terminal, log lines, JSON). Defaults do nothing.</summary>
public class RunObserver
{
    public virtual void Notice(string message) { }

    public virtual void SourceStarted(string source, string snapshotId) { }

    public virtual void ArtifactStarted(ArtifactProgress progress) { }

    public virtual void ArtifactFinished(ArtifactProgress progress) { }

    public virtual void SourceFinished(SnapshotInfo result) { }
}
