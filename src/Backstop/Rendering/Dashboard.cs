using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Serve;

namespace Backstop.Cli.Rendering;

/// <summary>
/// serve's pages, rendered on the server from the catalog: the audit's status table (state, last valid backup and its
/// age against the RPO, copies per target, last drill and its RTO, next scheduled run), and per source its history as
/// inline SVG charts, snapshots and copies, drills, events and notification failures. No script, no asset from
/// another host (the Content-Security-Policy forbids both); the page refreshes itself every 30 seconds.
/// </summary>
internal static class Dashboard
{
    private static string H(string? s) => HtmlEncoder.Default.Encode(s ?? "");

    private const string Style = """
        body{font:14px system-ui,sans-serif;margin:1.5rem;color:#1b1f24}
        table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{padding:.35rem .7rem;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
        th{background:#f6f8fa}.ok{color:#1a7f37;font-weight:600}.degraded{color:#9a6700;font-weight:600}.failing,.stale,.never,.failed{color:#cf222e;font-weight:600}
        .muted{color:#57606a}a{color:#0969da}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}form{display:inline}
        """;

    private static string Page(string title, string body) =>
        $"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"30\"><title>{H(title)}</title>" +
        $"<style>{Style}</style></head><body>{body}<p class=\"muted\">backstop on {H(Environment.MachineName)} · {Core.Text.Json.Time(DateTimeOffset.UtcNow)}</p></body></html>";

    private static string Age(TimeSpan t) => Terminal.Age(t);

    /// <summary>Every agent the shared catalog has heard of: when it last reported, and stale when silent past its promise (named).</summary>
    private static void Machines(StringBuilder b, CatalogStore catalog, DateTimeOffset now)
    {
        var machines = catalog.Machines();
        b.Append("<h2>Machines</h2><table id=\"machines\"><thead><tr><th>machine</th><th>state</th><th>last report</th><th>reports every</th><th>version</th></tr></thead><tbody>");
        foreach (var m in machines)
        {
            var stale = m.IsStale(now);
            b.Append(CultureInfo.InvariantCulture, $"<tr data-machine=\"{H(m.Name)}\" data-state=\"{(stale ? "stale" : "ok")}\"><td>{H(m.Name)}</td>")
                .Append(stale ? "<td class=\"stale\">stale</td>" : "<td class=\"ok\">ok</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{Age(now - m.SeenAt)} ago</td><td>{(m.Every is { } e ? Quantities.FormatDuration(e) : "-")}</td><td>{H(m.Version)}</td></tr>");
        }

        b.Append("</tbody></table>");
        foreach (var m in machines.Where(m => m.IsStale(now)))
        {
            b.Append(CultureInfo.InvariantCulture, $"<p class=\"stale\">machine '{H(m.Name)}' has not reported for {Age(now - m.SeenAt)} (it promised every {Quantities.FormatDuration(m.Every!.Value)}): its sources may not be backed up</p>");
        }
    }

