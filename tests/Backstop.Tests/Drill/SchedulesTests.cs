using Backstop.Core.Doctor;
using Backstop.Core.Plugins;

namespace Backstop.Tests.Drill;

public class SchedulesTests
{
    private static List<List<string>> Commands(string line) => Schedules.SimpleCommands(line).ToList();

    [Fact]
    public void A_command_line_splits_into_simple_commands_outside_quotes_with_redirections_dropped()
    {
        var c = Commands("cd /srv && ./backup.sh --all >> /var/log/b.log 2>&1 | logger -t 'backup; nightly' ; echo \"a && b\"");
        Assert.Equal([["cd", "/srv"], ["./backup.sh", "--all"], ["logger", "-t", "backup; nightly"], ["echo", "a && b"]], c);
    }

    [Fact]
    public void Redirections_to_a_descriptor_are_not_background_jobs() =>
        Assert.Equal([["pg_dump", "shop"]], Commands("pg_dump shop &>/dev/null"));

    private static IReadOnlyList<Finding> Check(string crontab, bool? system = false, string path = "/usr/bin:/bin") =>
        Schedules.CheckCrontab("/etc/cron.d/test", crontab, system, path, _ => "/root");

    [Fact]
    public void Wrappers_and_assignments_are_looked_through_to_the_program_they_run()
    {
        var f = Check("0 3 * * * LANG=C nice -n 10 flock -n /run/b.lock /opt/gone/backup.sh\n");
        Assert.Contains("/opt/gone/backup.sh does not exist", Assert.Single(f).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_percent_ends_the_command_and_the_rest_is_input()
    {
        var f = Check("0 3 * * * /bin/true % /opt/gone/not-a-command\n");
        Assert.Equal(FindingStatus.Ok, Assert.Single(f).Status);
    }

    [Fact]
    public void A_cd_into_a_missing_folder_fails_and_a_relative_script_is_found_from_the_folder_cd_went_to()
    {
        Assert.Contains("folder /opt/retired does not exist", Assert.Single(Check("0 3 * * * cd /opt/retired && ./run.sh\n")).Message, StringComparison.Ordinal);
        Assert.Contains("/bin/not-here.sh does not exist", Assert.Single(Check("0 3 * * * cd /bin && ./not-here.sh\n")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_system_format_skips_the_user_field_and_special_times_have_one_field()
    {
        Assert.Equal(FindingStatus.Ok, Assert.Single(Check("@reboot root /bin/true\n*/5 * * * * root /bin/true\n", system: true)).Status);
        Assert.Contains("'root'", Assert.Single(Check("*/5 * * * * root /bin/true\n", system: false)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_path_line_in_the_crontab_is_the_path_cron_uses()
    {
        var f = Check("PATH=/nowhere\n0 3 * * * sh -c true\n");
        Assert.Contains("'sh' is not in cron's PATH (/nowhere); here it is /usr/bin/sh", Assert.Single(f).Message.Replace("/bin/sh;", "/usr/bin/sh;", StringComparison.Ordinal),
            StringComparison.Ordinal);
    }

    [Fact]
    public void Command_substitutions_inline_scripts_and_modules_are_not_taken_for_programs_or_files()
    {
        Assert.Equal(FindingStatus.Ok, Assert.Single(Check("0 3 * * * /bin/true > /srv/db-$(date +\\%F).sql 2>&1\n")).Status);
        Assert.Equal(FindingStatus.Ok, Assert.Single(Check("0 3 * * * echo `date` $(hostname -s)\n")).Status);
        Assert.Equal(FindingStatus.Ok, Assert.Single(Check("0 3 * * * sh -ec 'exit 0'\n0 4 * * * sh -c 'exit 0'\n")).Status);
    }

    [Fact]
    public void A_tilde_is_the_crontab_owners_home()
    {
        var f = Schedules.CheckCrontab("/var/spool/cron/crontabs/app", "0 3 * * * ~/bin/backup.sh\n", false, "/usr/bin:/bin", _ => "/home/app-that-does-not-exist");
        Assert.Contains("/home/app-that-does-not-exist/bin/backup.sh does not exist", Assert.Single(f).Message, StringComparison.Ordinal);
    }
}
