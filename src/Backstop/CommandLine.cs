using System.CommandLine;
using Backstop.Cli.Verbs;

namespace Backstop.Cli;

/// <summary>The verbs and their options.</summary>
internal static class CommandLine
{
    public static readonly Option<string?> Config = new("--config", "-c")
    {
        Description = "The configuration file (default: $BACKSTOP_CONFIG, then ./backstop.yaml)",
        Recursive = true,
        HelpName = "FILE",
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print one JSON document on stdout and nothing else there",
        Recursive = true,
    };

    /// <summary>restore --to's help, from what each source kind says it takes.</summary>
    internal static string RestoreToHelp(Core.Plugins.PluginRegistry plugins)
    {
        var kinds = plugins.SourceKinds.Select(k => plugins.Source(k)!).ToList();
        return "Where, by kind: " + string.Join("; ", kinds.Select(k => $"{k.Kind} → {k.RestoreTo}")) +
               ". Examples: " + string.Join(", ", kinds.Select(k => k.RestoreToExample).OfType<string>().Select(e => "--to " + e));
    }

    public static RootCommand Build()
    {
        var root = new RootCommand("""
            Backstop: backups that are reported good only when proven good.

            Exit codes: 0 all good; 1 something failed (a backup, a copy check, a restore, a drill, a doctor check, or status
            with a source not ok); 2 usage or configuration error (file:line:column or the flag); 3 run: every snapshot valid,
            some degraded; 75 another run holds the lock (run --wait waits instead); 130 interrupted.
            """)
        {
            Config,
            Json,
            RunVerb.Declare(),
            StatusVerb.Declare(),
            ListVerb.Declare(),
            ShowVerb.Declare(),
            LsVerb.Declare(),
            VerifyVerb.Declare(),
            RestoreVerb.Declare(),
            DrillVerb.Declare(),
            WalPushVerb.Declare(),
            RehearseVerb.Declare(),
            DoctorVerb.Declare(),
            NotifyVerb.Declare(),
            MetricsVerb.Declare(),
            ServeVerb.Declare(),
            ScheduleVerb.Declare(),
            PruneVerb.Declare(),
            KeygenVerb.Declare(),
            ConfigVerb.Declare(),
            CatalogVerb.Declare()
        };

        return root;
    }

    /// <summary><c>--wait</c> absent: null; bare: 24 hours; <c>--wait=30m</c>: that long.</summary>
    internal static TimeSpan? WaitOf(ParseResult p, Option<string?> option)
    {
        if (p.GetResult(option) is null)
        {
            return null;
        }

        var text = p.GetValue(option);
        if (string.IsNullOrEmpty(text))
        {
            return TimeSpan.FromHours(24);
        }

        return Core.Config.Quantities.TryParseDuration(text, out var d, out var error) && d > TimeSpan.Zero
            ? d
            : throw new Core.Config.ConfigException($"--wait {text}: {(error.Length > 0 ? error : "must be longer than zero")} (a duration such as 30m or 2h)");
    }
}
