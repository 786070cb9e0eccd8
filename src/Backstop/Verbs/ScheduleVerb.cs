using System.CommandLine;
using System.Globalization;
using Backstop.Core.Config;

namespace Backstop.Cli.Verbs;

/// <summary>
/// <c>schedule install --systemd [--user] [--dir DIR] [--timers]</c>. By default a systemd service that runs
/// <c>backstop serve</c> with absolute paths (the dotnet host, this program, the configuration), restarted on failure,
/// logging to the journal. With <c>--timers</c>, for those who want systemd to be the scheduler: per source a oneshot
/// run service and a timer on the source's cron schedule (persistent, so a slot missed while the machine was off runs
/// at boot), the same for drill schedules and the deep verify. Units are written, not enabled: the command to enable
/// them is printed. Units an earlier install wrote for what is no longer scheduled are removed.
/// </summary>
internal static class ScheduleVerb
{
    /// <summary>The <c>schedule</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var installSystemd = new Option<bool>("--systemd") { Description = "Write a systemd service that runs 'backstop serve'" };
        var installUser = new Option<bool>("--user") { Description = "A user service (~/.config/systemd/user) instead of a system one (/etc/systemd/system)" };
        var installDir = new Option<string?>("--dir") { Description = "Write the unit into this folder instead", HelpName = "DIR" };
        var installTimers = new Option<bool>("--timers")
        {
            Description = "Instead of a serve service, a oneshot service and a timer per schedule (each source's run, drill.schedule, verify.deep_schedule): systemd is the scheduler",
        };
        var install = new Command("install", "Install serve as a systemd service, or run services with timers (--timers), with absolute paths (written, not enabled; the command to enable them is printed)")
        {
            installSystemd,
            installTimers,
            installUser,
            installDir
        };
        install.SetAction((p, ct) => ScheduleVerb.InstallAsync(Context.From(p), p.GetValue(installSystemd), p.GetValue(installUser), p.GetValue(installDir), p.GetValue(installTimers)));
        var schedule = new Command("schedule", "Running on a schedule")
        {
            install
        };
        return schedule;
    }

    private const string Header = "# Written by `backstop schedule install";

    public static Task<int> InstallAsync(Context context, bool systemd, bool user, string? dir, bool timers)
    {
        if (!systemd)
        {
            throw new ConfigException("schedule install: say where: --systemd (the only scheduler it installs for; cron users run 'backstop run' from their crontab)");
        }

        var config = context.LoadConfig(); // a configuration that does not load is never installed
        var folder = dir is not null ? Path.GetFullPath(dir)
            : user ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "systemd", "user")
            : "/etc/systemd/system";
        if (dir is not null && !Directory.Exists(folder))
        {
            throw new ConfigException($"--dir {dir}: the folder does not exist");
        }

        var host = Environment.ProcessPath ?? throw new ConfigException("cannot tell the path of this program's host");
        var program = typeof(ScheduleVerb).Assembly.Location;
        var exec = (Path.GetFileNameWithoutExtension(host) == "dotnet" ? $"{Quote(host)} {Quote(program)}" : Quote(host)) + $" --config {Quote(config.File)}";
        var units = timers ? TimerUnits(config, exec, user, program) : ServeUnits(config, exec, user, program);
        if (timers && units.Count == 0)
        {
            throw new ConfigException("schedule install --timers: nothing is scheduled; give sources a schedule: (or policy.schedule), drill.schedule or verify.deep_schedule");
        }

        Directory.CreateDirectory(folder);
        foreach (var (name, text) in units)
        {
            var path = Path.Combine(folder, name);
            Backstop.Core.FileSystem.AtomicFile.WriteText(path, (UnixFileMode)0x1A4, text); // 0644, as systemd units are; never through a planted link
            Console.WriteLine($"wrote {path}");
        }

        // Units of ours that this install no longer writes (a source removed or unscheduled, serve replaced by timers).
        foreach (var stale in Directory.GetFiles(folder, "backstop-*").Where(f => f.EndsWith(".service", StringComparison.Ordinal) || f.EndsWith(".timer", StringComparison.Ordinal))
                     .Where(f => !units.ContainsKey(Path.GetFileName(f))).Order(StringComparer.Ordinal))
        {
            using (var reader = new StreamReader(stale))
            {
                if (reader.ReadLine()?.StartsWith(Header, StringComparison.Ordinal) != true)
                {
                    continue; // not written by us: never touched
                }
            }

            File.Delete(stale);
            Console.WriteLine($"removed {stale} (written by an earlier install for what is no longer scheduled; disable it if it was enabled)");
        }

        var ctl = user ? "systemctl --user" : "systemctl";
        var enable = timers ? string.Join(' ', units.Keys.Where(k => k.EndsWith(".timer", StringComparison.Ordinal)).Order(StringComparer.Ordinal)) : "backstop-serve.service";
        Console.WriteLine($"enable with: {ctl} daemon-reload && {ctl} enable --now {enable}");
        if (timers)
        {
            foreach (var source in config.Sources.Where(s => s.Drill.Every is not null && s.Drill.Schedule is null))
            {
                Console.WriteLine($"note: {source.Name}'s drill.every is evaluated by 'backstop serve'; with timers, give it drill.schedule to drill on a timer");
            }

            Console.WriteLine("note: without serve, stale sources are told only when a run happens; a healthchecks notifier catches runs that never start");
        }

        return Task.FromResult(ExitCodes.Ok);
    }

    private static Dictionary<string, string> ServeUnits(BackstopConfig config, string exec, bool user, string program) => new(StringComparer.Ordinal)
    {
        ["backstop-serve.service"] = $"""
            {Header} --systemd{(user ? " --user" : "")}` for {config.File}.
            [Unit]
            Description=Backstop: scheduled backups, drills, notifications and metrics
            Documentation=file://{Path.GetDirectoryName(Path.GetDirectoryName(program))}
            Wants=network-online.target
            After=network-online.target

            [Service]
            Type=simple
            ExecStart={exec} serve
            WorkingDirectory={Path.GetDirectoryName(config.File)}
            {EnvironmentFileLine(user)}
            Restart=on-failure
            RestartSec=30s
            # SIGTERM cancels what runs (recorded as interrupted); give a long dump time to be cancelled cleanly.
            TimeoutStopSec=2min
            KillMode=mixed
            NoNewPrivileges=true
            PrivateTmp=true

            [Install]
            WantedBy={(user ? "default.target" : "multi-user.target")}

            """,
    };

    /// <summary>Per scheduled job a oneshot service and its timer.</summary>
    private static Dictionary<string, string> TimerUnits(BackstopConfig config, string exec, bool user, string program)
    {
        var units = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(string unit, string what, string command, Schedule schedule)
        {
            var calendar = SystemdCalendar.From(schedule);
            units[$"{unit}.service"] = $"""
                {Header} --systemd --timers{(user ? " --user" : "")}` for {config.File}.
                [Unit]
                Description=Backstop: {what}
                Documentation=file://{Path.GetDirectoryName(Path.GetDirectoryName(program))}
                Wants=network-online.target
                After=network-online.target

                [Service]
                Type=oneshot
                ExecStart={exec} {command}
                WorkingDirectory={Path.GetDirectoryName(config.File)}
                {EnvironmentFileLine(user)}
                # A dump may take hours; SIGTERM cancels it cleanly (recorded as interrupted).
                TimeoutStartSec=infinity
                TimeoutStopSec=2min
                KillMode=mixed
                NoNewPrivileges=true
                PrivateTmp=true

                """;
            var jitter = config.Serve.Jitter > TimeSpan.Zero
                ? $"RandomizedDelaySec={((long)config.Serve.Jitter.TotalSeconds).ToString(CultureInfo.InvariantCulture)}s\n"
                : "";
            units[$"{unit}.timer"] = $"""
                {Header} --systemd --timers{(user ? " --user" : "")}` for {config.File}.
                [Unit]
                Description=Backstop: {what}, on "{schedule.Text}" ({schedule.Zone.Id})

                [Timer]
                OnCalendar={calendar}
                # A slot missed while the machine was off runs at the next boot (serve's catch-up).
                Persistent=true
                AccuracySec=1s
                {jitter}
                [Install]
                WantedBy=timers.target

                """;
        }

        foreach (var source in config.Sources)
        {
            if (source.Schedule is { } run)
            {
                Add($"backstop-run-{source.Name}", $"back up {source.Name}", $"run --source {source.Name}", run);
            }

            if (source.Drill.Schedule is { } drill)
            {
                Add($"backstop-drill-{source.Name}", $"drill {source.Name}", $"drill --source {source.Name}", drill);
            }
        }

        if (config.DeepVerifySchedule is { } deep)
        {
            Add("backstop-verify-deep", "read every copy back", "verify --deep", deep);
        }

        return units;
    }

    private static string EnvironmentFileLine(bool user) =>
        "# Secrets referenced as env:NAME in the configuration: put NAME=value lines in this file (mode 0600).\n" +
        $"EnvironmentFile=-{(user ? "%h/.config/backstop/env" : "/etc/backstop/env")}";

    /// <summary>A word for a unit file's command line: quoted when it holds a space.</summary>
    private static string Quote(string s) => s.Contains(' ', StringComparison.Ordinal) ? $"\"{s.Replace("\"", "\\\"", StringComparison.Ordinal)}\"" : s;
}
