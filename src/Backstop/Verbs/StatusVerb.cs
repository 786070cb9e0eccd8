using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Spectre.Console;

namespace Backstop.Cli.Verbs;

internal static class StatusVerb
{
    /// <summary>The <c>status</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var statusSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable); the exit code is theirs", HelpName = "NAME" };
        var status = new Command("status", "Per source: state, last valid backup and its age against the RPO, copies. Exit 0 when every source shown is ok, 1 otherwise");
        var statusMachines = new Option<string[]>("--machine", "-m") { Description = "Only the sources this machine runs (repeatable; adds to --source)", HelpName = "NAME" };
        status.Add(statusSources);
        status.Add(statusMachines);
        status.SetAction((p, ct) => StatusVerb.ExecuteAsync(Context.From(p), p.GetValue(statusSources) ?? [], ct, p.GetValue(statusMachines) ?? []));
        return status;
    }

    public static async Task<int> ExecuteAsync(Context context, IReadOnlyCollection<string> only, CancellationToken cancellationToken,
        IReadOnlyCollection<string>? machines = null)
    {
        var config = context.LoadConfig();
        Context.RequireSources(config, only);
        only = Context.WithMachines(config, only, machines ?? []);

        // No catalog, but backups on a target: the catalog was lost or moved. Never start an empty one quietly.
        if (config.CatalogServer is null && !File.Exists(config.CatalogPath) && await LostCatalogAsync(config, cancellationToken).ConfigureAwait(false) is { } target)
        {
            await Console.Error.WriteLineAsync($"backstop: the catalog {config.CatalogPath} does not exist, but target '{target}' holds backups: " +
                                               "the catalog was lost or moved; 'backstop catalog rebuild' recreates it from their manifests").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        using var catalog = Context.OpenCatalog(config);
        var now = DateTimeOffset.UtcNow;
        var statuses = StatusReport.Compute(config, catalog, now).Where(s => only.Count == 0 || only.Contains(s.Name)).ToList();
        var failingNotifiers = Core.Notify.Notifier.Failing(catalog).Where(n => config.Notify.Any(d => d.Name == n.Notifier)).ToList();
        var fleet = catalog.IsShared ? catalog.Machines() : null;
        if (context.Json)
        {
            JsonOutput.Write(Document(config, statuses, failingNotifiers, ScenarioStatus.Compute(config, catalog), fleet, now));
        }
        else
        {
            Render(statuses, now, fleet is not null);
            foreach (var m in fleet?.Where(m => m.IsStale(now)) ?? [])
            {
                Terminal.Out.MarkupLine($"  [red]machine '{Markup.Escape(m.Name)}' is stale[/]: its agent last reported {Terminal.Age(now - m.SeenAt)} ago " +
                                        $"(it promised every {Quantities.FormatDuration(m.Every!.Value)}); its sources may not be backed up");
            }

            RenderScenarios(ScenarioStatus.Compute(config, catalog), now);
            foreach (var f in failingNotifiers)
            {
                Terminal.Out.MarkupLine($"  [red]notifier '{Markup.Escape(f.Notifier)}' failed[/] {Terminal.Age(now - f.At)} ago to deliver '{Markup.Escape(f.Event)}'" +
                                        $"{(f.Subject is null ? "" : $" for '{Markup.Escape(f.Subject)}'")}: {Markup.Escape(f.Error ?? "")}");
            }
        }

        return statuses.All(s => s.State == SourceState.Ok) ? ExitCodes.Ok : ExitCodes.Failed;
    }

    /// <summary>The first target that answers and holds a snapshot manifest, or null.</summary>
    private static async Task<string?> LostCatalogAsync(BackstopConfig config, CancellationToken cancellationToken)
    {
        foreach (var def in config.Targets)
        {
            try
            {
                var target = Core.Storage.GuardedTarget.Create(Plugins.Registry, def);
                await foreach (var o in target.ListAsync("", cancellationToken).ConfigureAwait(false))
                {
                    if (o.Key.EndsWith("/" + Core.Storage.Layout.ManifestName, StringComparison.Ordinal))
                    {
                        return def.Name;
                    }
                }
            }
            catch (Exception e) when (e is Core.Plugins.BackupException or IOException or UnauthorizedAccessException)
            {
                // A target that does not answer says nothing either way; status goes on.
            }
        }

        return null;
    }

    /// <summary>
    /// The DESIGN contract that monitoring reads (<c>status --json</c>, and <c>serve</c>'s <c>/api/status</c>), plus
    /// last_valid.copies (state per configured target) and the notifiers' failures.
    /// </summary>
    /// <param name="fleet">With a shared catalog, every agent it has heard of: then each source names its machine, and the machines are listed.</param>
    internal static StatusDocument Document(Core.Config.BackstopConfig config, IReadOnlyList<SourceStatus> statuses, IReadOnlyList<NotificationInfo> failingNotifiers,
        IReadOnlyList<ScenarioStatus> scenarios, IReadOnlyList<MachineInfo>? fleet = null, DateTimeOffset? now = null) =>
        new(
            [
                .. statuses.Select(s => new StatusSourceDocument(
                    s.Name,
                    s.Kind,
                    s.State.ToString().ToLowerInvariant(),
                    s.LastValid,
                    s.LastRun,
                    s.RpoSeconds,
                    s.RpoMet,
                    s.LastDrill is { } d ? new StatusDrillDocument(d.Snapshot, d.Passed, d.Seconds, d.At, d.RtoSeconds, d.RtoMet, d.Target) : null)
                {
                    Archive = s.Archive is { } a
                        ? new StatusArchiveDocument(a.From, a.To, a.FromSnapshot, a.NewestFile, a.Files, a.RpoSeconds, a.MaxRpoSeconds, a.RpoMet, [.. a.Failing, .. a.Degraded])
                        : null,
                    Machine = fleet is not null ? s.Machine : null,
                }),
            ],
            // A notifier whose last delivery failed: people may not have been told (never changes the sources' states).
            [
                .. config.Notify.Select(n => new StatusNotifierDocument(n.Name, n.Kind,
                    failingNotifiers.FirstOrDefault(f => f.Notifier == n.Name) is { } f ? new NotifierFailureDocument(f.At, f.Event, f.Subject, f.Error) : null)),
            ],
            // Each disaster scenario with its last rehearsal (rehearse SCENARIO): the estate's measured RTO against the objective.
            scenarios)
        {
            Machines = fleet?.Select(m => new MachineDocument(m.Name, m.SeenAt, (long?)m.Every?.TotalSeconds, m.IsStale(now ?? DateTimeOffset.UtcNow))).ToList(),
        };

    private static void RenderScenarios(IReadOnlyList<ScenarioStatus> scenarios, DateTimeOffset now)
    {
        foreach (var s in scenarios)
        {
            var rto = Quantities.FormatDuration(TimeSpan.FromSeconds(s.RtoSeconds));
            Terminal.Out.MarkupLine(s.LastRehearsal is not { } r
                ? $"  scenario [bold]{Markup.Escape(s.Name)}[/] (rto {rto}): [yellow]never rehearsed[/] ('backstop rehearse {Markup.Escape(s.Name)}')"
                : $"  scenario [bold]{Markup.Escape(s.Name)}[/] (rto {rto}): {(r.Passed ? "[green]rehearsed[/]" : "[red]rehearsal failed[/]")} {Terminal.Age(now - r.At)} ago, " +
                  $"back in {Core.Drill.DrillRunner.Seconds(r.Seconds)}{(r.RtoMet ? "" : " [red]over the objective[/]")}{(r.Passed || r.Error is null ? "" : ": " + Markup.Escape(r.Error))}");
        }
    }

    private static void Render(List<SourceStatus> statuses, DateTimeOffset now, bool shared)
    {
        if (statuses.Count == 0)
        {
            Terminal.Out.MarkupLine("No sources are configured.");
            return;
        }

        var table = new Table().Border(TableBorder.Rounded).Title("Backup status").AddColumn("source");
        if (shared)
        {
            table.AddColumn("machine");
        }

        table.AddColumn("kind").AddColumn("state").AddColumn("last valid backup")
            .AddColumn(new TableColumn("age").RightAligned()).AddColumn(new TableColumn("RPO").RightAligned())
            .AddColumn(new TableColumn("copies").RightAligned()).AddColumn(new TableColumn("size").RightAligned()).AddColumn("last drill (RTO)");
        foreach (var s in statuses)
        {
            var state = s.State.ToString().ToLowerInvariant();
            table.AddRow(((string[])[Markup.Escape(s.Name), .. shared ? [Markup.Escape(s.Machine)] : Array.Empty<string>(), s.Kind, Terminal.StateMarkup(state),
                s.LastValid?.Snapshot ?? "[red]none[/]",
                s.LastValid is { } v ? Terminal.Age(now - v.FinishedAt) : "-",
                Quantities.FormatDuration(TimeSpan.FromSeconds(s.RpoSeconds)) + (s.RpoMet ? "" : " [red]missed[/]"),
                $"{s.Copies}/{s.Targets}",
                s.LastValid is { } v2 ? Quantities.FormatSize(v2.StoredBytes) : "-",
                DrillCell(s.LastDrill, now)]).Select(x => (Spectre.Console.Rendering.IRenderable)new Markup(x)).ToArray());
        }

        Terminal.Out.Write(table);
        foreach (var s in statuses.Where(s => s.Archive is not null))
        {
            var a = s.Archive!;
            Terminal.Out.MarkupLine(a.To is not { } to
                ? $"  [bold]{Markup.Escape(s.Name)}[/]: [red]no recovery window[/] (no base snapshot reaches consistency with the archived WAL)"
                : $"  [bold]{Markup.Escape(s.Name)}[/]: recovery window {Core.Text.Json.Time(a.From!.Value)} → {Core.Text.Json.Time(to)} ({a.Files} archived file(s)), " +
                  $"current RPO {Quantities.FormatDuration(TimeSpan.FromSeconds(a.RpoSeconds ?? 0))}{(a.RpoMet ? "" : " [red]over[/]")} (wal.max_rpo {Quantities.FormatDuration(TimeSpan.FromSeconds(a.MaxRpoSeconds))})");
        }

        foreach (var s in statuses.Where(s => s.Reasons.Count > 0))
        {
            foreach (var reason in s.Reasons)
            {
                Terminal.Out.MarkupLine($"  [bold]{Markup.Escape(s.Name)}[/]: {Markup.Escape(reason)}");
            }
        }
    }

    /// <summary>The last drill: its age, passed or failed, the measured RTO against the objective.</summary>
    private static string DrillCell(LastDrill? d, DateTimeOffset now)
    {
        if (d is null)
        {
            return "[yellow]never[/]";
        }

        var rto = Quantities.FormatDuration(TimeSpan.FromSeconds(Math.Max(1, Math.Round(d.Seconds))));
        var objective = d.RtoSeconds is { } o ? $" of {Quantities.FormatDuration(TimeSpan.FromSeconds(o))}{(d.RtoMet == false ? " [red]missed[/]" : "")}" : "";
        return $"{(d.Passed ? "[green]passed[/]" : "[red]failed[/]")} {Terminal.Age(now - d.At)} ago ({rto}{objective})";
    }
}
