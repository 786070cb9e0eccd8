using Backstop.Core.Config;

namespace Backstop.Cli.Verbs;

/// <summary>
/// <c>schedule install --systemd [--user] [--dir DIR]</c>: a systemd service that runs <c>backstop serve</c> with
/// absolute paths (the dotnet host, this program, the configuration), restarted on failure, logging to the journal.
/// The unit is written, not enabled: the command to enable it is printed.
/// </summary>
internal static class ScheduleVerb
{
    public static Task<int> InstallAsync(Context context, bool systemd, bool user, string? dir, CancellationToken cancellationToken)
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

        Directory.CreateDirectory(folder);
        var host = Environment.ProcessPath ?? throw new ConfigException("cannot tell the path of this program's host");
        var program = typeof(ScheduleVerb).Assembly.Location;
        var exec = Path.GetFileNameWithoutExtension(host) == "dotnet" ? $"{Quote(host)} {Quote(program)}" : Quote(host);
        var unit = Path.Combine(folder, "backstop-serve.service");
        var text = $"""
            # Written by `backstop schedule install --systemd{(user ? " --user" : "")}` for {config.File}.
            [Unit]
            Description=Backstop: scheduled backups, drills, notifications and metrics
            Documentation=file://{Path.GetDirectoryName(Path.GetDirectoryName(program))}
            Wants=network-online.target
            After=network-online.target

            [Service]
            Type=simple
            ExecStart={exec} --config {Quote(config.File)} serve
            WorkingDirectory={Path.GetDirectoryName(config.File)}
            # Secrets referenced as env:NAME in the configuration: put NAME=value lines in this file (mode 0600).
            EnvironmentFile=-{(user ? "%h/.config/backstop/env" : "/etc/backstop/env")}
            Restart=on-failure
            RestartSec=30s
            # SIGTERM cancels what runs (recorded as interrupted); give a long dump time to be cancelled cleanly.
            TimeoutStopSec=2min
            KillMode=mixed
            NoNewPrivileges=true
            PrivateTmp=true

            [Install]
            WantedBy={(user ? "default.target" : "multi-user.target")}

            """;
        File.WriteAllText(unit, text);
        Console.WriteLine($"wrote {unit}");
        Console.WriteLine($"enable it with: systemctl{(user ? " --user" : "")} daemon-reload && systemctl{(user ? " --user" : "")} enable --now backstop-serve.service");
        return Task.FromResult(ExitCodes.Ok);
    }

    /// <summary>A word for a unit file's command line: quoted when it holds a space.</summary>
    private static string Quote(string s) => s.Contains(' ', StringComparison.Ordinal) ? $"\"{s.Replace("\"", "\\\"", StringComparison.Ordinal)}\"" : s;
}
