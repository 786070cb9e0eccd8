using System.Globalization;
using System.Text;

namespace Backstop.Core.Drill;

/// <summary>
/// The evidence an auditor asks for: one JSON file and one short Markdown report per drill, in <c>drills/</c> beside
/// the catalog, named <c>TIME-SOURCE-SNAPSHOT</c>. Written aside and renamed, so a half-written report never exists.
/// </summary>
public static class DrillEvidence
{
    /// <summary>Writes both files; returns the JSON file's path.</summary>
    public static string Write(string folder, DrillResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        FileSystem.PrivateFolder.Ensure(folder);
        var name = $"{result.At.UtcDateTime:yyyyMMdd'T'HHmmss'Z'}-{Text.SafeNames.Encode(result.Source)}-{result.Snapshot ?? "none"}";
        var json = Path.Combine(folder, name + ".json");
        var markdown = Path.Combine(folder, name + ".md");
        Atomic(markdown, Markdown(result));
        Atomic(json, System.Text.Json.JsonSerializer.Serialize(result with { Evidence = json }, Text.Json.Options) + "\n");
        return json;
    }

    private static void Atomic(string path, string text) => FileSystem.AtomicFile.WriteText(path, UnixFileMode.UserRead | UnixFileMode.UserWrite, text);

    /// <summary>The report: verdict, what was restored from where, each check, timings, tools.</summary>
    public static string Markdown(DrillResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# Restore drill of `{r.Source}` ({r.Kind}): {(r.Passed ? "PASSED" : "FAILED")}");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"- When: {Text.Json.Time(r.At)} on host `{r.Host}`");
        md.AppendLine(CultureInfo.InvariantCulture, $"- Snapshot: `{r.Snapshot ?? "none"}`");
        md.AppendLine(CultureInfo.InvariantCulture, $"- Scratch place: {r.Scratch ?? "not set up"} (removed afterwards)");
        md.AppendLine("- Measured RTO: " + r.Seconds.ToString("0.000", CultureInfo.InvariantCulture) + " s" +
            (r.RtoSeconds is { } o ? $" against an objective of {o} s: {(r.RtoMet == true ? "met" : r.RtoMet == false ? "MISSED" : "not measured")}" : " (no objective configured: set rto)"));
        if (r.Error is not null)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"- Failure: {r.Error}");
        }

        md.AppendLine();
        md.AppendLine("## Restored from");
        md.AppendLine();
        foreach (var c in r.Copies)
        {
            md.AppendLine($"- `{c.Artifact}`: the copy on target `{c.Target}` (its SHA-256 matched the recorded one)" +
                (c.Skipped.Count > 0 ? $"; passed over: {string.Join("; ", c.Skipped)}" : ""));
        }

        md.AppendLine();
        md.AppendLine("## Checks");
        md.AppendLine();
        md.AppendLine("| check | expected | found | result |");
        md.AppendLine("| --- | --- | --- | --- |");
        foreach (var c in r.Checks)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {Cell(c.Name)} | {Cell(c.Expected)} | {Cell(c.Found)} | {(c.Passed ? "passed" : "**failed**")} |");
        }

        md.AppendLine();
        md.AppendLine("## Timings (seconds)");
        md.AppendLine();
        md.AppendLine("The restore's stages run at once; each is its busy time. The RTO is the wall-clock time of restore, load and checks; setup and teardown are apart.");
        md.AppendLine();
        foreach (var (phase, seconds) in r.Phases)
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"- {phase}: {seconds.ToString("0.000", CultureInfo.InvariantCulture)}");
        }

        if (r.Tools.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("## Tools");
            md.AppendLine();
            foreach (var (tool, version) in r.Tools)
            {
                md.AppendLine(CultureInfo.InvariantCulture, $"- {tool}: {version}");
            }
        }

        if (r.Notes.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("## Notes");
            md.AppendLine();
            foreach (var n in r.Notes)
            {
                md.AppendLine(CultureInfo.InvariantCulture, $"- {n}");
            }
        }

        return md.ToString();
    }

    private static string Cell(string s) => s.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