    /// <summary>The status table of every source.</summary>
    public static string Index(BackstopConfig config, CatalogStore catalog, IReadOnlyDictionary<ServeJob, DateTimeOffset> next, string? csrf, bool actions)
    {
        var now = DateTimeOffset.UtcNow;
        var statuses = StatusReport.Compute(config, catalog, now);
        var shared = catalog.IsShared;
        var b = new StringBuilder();
        b.Append("<h1>Backup status</h1><table id=\"status\"><thead><tr><th>source</th>" + (shared ? "<th>machine</th>" : "") + "<th>kind</th><th>state</th><th>last valid backup</th><th>age / RPO</th>" +
                 "<th>copies</th><th>last drill (RTO)</th><th>next run</th>" + (actions ? "<th></th>" : "") + "</tr></thead><tbody>");
        foreach (var s in statuses)
        {
            var state = s.State.ToString().ToLowerInvariant();
            var copies = s.LastValid is { } v
                ? string.Join("<br>", v.Copies.Select(c => $"{H(c.Key)}: <span class=\"{(c.Value.State == "verified" ? "ok" : "failed")}\">{H(c.Value.State)}</span>"))
                : "<span class=\"never\">none</span>";
            var drill = s.LastDrill is { } d
                ? $"<span class=\"{(d.Passed ? "ok" : "failed")}\">{(d.Passed ? "passed" : "failed")}</span> {Age(now - d.At)} ago ({d.Seconds.ToString("0.0", CultureInfo.InvariantCulture)}s" +
                  (d.RtoSeconds is { } rto ? $" of {Quantities.FormatDuration(TimeSpan.FromSeconds(rto))}{(d.RtoMet == false ? ", missed" : "")}" : "") + ")"
                : "<span class=\"muted\">never</span>";
            var nextRun = next.Where(n => n.Key.Kind == "run" && n.Key.Source == s.Name).Select(n => n.Value).FirstOrDefault();
            b.Append(CultureInfo.InvariantCulture, $"<tr data-source=\"{H(s.Name)}\" data-state=\"{state}\"><td><a href=\"/source/{Uri.EscapeDataString(s.Name)}\">{H(s.Name)}</a></td>")
                .Append(shared ? $"<td class=\"machine\">{H(s.Machine)}</td>" : "")
                .Append(CultureInfo.InvariantCulture, $"<td>{H(s.Kind)}</td><td class=\"{state}\" title=\"{H(string.Join("; ", s.Reasons))}\">{state}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{H(s.LastValid?.Snapshot ?? "none")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{(s.LastValid is { } lv ? Age(now - lv.FinishedAt) : "-")} / {Quantities.FormatDuration(TimeSpan.FromSeconds(s.RpoSeconds))}{(s.RpoMet ? "" : " <span class=\"stale\">missed</span>")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{copies}</td><td>{drill}</td><td>{(nextRun == default ? "<span class=\"muted\">not scheduled</span>" : Core.Text.Json.Time(nextRun))}</td>");
            if (actions)
            {
                // Only this agent's own sources: another machine's agent runs the others.
                b.Append(config.Source(s.Name) is { } def && config.RunsHere(def)
                    ? $"<td>{Action(s.Name, "run", csrf)} {Action(s.Name, "drill", csrf)}</td>"
                    : $"<td class=\"muted\">on {H(s.Machine)}</td>");
            }

            b.Append("</tr>");
        }

        b.Append("</tbody></table>");
        foreach (var s in statuses.Where(s => s.Reasons.Count > 0))
        {
            b.Append(CultureInfo.InvariantCulture, $"<p><b>{H(s.Name)}</b>: {H(string.Join("; ", s.Reasons))}</p>");
        }

        var failing = Core.Notify.Notifier.Failing(catalog).Where(n => config.Notify.Any(d => d.Name == n.Notifier)).ToList();
        foreach (var f in failing)
        {
            b.Append(CultureInfo.InvariantCulture, $"<p class=\"failed\">notifier '{H(f.Notifier)}' failed {Age(now - f.At)} ago: {H(f.Error)}</p>");
        }

        if (shared)
        {
            Machines(b, catalog, now);
        }

        Scenarios(b, config, catalog, next, now);
        return Page("Backup status", b.ToString());
    }

    /// <summary>A section per disaster scenario: its last rehearsal, the measured RTO against the objective, the critical path, the runbook.</summary>
    private static void Scenarios(StringBuilder b, BackstopConfig config, CatalogStore catalog, IReadOnlyDictionary<ServeJob, DateTimeOffset> next, DateTimeOffset now)
    {
        if (config.Recovery.Scenarios.Count == 0)
        {
            return;
        }

        b.Append("<h2>Disaster scenarios</h2><table id=\"scenarios\"><thead><tr><th>scenario</th><th>objective</th><th>last rehearsal</th><th>measured</th>" +
                 "<th>critical path</th><th>next</th><th>runbook</th></tr></thead><tbody>");
        foreach (var s in config.Recovery.Scenarios)
        {
            var last = catalog.Rehearsals(s.Name).LastOrDefault();
            var path = last is null ? "" : System.Text.Json.JsonDocument.Parse(last.Detail).RootElement.TryGetProperty("critical_path", out var p)
                ? string.Join(" → ", p.EnumerateArray().Select(e => e.GetString())) : "";
            var due = next.Where(n => n.Key.Kind == "rehearse" && n.Key.Scenario == s.Name).Select(n => n.Value).FirstOrDefault();
            b.Append(CultureInfo.InvariantCulture, $"<tr data-scenario=\"{H(s.Name)}\"><td>{H(s.Name)}</td><td>{Quantities.FormatDuration(s.Rto)}</td>")
                .Append(last is null
                    ? "<td><span class=\"muted\">never</span></td><td>-</td>"
                    : $"<td><span class=\"{(last.Passed ? "ok" : "failed")}\" title=\"{H(last.Error ?? "")}\">{(last.Passed ? "passed" : "failed")}</span> {Age(now - last.At)} ago</td>" +
                      $"<td>{last.Seconds.ToString("0.0", CultureInfo.InvariantCulture)}s{(last.RtoMet ? "" : " <span class=\"failed\">over the objective</span>")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{H(path)}</td><td>{(due == default ? "<span class=\"muted\">by hand</span>" : Core.Text.Json.Time(due))}</td>")
                .Append(last?.Runbook is null ? "<td>-</td>" : $"<td><a href=\"/runbook/{Uri.EscapeDataString(s.Name)}\">runbook</a></td>")
                .Append("</tr>");
        }

        b.Append("</tbody></table>");
    }

