using Backstop.Core.Doctor;
using Backstop.Core.Text;

namespace Backstop.Tests.Util;

/// <summary>Crontab lines and unit commands are shown and sent by doctor with their secrets masked.</summary>
public sealed class SecretMaskTests
{
    [Theory]
    [InlineData("PGPASSWORD=hunter2 /usr/local/bin/dump.sh", "PGPASSWORD=*** /usr/local/bin/dump.sh")]
    [InlineData("env AWS_SECRET_ACCESS_KEY='a b' B2_APP_KEY=\"x\" run", "env AWS_SECRET_ACCESS_KEY=*** B2_APP_KEY=*** run")]
    [InlineData("curl -fsS https://hc-ping.com/0f1a2b3c-aaaa-bbbb-cccc-1234567890ab?rid=1", "curl -fsS https://hc-ping.com/***")]
    [InlineData("rclone sync /srv sftp://backup:s3cr3t@nas.lan/volume1", "rclone sync /srv sftp://backup:***@nas.lan/volume1")]
    [InlineData("mysqldump --password=hunter2 --user=root db", "mysqldump --password=*** --user=root db")]
    [InlineData("notify --token abc123 done", "notify --token *** done")]
    [InlineData("/usr/bin/backup.sh --verbose", "/usr/bin/backup.sh --verbose")]
    public void Secrets_in_commands_are_masked_and_the_rest_is_kept(string text, string masked) => Assert.Equal(masked, SecretMask.Mask(text));

    [Fact]
    public void A_crontab_finding_never_carries_the_secrets_of_its_line()
    {
        var findings = Schedules.CheckCrontab("/etc/cron.d/backup",
            "PATH=/usr/bin:/bin\n0 3 * * * root PGPASSWORD=hunter2 /no/such/dump.sh && curl https://hc-ping.com/0f1a2b3c-dead-beef\n*/5 * broken MYSQL_PWD=hunter3\n",
            systemFormat: true, "/usr/bin:/bin", _ => "/root");
        var text = string.Join("\n", findings.Select(f => f.Message + " " + f.Fix));
        Assert.Contains("/no/such/dump.sh", text, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", text, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter3", text, StringComparison.Ordinal);
        Assert.DoesNotContain("0f1a2b3c", text, StringComparison.Ordinal);
    }
}
