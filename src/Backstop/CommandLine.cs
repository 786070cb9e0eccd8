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
    private static string RestoreToHelp(Core.Plugins.PluginRegistry plugins)
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
            """);
        root.Add(Config);
        root.Add(Json);

        var sources = new Option<string[]>("--source", "-s")
        {
            Description = "Only this source (repeatable)",
            HelpName = "NAME",
            AllowMultipleArgumentsPerToken = false,
        };

        var noPrune = new Option<bool>("--no-prune")
        {
            Description = "Do not apply retention after the run (by default each source whose backup is valid is pruned by its rules)",
        };
        var acceptShrink = new Option<bool>("--accept-shrink")
        {
            Description = "Accept, for this run only, a count that fell to 0 or a shrink past max_shrink (needs --source); recorded on the snapshot, and history restarts there",
        };
        var run = new Command("run", "Back up now: capture, seal, ship, verify, commit; then apply retention to the sources backed up. Exit 0 all good, 1 a backup failed, 3 all valid but some degraded (a copy failed, an expectation warned)");
        run.Add(sources);
        run.Add(noPrune);
        var wait = new Option<string?>("--wait")
        {
            Description = "When another run holds the lock, wait for it (up to DURATION, default 24h) instead of exiting 75; says so on stderr",
            HelpName = "DURATION",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var full = new Option<bool>("--full")
        {
            Description = "Store everything anew: each incremental source starts a new chain with a full snapshot (level 0), and shared blobs (registry layers) are sent again",
        };
        run.Add(acceptShrink);
        run.Add(wait);
        run.Add(full);
        run.SetAction((p, ct) => RunVerb.ExecuteAsync(Context.From(p), p.GetValue(sources) ?? [], !p.GetValue(noPrune), p.GetValue(acceptShrink), WaitOf(p, wait), ct, p.GetValue(full)));
        root.Add(run);

        var statusSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable); the exit code is theirs", HelpName = "NAME" };
        var status = new Command("status", "Per source: state, last valid backup and its age against the RPO, copies. Exit 0 when every source shown is ok, 1 otherwise");
        var statusMachines = new Option<string[]>("--machine", "-m") { Description = "Only the sources this machine runs (repeatable; adds to --source)", HelpName = "NAME" };
        status.Add(statusSources);
        status.Add(statusMachines);
        status.SetAction((p, ct) => StatusVerb.ExecuteAsync(Context.From(p), p.GetValue(statusSources) ?? [], ct, p.GetValue(statusMachines) ?? []));
        root.Add(status);

        var listSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var listAll = new Option<bool>("--all") { Description = "Also the failed records older than each source's last backup (hidden by default)" };
        var list = new Command("list", "Snapshots, newest last; failed records only since each source's last backup, unless --all");
        var listMachines = new Option<string[]>("--machine", "-m") { Description = "Only the snapshots of the sources this machine runs (repeatable; adds to --source)", HelpName = "NAME" };
        list.Add(listSources);
        list.Add(listAll);
        list.Add(listMachines);
        list.SetAction((p, ct) => ListVerb.ExecuteAsync(Context.From(p), p.GetValue(listSources) ?? [], p.GetValue(listAll), ct, p.GetValue(listMachines) ?? []));
        root.Add(list);

        var snapshot = new Argument<string>("SNAPSHOT") { Description = "A snapshot id, a prefix of one only it has (at least 4 characters), or latest (see list)" };
        var showSources = new Option<string[]>("--source", "-s") { Description = "The source whose snapshot is meant (for latest, or to narrow a prefix)", HelpName = "NAME" };
        var show = new Command("show", "A snapshot's artifacts, copies and facts");
        show.Add(snapshot);
        show.Add(showSources);
        show.SetAction((p, ct) => ShowVerb.ExecuteAsync(Context.From(p), p.GetValue(snapshot)!, p.GetValue(showSources) ?? [], ct));
        root.Add(show);

        var lsSnapshot = new Argument<string>("SNAPSHOT") { Description = "A snapshot id, a prefix only it has, or latest (with --source)" };
        var lsPath = new Argument<string?>("PATH") { Description = "Only this path and what is under it (as backed up: /srv/app)", Arity = ArgumentArity.ZeroOrOne };
        var lsSources = new Option<string[]>("--source", "-s") { Description = "The source whose snapshot is meant (for latest, or to narrow a prefix)", HelpName = "NAME" };
        var lsArtifact = new Option<string?>("--artifact") { Description = "Only this artifact (see show); by default every tar artifact", HelpName = "NAME" };
        var ls = new Command("ls", "What a snapshot's tar artifacts hold, streamed from a stored copy: mode, owner, size, time, name (--json: one object per entry)");
        ls.Add(lsSnapshot);
        ls.Add(lsPath);
        ls.Add(lsSources);
        ls.Add(lsArtifact);
        ls.SetAction((p, ct) => LsVerb.ExecuteAsync(Context.From(p), p.GetValue(lsSnapshot)!, p.GetValue(lsPath), p.GetValue(lsSources) ?? [], p.GetValue(lsArtifact), ct));
        root.Add(ls);

        var verifySources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var deep = new Option<bool>("--deep") { Description = "Read every copy back and check its SHA-256 and format, not only its size" };
        var verify = new Command("verify", "Check that every copy still exists with the right size (--deep: and content)");
        verify.Add(verifySources);
        verify.Add(deep);
        verify.SetAction((p, ct) => VerifyVerb.ExecuteAsync(Context.From(p), p.GetValue(verifySources) ?? [], p.GetValue(deep), ct));
        root.Add(verify);

        var restoreSource = new Option<string>("--source", "-s") { Description = "The source to restore", HelpName = "NAME", Required = true };
        var restoreSnapshot = new Option<string?>("--snapshot") { Description = "A snapshot id, a prefix only it has (at least 4 characters), or latest (the default: the newest with a verified copy)", HelpName = "ID" };
        var restoreArtifact = new Option<string?>("--artifact") { Description = "Only this artifact (see show)", HelpName = "NAME" };
        var restoreTo = new Option<string?>("--to")
        {
            Description = RestoreToHelp(Plugins.Registry),
            HelpName = "DEST",
        };
        var restoreForce = new Option<bool>("--force") { Description = "Restore over a destination that is not empty" };
        var restoreExplain = new Option<bool>("--explain") { Description = "Print the stock-tool commands that restore it without backstop" };
        var restoreIdentity = new Option<string[]>("--identity", "-i") { Description = "An age identity file for encrypted snapshots (besides encryption.identities)", HelpName = "FILE" };
        var restoreInclude = new Option<string[]>("--include")
        {
            Description = "Files snapshots: only the paths this glob matches, and what is under them (repeatable; /srv/app/config, *.conf, /etc/nginx/**)",
            HelpName = "GLOB",
        };
        var restoreStrip = new Option<string?>("--strip-prefix")
        {
            Description = "Files snapshots: restore paths relative to this one (/srv/app/config/x lands as DEST/x with --strip-prefix /srv/app/config); the rest is left out",
            HelpName = "PATH",
        };
        var restoreToTime = new Option<string?>("--to-time")
        {
            Description = "A source with a continuous archive (postgres, mode: physical): recover to this time, with its zone ('2026-12-05 14:03:00+00'), from the newest base backup before it and the archived WAL",
            HelpName = "TIME",
        };
        var restoreToLsn = new Option<string?>("--to-lsn") { Description = "As --to-time, to this position of the archive (an LSN: 0/16B3748)", HelpName = "LSN" };
        var restoreStart = new Option<bool>("--start")
        {
            Description = "A restore to a point (postgres, mode: physical): also start the restored server on a free loopback port and wait until it has replayed to the point and promoted; it keeps running",
        };
        var restore = new Command("restore", "Restore a snapshot (its hash is checked first; another target is used when a copy is bad)");
        foreach (var o in new Option[] { restoreSource, restoreSnapshot, restoreArtifact, restoreTo, restoreForce, restoreExplain, restoreIdentity, restoreInclude, restoreStrip,
                     restoreToTime, restoreToLsn, restoreStart })
        {
            restore.Add(o);
        }

        restore.SetAction((p, ct) => RestoreVerb.ExecuteAsync(Context.From(p), p.GetValue(restoreSource)!, p.GetValue(restoreSnapshot),
            p.GetValue(restoreArtifact), p.GetValue(restoreTo), p.GetValue(restoreForce), p.GetValue(restoreExplain), p.GetValue(restoreIdentity) ?? [],
            p.GetValue(restoreInclude) ?? [], p.GetValue(restoreStrip), ct, p.GetValue(restoreToTime), p.GetValue(restoreToLsn), p.GetValue(restoreStart)));
        root.Add(restore);

        var drillSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var drillSnapshot = new Option<string?>("--snapshot")
        {
            Description = "Which snapshot: latest (default), random (any valid one), or an id (with one --source)", HelpName = "ID|latest|random",
        };
        var drillIdentity = new Option<string[]>("--identity", "-i") { Description = "An age identity file for encrypted snapshots (besides encryption.identities)", HelpName = "FILE" };
        var drill = new Command("drill",
            "Prove a backup restores: restore a snapshot into a scratch place Backstop creates and always removes (a folder, a throwaway server), " +
            "compare its facts, run the kind's checks and smoke queries, and measure the restore (the RTO). Recorded, with an evidence file in drills/ " +
            "beside the catalog. Exit 0 when every drill passed, 1 otherwise");
        var drillTarget = new Option<string?>("--target", "-t")
        {
            Description = "Restore from this target's copy only (by default a source's drills rotate over its targets, least recently drilled first)", HelpName = "NAME",
        };
        drill.Add(drillSources);
        drill.Add(drillSnapshot);
        drill.Add(drillIdentity);
        drill.Add(drillTarget);
        drill.SetAction((p, ct) => DrillVerb.ExecuteAsync(Context.From(p), p.GetValue(drillSources) ?? [], p.GetValue(drillSnapshot), p.GetValue(drillIdentity) ?? [],
            p.GetValue(drillTarget), ct));
        root.Add(drill);

        var walPath = new Argument<string>("PATH") { Description = "The WAL file (archive_command's %p)" };
        var walSource = new Option<string?>("--source", "-s") { Description = "The physical postgres source it belongs to (needed when there are several)", HelpName = "NAME" };
        var walPush = new Command("wal-push",
            "PostgreSQL's archive_command (archive_command = 'backstop -c FILE wal-push %p'): ship one WAL file to the source's targets through " +
            "the same pipeline as a backup, read it back, and record the LSN range it covers. Exit 0 once min_copies targets hold it (idempotent for " +
            "the same content; other content under the same name is refused), non-zero otherwise (PostgreSQL keeps it and retries). Never waits for the run lock");
        walPush.Add(walPath);
        walPush.Add(walSource);
        walPush.SetAction((p, ct) => WalPushVerb.ExecuteAsync(Context.From(p), p.GetValue(walSource), p.GetValue(walPath)!, ct));
        root.Add(walPush);

        var scenarioName = new Argument<string>("SCENARIO") { Description = "A scenario of recovery.scenarios" };
        var rehearse = new Command("rehearse",
            "Rehearse a disaster: rebuild the view of the snapshots from the targets the scenario leaves (never the live catalog), restore every " +
            "source it loses from the surviving copies only, in dependency order, into scratch places with each kind's drill checks, measure the " +
            "total against the scenario's rto, and write the runbook that was just run (runbook-SCENARIO.md in drills/). Exit 0 when every restore " +
            "passed within the objective, 1 otherwise");
        rehearse.Add(scenarioName);
        rehearse.SetAction((p, ct) => RehearseVerb.ExecuteAsync(Context.From(p), p.GetValue(scenarioName)!, ct));
        root.Add(rehearse);

        var doctorSources = new Option<string[]>("--source", "-s") { Description = "Only this source and its targets (repeatable)", HelpName = "NAME" };
        var doctor = new Command("doctor",
            "Check everything backups depend on without backing anything up: every source's and target's preflight (tools, credentials, a probe " +
            "object), free space, replication, databases no source covers, crontabs and timers, single points of failure, freshness, drills, " +
            "clocks, the configuration file's permissions. Exit 1 when a check fails; warnings alone exit 0");
        doctor.Add(doctorSources);
        doctor.SetAction((p, ct) => DoctorVerb.ExecuteAsync(Context.From(p), p.GetValue(doctorSources) ?? [], ct));
        root.Add(doctor);

        var notifyTest = new Command("test", "Send a test message to every notifier (exit 1 when one could not be delivered)");
        notifyTest.SetAction((p, ct) => NotifyVerb.TestAsync(Context.From(p), ct));
        var notify = new Command("notify", "Notifiers (notify: in the configuration)");
        notify.Add(notifyTest);
        root.Add(notify);

        var textfile = new Option<string?>("--textfile")
        {
            Description = "Write them into this file for node_exporter's textfile collector (atomically: written aside, then renamed)", HelpName = "PATH",
        };
        var metrics = new Command("metrics", "The Prometheus metrics of what the catalog recorded (state per source, last success, age, RPO, copies, drills, runs), on stdout or --textfile");
        metrics.Add(textfile);
        metrics.SetAction((p, ct) => MetricsVerb.ExecuteAsync(Context.From(p), p.GetValue(textfile), ct));
        root.Add(metrics);

        var serve = new Command("serve",
            "Run the schedules in the foreground (plain log lines for systemd or Kubernetes): backups, drills and deep verifies when due, " +
            "catching up at start, never two of one source at once; notifications; /metrics, /api/status and /healthz on serve.listen (127.0.0.1:8080)");
        serve.SetAction((p, ct) => ServeVerb.ExecuteAsync(Context.From(p), ct));
        root.Add(serve);

        var installSystemd = new Option<bool>("--systemd") { Description = "Write a systemd service that runs 'backstop serve'" };
        var installUser = new Option<bool>("--user") { Description = "A user service (~/.config/systemd/user) instead of a system one (/etc/systemd/system)" };
        var installDir = new Option<string?>("--dir") { Description = "Write the unit into this folder instead", HelpName = "DIR" };
        var installTimers = new Option<bool>("--timers")
        {
            Description = "Instead of a serve service, a oneshot service and a timer per schedule (each source's run, drill.schedule, verify.deep_schedule): systemd is the scheduler",
        };
        var install = new Command("install", "Install serve as a systemd service, or run services with timers (--timers), with absolute paths (written, not enabled; the command to enable them is printed)");
        install.Add(installSystemd);
        install.Add(installTimers);
        install.Add(installUser);
        install.Add(installDir);
        install.SetAction((p, ct) => ScheduleVerb.InstallAsync(Context.From(p), p.GetValue(installSystemd), p.GetValue(installUser), p.GetValue(installDir), p.GetValue(installTimers), ct));
        var schedule = new Command("schedule", "Running on a schedule");
        schedule.Add(install);
        root.Add(schedule);

        var pruneSources = new Option<string[]>("--source", "-s") { Description = "Only this source (repeatable)", HelpName = "NAME" };
        var pruneDryRun = new Option<bool>("--dry-run", "-n") { Description = "Only say what would be removed, and why each snapshot stays" };
        var pruneForce = new Option<bool>("--force") { Description = "Prune even a source whose newest snapshot is not valid" };
        var prune = new Command("prune", "Apply retention: remove snapshots no rule keeps (never the newest valid one)");
        prune.Add(pruneSources);
        prune.Add(pruneDryRun);
        prune.Add(pruneForce);
        prune.SetAction((p, ct) => PruneVerb.ExecuteAsync(Context.From(p), p.GetValue(pruneSources) ?? [], p.GetValue(pruneDryRun), p.GetValue(pruneForce), ct));
        root.Add(prune);

        var keygenOutput = new Option<string>("--output", "-o") { Description = "The identity file to write (created 0600, never overwritten)", HelpName = "FILE", Required = true };
        var keygen = new Command("keygen", "Make an age identity for encryption: writes the secret key file and prints its recipient (age1…)");
        keygen.Add(keygenOutput);
        keygen.SetAction((p, ct) => Task.FromResult(KeygenVerb.Execute(Context.From(p), p.GetValue(keygenOutput)!)));
        root.Add(keygen);

        var config = new Command("config", "Configuration");
        var check = new Command("check", "Validate the configuration and print the expectations in force per source");
        check.SetAction((p, ct) => ConfigVerb.CheckAsync(Context.From(p), ct));
        config.Add(check);
        var reference = new Command("reference", "Print the configuration reference (Markdown): every key of every kind, its type, default and an example; docs/configuration.md is this");
        reference.SetAction((p, ct) => ConfigVerb.ReferenceAsync(ct));
        config.Add(reference);
        root.Add(config);

        var rebuildForce = new Option<bool>("--force") { Description = "Replace a catalog that holds snapshots (the old one is kept beside it)" };
        var rebuild = new Command("rebuild", "Recreate the catalog from the manifests on the targets");
        rebuild.Add(rebuildForce);
        rebuild.SetAction((p, ct) => CatalogVerb.RebuildAsync(Context.From(p), p.GetValue(rebuildForce), ct));
        var migrateTo = new Option<string>("--to") { Description = "The empty PostgreSQL database to copy the catalog into (postgresql://USER@HOST:PORT/DB, libpq's sslmode etc. in the query)", Required = true };
        var migratePassword = new Option<string?>("--password") { Description = "Where its password is: env:NAME or file:PATH (default: PGPASSWORD if set)" };
        var migrate = new Command("migrate", "Copy the embedded catalog's whole history into a shared PostgreSQL catalog");
        migrate.Add(migrateTo);
        migrate.Add(migratePassword);
        migrate.SetAction((p, ct) => CatalogVerb.MigrateAsync(Context.From(p), p.GetValue(migrateTo)!, p.GetValue(migratePassword), ct));
        var catalogCommand = new Command("catalog", "The catalog of snapshots");
        catalogCommand.Add(rebuild);
        catalogCommand.Add(migrate);
        root.Add(catalogCommand);

        return root;
    }

    /// <summary><c>--wait</c> absent: null; bare: 24 hours; <c>--wait=30m</c>: that long.</summary>
    private static TimeSpan? WaitOf(ParseResult p, Option<string?> option)
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
