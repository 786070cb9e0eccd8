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

    public static RootCommand Build()
    {
        var root = new RootCommand("Backstop: backups that are reported good only when proven good.");
        root.Add(Config);
        root.Add(Json);

        var sources = new Option<string[]>("--source", "-s")
        {
            Description = "Only this source (repeatable)",
            HelpName = "NAME",
            AllowMultipleArgumentsPerToken = false,
        };

        var run = new Command("run", "Back up now: capture, seal, ship, verify, commit");
        run.Add(sources);
        run.SetAction((p, ct) => RunVerb.ExecuteAsync(Context.From(p), p.GetValue(sources) ?? [], ct));
        root.Add(run);

        var status = new Command("status", "Per source: state, last valid backup and its age against the RPO, copies");
        status.SetAction((p, ct) => StatusVerb.ExecuteAsync(Context.From(p), ct));
        root.Add(status);

        var listSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var list = new Command("list", "Snapshots, newest last");
        list.Add(listSources);
        list.SetAction((p, ct) => ListVerb.ExecuteAsync(Context.From(p), p.GetValue(listSources) ?? [], ct));
        root.Add(list);

        var snapshot = new Argument<string>("SNAPSHOT") { Description = "A snapshot id (see list)" };
        var show = new Command("show", "A snapshot's artifacts, copies and facts");
        show.Add(snapshot);
        show.SetAction((p, ct) => ShowVerb.ExecuteAsync(Context.From(p), p.GetValue(snapshot)!, ct));
        root.Add(show);

        var verifySources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var deep = new Option<bool>("--deep") { Description = "Read every copy back and check its SHA-256 and format, not only its size" };
        var verify = new Command("verify", "Check that every copy still exists with the right size (--deep: and content)");
        verify.Add(verifySources);
        verify.Add(deep);
        verify.SetAction((p, ct) => VerifyVerb.ExecuteAsync(Context.From(p), p.GetValue(verifySources) ?? [], p.GetValue(deep), ct));
        root.Add(verify);

        var config = new Command("config", "Configuration");
        var check = new Command("check", "Validate the configuration");
        check.SetAction((p, ct) => ConfigVerb.CheckAsync(Context.From(p), ct));
        config.Add(check);
        root.Add(config);

        return root;
    }
}
