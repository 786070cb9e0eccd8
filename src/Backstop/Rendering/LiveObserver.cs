using System.Collections.Concurrent;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Run;
using Spectre.Console;

namespace Backstop.Cli.Rendering;

/// <summary>Live progress on a terminal: one row per artifact with bytes, rate and elapsed time.</summary>
internal sealed class LiveObserver : RunObserver
{
    private readonly ConcurrentQueue<ArtifactProgress> _artifacts = new();
    private readonly ConcurrentQueue<string> _lines = new();

    public override void Notice(string message) => _lines.Enqueue($"[yellow]notice:[/] {Markup.Escape(message)}");

    public override void ArtifactStarted(ArtifactProgress progress) => _artifacts.Enqueue(progress);

    public override void SourceFinished(SnapshotInfo result)
    {
        ArgumentNullException.ThrowIfNull(result);
        foreach (var w in result.Warnings)
        {
            _lines.Enqueue($"[yellow]{Markup.Escape(result.Source)}: warning:[/] {Markup.Escape(w)}");
        }

        if (result.State == SnapshotState.Committed)
        {
            foreach (var problem in result.CopyProblems)
            {
                _lines.Enqueue($"[yellow]{Markup.Escape(result.Source)}: degraded:[/] {Markup.Escape(problem)}");
            }
        }

        _lines.Enqueue(result.State == SnapshotState.Committed
            ? $"[green]✔[/] {Markup.Escape(result.Source)}: snapshot {result.Id} committed, {Quantities.FormatSize(result.StoredBytes)} stored, verified on {Markup.Escape(string.Join(", ", result.VerifiedTargets))}"
            : $"[red]✘ {Markup.Escape(result.Source)}: snapshot {result.Id} failed:[/] {Markup.Escape(result.Error ?? "")}");
    }

    /// <summary>Draws the table until the work is done.</summary>
    public async Task<T> ShowWhileAsync<T>(Task<T> work)
    {
        var result = default(T);
        await Terminal.Out.Live(Render()).AutoClear(false).StartAsync(async ctx =>
        {
            while (!work.IsCompleted)
            {
                ctx.UpdateTarget(Render());
                await Task.WhenAny(work, Task.Delay(200)).ConfigureAwait(false);
            }

            ctx.UpdateTarget(Render());
            result = await work.ConfigureAwait(false);
        }).ConfigureAwait(false);
        return result!;
    }

    private Rows Render()
    {
        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("source").AddColumn("artifact").AddColumn("stage")
            .AddColumn(new TableColumn("captured").RightAligned()).AddColumn(new TableColumn("stored").RightAligned())
            .AddColumn(new TableColumn("rate").RightAligned()).AddColumn(new TableColumn("elapsed").RightAligned());
        foreach (var a in _artifacts)
        {
            var seconds = Math.Max(a.Elapsed.TotalSeconds, 0.001);
            table.AddRow(
                Markup.Escape(a.Source), Markup.Escape(a.Name), a.Stage,
                Quantities.FormatSize(a.RawBytes), Quantities.FormatSize(a.StoredBytes),
                Quantities.FormatSize((long)(a.RawBytes / seconds)) + "/s", $"{a.Elapsed.TotalSeconds:0.0}s");
        }

        var rows = new List<Spectre.Console.Rendering.IRenderable> { table };
        rows.AddRange(_lines.Select(l => new Markup(l)));
        return new Rows(rows);
    }
}
