using System.Globalization;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Run;

namespace Backstop.Cli.Rendering;

/// <summary>Plain log lines, one per event: for logs, cron mail and pipes (stderr when stdout carries JSON).</summary>
internal sealed class PlainObserver(TextWriter output) : RunObserver
{
    private static string Now => DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public override void Notice(string message) => Line($"notice: {message}");

    public override void SourceStarted(string source, string snapshotId) => Line($"{source}: snapshot {snapshotId} started");

    public override void ArtifactStarted(ArtifactProgress progress) => Line($"{progress.Source}: {progress.Name}: capturing");

    public override void ArtifactFinished(ArtifactProgress progress)
    {
        var seconds = Math.Max(progress.Elapsed.TotalSeconds, 0.001);
        Line(string.Create(CultureInfo.InvariantCulture,
            $"{progress.Source}: {progress.Name}: {Quantities.FormatSize(progress.RawBytes)} captured, {Quantities.FormatSize(progress.StoredBytes)} stored, {progress.Elapsed.TotalSeconds:0.0}s ({Quantities.FormatSize((long)(progress.RawBytes / seconds))}/s; {string.Join(", ", progress.Stages.Select(s => $"{s.Stage} {s.Took.TotalSeconds:0.0}s"))}), copies read back"));
    }

    public override void SourceFinished(SnapshotInfo result)
    {
        ArgumentNullException.ThrowIfNull(result);
        foreach (var w in result.Warnings)
        {
            Line($"{result.Source}: warning: {w}");
        }

        if (result.State == SnapshotState.Committed)
        {
            foreach (var problem in result.CopyProblems)
            {
                Line($"{result.Source}: DEGRADED: {problem}");
            }
        }

        Line(result.State == SnapshotState.Committed
            ? $"{result.Source}: snapshot {result.Id} committed: {Quantities.FormatSize(result.RawBytes)} → {Quantities.FormatSize(result.StoredBytes)}, verified on {string.Join(", ", result.VerifiedTargets)}"
            : $"{result.Source}: snapshot {result.Id} FAILED: {result.Error}");
    }

    private void Line(string text)
    {
        lock (output)
        {
            output.WriteLine($"{Now} {text}");
            output.Flush();
        }
    }
}
