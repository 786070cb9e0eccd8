using Backstop.Core.Config;
using Cronos;

namespace Backstop.Tests.Config;

public sealed class SystemdCalendarTests
{
    private static Schedule Cron(string text, string zone = "UTC") =>
        new(text, text.StartsWith('@') ? CronExpression.Parse(text) : CronExpression.Parse(text, CronFormat.Standard), TimeZoneInfo.FindSystemTimeZoneById(zone));

    [Theory]
    [InlineData("0 3 * * *", "*-*-* 3:0:00 UTC")]
    [InlineData("*/15 * * * *", "*-*-* *:0,15,30,45:00 UTC")]
    [InlineData("30 2 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 2:30:00 UTC")]
    [InlineData("0 9-17/4 * * *", "*-*-* 9,13,17:0:00 UTC")]
    [InlineData("0 0 1,15 JAN,JUL SUN", "Sun *-1,7-1,15 0:0:00 UTC")]
    [InlineData("0 22 * * FRI-SUN", "Sun,Fri,Sat *-*-* 22:0:00 UTC")]
    [InlineData("@weekly", "Sun *-*-* 0:0:00 UTC")]
    public void A_cron_schedule_becomes_the_systemd_calendar_that_fires_at_the_same_times(string cron, string calendar)
    {
        Assert.Equal(calendar, SystemdCalendar.From(Cron(cron)));
    }

    [Fact]
    public void The_time_zone_goes_with_the_calendar()
    {
        Assert.Equal("*-*-* 3:0:00 Europe/Paris", SystemdCalendar.From(Cron("0 3 * * *", "Europe/Paris")));
    }

    [Theory]
    [InlineData("0 0 L * *", "'L'")]
    [InlineData("0 0 15W * *", "'15W'")]
    [InlineData("0 0 * * 5#3", "'5#3'")]
    public void What_systemd_cannot_say_is_refused_naming_the_field_and_the_way_out(string cron, string field)
    {
        var e = Assert.Throws<ConfigException>(() => SystemdCalendar.From(Cron(cron)));
        Assert.Contains(field, e.Message, StringComparison.Ordinal);
        Assert.Contains("backstop serve", e.Message, StringComparison.Ordinal);
    }
}