    /// <summary>A POST form ("run now", "drill now"), with the CSRF token of the page and a field for serve's token.</summary>
    /// <summary>The login form serve shows off loopback: the token once, for a session cookie.</summary>
    public static string Login(string csrf, string? error) =>
        Page("Backstop — log in",
            "<h1>Log in</h1>" + (error is null ? "" : $"<p class=\"failed\">{H(error)}</p>") +
            "<form method=\"post\" action=\"/login\">" + $"<input type=\"hidden\" name=\"csrf\" value=\"{H(csrf)}\">" +
            "<label>serve's token <input type=\"password\" name=\"token\" autofocus autocomplete=\"current-password\"></label> <button>log in</button></form>" +
            "<p class=\"muted\">Scripts and Prometheus send it as <code>Authorization: Bearer TOKEN</code>.</p>");

    private static string Action(string source, string what, string? csrf) =>
        $"<form method=\"post\" action=\"/source/{Uri.EscapeDataString(source)}/{what}\"><input type=\"hidden\" name=\"csrf\" value=\"{H(csrf)}\">" +
        $"<input type=\"password\" name=\"token\" placeholder=\"token\" size=\"8\" aria-label=\"token\"><button>{what} now</button></form>";

    /// <summary>One source: its history as charts, snapshots and copies, drills, events and notification failures.</summary>
    public static string Source(CatalogStore catalog, SourceDefinition def)
    {
        var now = DateTimeOffset.UtcNow;
        var snapshots = catalog.Snapshots(def.Name);
        var finished = snapshots.Where(s => s.FinishedAt is not null).TakeLast(60).ToList();
        var b = new StringBuilder();
        b.Append(CultureInfo.InvariantCulture, $"<p><a href=\"/\">← all sources</a></p><h1>{H(def.Name)} <span class=\"muted\">({H(def.Kind)})</span></h1>");
        b.Append("<h2>Stored size</h2>").Append(Chart(finished.Where(s => s.State == SnapshotState.Committed).Select(s => (s.StartedAt, (double)s.StoredBytes)).ToList(),
            v => Quantities.FormatSize((long)v)));
        b.Append("<h2>Duration</h2>").Append(Chart(finished.Select(s => (s.StartedAt, (s.FinishedAt!.Value - s.StartedAt).TotalSeconds)).ToList(),
            v => v.ToString("0.0", CultureInfo.InvariantCulture) + "s"));

        b.Append("<h2>Snapshots</h2><table><tr><th>snapshot</th><th>state</th><th>started</th><th>stored</th><th>copies</th><th>note</th></tr>");
        foreach (var s in snapshots.AsEnumerable().Reverse().Take(50))
        {
            var state = s.Condition(def.MinCopies);
            var css = state == "valid" ? "ok" : state is "short" or "unverified" or "running" or "pruned" ? "degraded" : "failed";
            var copies = string.Join("<br>", s.Artifacts.SelectMany(a => a.Copies).GroupBy(c => c.Target).Select(g =>
                $"{H(g.Key)}: {H(g.All(c => c.State == CopyState.Verified) ? "verified" : g.First(c => c.State != CopyState.Verified).State.ToString().ToLowerInvariant())}"));
            b.Append(CultureInfo.InvariantCulture, $"<tr><td>{H(s.Id)}</td><td class=\"{css}\">{H(state)}</td><td>{Core.Text.Json.Time(s.StartedAt)}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{Quantities.FormatSize(s.StoredBytes)}</td><td>{copies}</td><td>{H(s.Error ?? string.Join("; ", s.Warnings))}</td></tr>");
        }

        b.Append("</table><h2>Drills</h2><table><tr><th>when</th><th>snapshot</th><th>result</th><th>RTO measured</th><th>objective</th><th>error</th></tr>");
        foreach (var d in catalog.Drills(def.Name).Reverse().Take(30))
        {
            b.Append(CultureInfo.InvariantCulture, $"<tr><td>{Core.Text.Json.Time(d.At)}</td><td>{H(d.Snapshot)}</td><td class=\"{(d.Passed ? "ok" : "failed")}\">{(d.Passed ? "passed" : "failed")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{d.Seconds.ToString("0.0", CultureInfo.InvariantCulture)}s</td><td>{(d.RtoSeconds is { } r ? Quantities.FormatDuration(TimeSpan.FromSeconds(r)) : "-")}</td><td>{H(d.Error)}</td></tr>");
        }

        b.Append("</table><h2>Events</h2><table><tr><th>when</th><th>level</th><th>message</th></tr>");
        foreach (var e in catalog.Events(500).Where(e => e.Source == def.Name).Take(50))
        {
            b.Append(CultureInfo.InvariantCulture, $"<tr><td>{Core.Text.Json.Time(e.At)}</td><td class=\"{(e.Level == "error" ? "failed" : e.Level == "warn" ? "degraded" : "muted")}\">{H(e.Level)}</td><td>{H(e.Message)}</td></tr>");
        }

        b.Append("</table><h2>Notification failures</h2><table><tr><th>when</th><th>notifier</th><th>event</th><th>error</th></tr>");
        foreach (var n in catalog.Notifications().Where(n => !n.Delivered && (n.Subject == def.Name || n.Subject is null)).Take(30))
        {
            b.Append(CultureInfo.InvariantCulture, $"<tr><td>{Core.Text.Json.Time(n.At)}</td><td>{H(n.Notifier)}</td><td>{H(n.Event)}</td><td>{H(n.Error)}</td></tr>");
        }

        b.Append("</table>");
        return Page($"{def.Name} — backup history", b.ToString());
    }

