using System.Globalization;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Run;
using Microsoft.Extensions.Logging;

namespace Backstop.Cli.Rendering;

/// <summary>
/// Plain lines, one per event: for logs, cron mail and pipes (stderr when stdout carries JSON). Under serve they go
/// through serve's log instead, each at its level (a failed snapshot an error, a warning or a degraded copy a warning).
/// </summary>
internal sealed partial class PlainObserver : RunObserver
{
    private readonly TextWriter? _output;
    private readonly ILogger? _log;

    public PlainObserver(TextWriter output) => _output = output;

    public PlainObserver(ILogger log) => _log = log;

    [LoggerMessage(EventId = 101, Message = "{Line}")]
    private static partial void RunLine(ILogger logger, LogLevel level, string line);

    private static string Now => DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public override void Notice(string message) => Line($"notice: {message}");

    public override void SourceStarted(string source, string snapshotId) => Line($"{source}: snapshot {snapshotId} started");

    /// <summary>How often a line says how an artifact is going (30 s; <c>BACKSTOP_PROGRESS_SECONDS</c> changes it).</summary>
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("BACKSTOP_PROGRESS_SECONDS"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 30);

    private readonly Dictionary<ArtifactProgress, Timer> _ticking = [];

    public override void ArtifactStarted(ArtifactProgress progress)
    {
        ArgumentNullException.ThrowIfNull(progress);
        Line($"{progress.Source}: {progress.Name}: capturing");
        // Without a terminal (cron, systemd, --json) a long dump is not silent: a line every 30 s while it runs.
        lock (_ticking)
        {
            _ticking[progress] = new Timer(_ => Tick(progress), null, Every, Every);
        }
    }

    private void Tick(ArtifactProgress p)
    {
        var seconds = Math.Max(p.Elapsed.TotalSeconds, 0.001);
        Line(string.Create(CultureInfo.InvariantCulture,
            $"{p.Source}: {p.Name}: {p.Stage}: {Quantities.FormatSize(p.RawBytes)} read, {Quantities.FormatSize(p.StoredBytes)} stored, {p.Elapsed.TotalSeconds:0}s, {Quantities.FormatSize((long)(p.RawBytes / seconds))}/s"));
    }

    private void StopTicking(Func<ArtifactProgress, bool> which)
    {
        lock (_ticking)
        {
            foreach (var p in _ticking.Keys.Where(which).ToList())
            {
                _ticking[p].Dispose();
                _ticking.Remove(p);
            }
        }
    }

    public override void ArtifactFinished(ArtifactProgress progress)
    {
        StopTicking(p => ReferenceEquals(p, progress));
        var seconds = Math.Max(progress.Elapsed.TotalSeconds, 0.001);
        Line(string.Create(CultureInfo.InvariantCulture,
            $"{progress.Source}: {progress.Name}: {Quantities.FormatSize(progress.RawBytes)} captured, {Quantities.FormatSize(progress.StoredBytes)} stored, {progress.Elapsed.TotalSeconds:0.0}s ({Quantities.FormatSize((long)(progress.RawBytes / seconds))}/s; {string.Join(", ", progress.Stages.Select(s => $"{s.Stage} {s.Took.TotalSeconds:0.0}s"))}), copies read back"));
    }

    public override void SourceFinished(SnapshotInfo result)
    {
        ArgumentNullException.ThrowIfNull(result);
        StopTicking(p => p.Source == result.Source); // a failed artifact never finished
        foreach (var w in result.Warnings)
        {
            Line($"{result.Source}: warning: {w}", LogLevel.Warning);
        }

        if (result.State == SnapshotState.Committed)
        {
            foreach (var problem in result.CopyProblems)
            {
                Line($"{result.Source}: DEGRADED: {problem}", LogLevel.Warning);
            }
        }

        if (result.State == SnapshotState.Committed)
        {
            Line($"{result.Source}: snapshot {result.Id} committed: {Quantities.FormatSize(result.RawBytes)} → {Quantities.FormatSize(result.StoredBytes)}, verified on {string.Join(", ", result.VerifiedTargets)}");
        }
        else
        {
            Line($"{result.Source}: snapshot {result.Id} FAILED: {result.Error}", LogLevel.Error);
        }
    }

    private void Line(string text, LogLevel level = LogLevel.Information)
    {
        if (_log is not null)
        {
            RunLine(_log, level, text);
            return;
        }

        lock (_output!)
        {
            _output.WriteLine($"{Now} {text}");
            _output.Flush();
        }
    }
}
