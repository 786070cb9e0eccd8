using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class ListVerb
{
    public static Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        using var catalog = Context.OpenCatalog(config);
        var snapshots = catalog.Snapshots().Where(s => only.Count == 0 || only.Contains(s.Source)).ToList();
        if (context.Json)
        {
            JsonOutput.Write(new { Snapshots = snapshots.Select(s => Describe(s, config)) });
            return Task.FromResult(ExitCodes.Ok);
        }

        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("snapshot").AddColumn("source").AddColumn("state").AddColumn("started (UTC)")
            .AddColumn(new TableColumn("took").RightAligned()).AddColumn(new TableColumn("raw").RightAligned())
            .AddColumn(new TableColumn("stored").RightAligned()).AddColumn("verified on").AddColumn("note");
        foreach (var s in snapshots)
        {
            var minCopies = config.Source(s.Source)?.MinCopies ?? 1;
            var state = s.State == SnapshotState.Committed && !s.IsValid(minCopies) ? "invalid" : s.State.ToString().ToLowerInvariant();
            table.AddRow(
                s.Id, Markup.Escape(s.Source), Terminal.StateMarkup(state), s.StartedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture),
                s.FinishedAt is { } f ? Terminal.Age(f - s.StartedAt) : "-",
                Quantities.FormatSize(s.RawBytes), Quantities.FormatSize(s.StoredBytes),
                Markup.Escape(string.Join(", ", s.VerifiedTargets)),
                Markup.Escape(s.Error ?? (s.Warnings.Count > 0 ? $"{s.Warnings.Count} warning(s)" : "")));
        }

        Terminal.Out.Write(table);
        return Task.FromResult(ExitCodes.Ok);
    }

    internal static object Describe(SnapshotInfo s, BackstopConfig config) => new
    {
        Snapshot = s.Id,
        s.Source,
        s.Kind,
        State = s.State.ToString().ToLowerInvariant(),
        Valid = s.IsValid(config.Source(s.Source)?.MinCopies ?? 1),
        s.StartedAt,
        s.FinishedAt,
        s.Host,
        s.RawBytes,
        s.StoredBytes,
        VerifiedCopies = s.VerifiedTargets,
        s.Facts,
        s.Warnings,
        s.Error,
        Artifacts = s.Artifacts.Select(a => new
        {
            a.Name,
            File = a.FileName,
            a.RawBytes,
            a.StoredBytes,
            a.Sha256,
            a.Compression,
            a.Facts,
            a.Reported,
            Copies = a.Copies.Select(c => new { c.Target, State = c.State.ToString().ToLowerInvariant(), c.CheckedAt, c.Error }),
        }),
    };
}