    /// <summary>A small line chart as inline SVG: points over time, the last value labelled.</summary>
    private static string Chart(IReadOnlyList<(DateTimeOffset At, double Value)> points, Func<double, string> label)
    {
        if (points.Count == 0)
        {
            return "<p class=\"muted\">no data yet</p>";
        }

        const int W = 600, Hgt = 120, Pad = 8;
        var max = Math.Max(points.Max(p => p.Value), 1e-9);
        var first = points[0].At;
        var span = Math.Max((points[^1].At - first).TotalSeconds, 1);
        string X(DateTimeOffset at) => (Pad + (W - 2 * Pad) * (points.Count == 1 ? 0.5 : (at - first).TotalSeconds / span)).ToString("0.#", CultureInfo.InvariantCulture);
        string Y(double v) => (Hgt - Pad - (Hgt - 2 * Pad) * v / max).ToString("0.#", CultureInfo.InvariantCulture);
        var line = string.Join(" ", points.Select(p => $"{X(p.At)},{Y(p.Value)}"));
        var dots = string.Concat(points.Select(p => $"<circle cx=\"{X(p.At)}\" cy=\"{Y(p.Value)}\" r=\"2.5\" fill=\"#0969da\"><title>{Core.Text.Json.Time(p.At)}: {H(label(p.Value))}</title></circle>"));
        return $"<svg width=\"{W}\" height=\"{Hgt}\" viewBox=\"0 0 {W} {Hgt}\" role=\"img\" aria-label=\"chart\"><rect width=\"{W}\" height=\"{Hgt}\" fill=\"#f6f8fa\"/>" +
               $"<polyline points=\"{line}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\"/>{dots}" +
               $"<text x=\"{W - Pad}\" y=\"14\" text-anchor=\"end\" font-size=\"12\">max {H(label(max))}, last {H(label(points[^1].Value))}</text></svg>";
    }
}
