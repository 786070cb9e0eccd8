using System.Globalization;
using System.Text;

namespace Backstop.Core.Config;

/// <summary>
/// A five-field cron schedule written as systemd <c>OnCalendar=</c> expressions (systemd.time(7)) that fire at the
/// same instants, for <c>schedule install --systemd --timers</c>. Checked against <c>systemd-analyze calendar</c> in a
/// test. Cron's ranges with a step become lists (systemd has no such step); day-of-week becomes names. Cronos, whose
/// schedules serve runs, matches a day when both day-of-month and day-of-week match, as systemd does: one line.
/// </summary>
public static class SystemdCalendar
{
    private static readonly string[] Days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    private static readonly string[] Months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

    /// <summary>The <c>OnCalendar=</c> value for <paramref name="schedule"/>, with its time zone when it is not UTC.</summary>
    /// <exception cref="ConfigException">The schedule uses what systemd cannot say (<c>L</c>, <c>W</c>, <c>#</c>).</exception>
    public static string From(Schedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var text = schedule.Text.Trim();
        var fields = Macro(text.ToUpperInvariant()) ?? text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length != 5)
        {
            throw new ConfigException($"schedule '{text}': cannot be written as a systemd timer; use five cron fields");
        }

        var minute = Field(text, fields[0], 0, 59, null);
        var hour = Field(text, fields[1], 0, 23, null);
        var dom = Field(text, fields[2], 1, 31, null);
        var month = Field(text, fields[3], 1, 12, Months);
        var dow = DayOfWeek(text, fields[4]);
        var sb = new StringBuilder();
        if (dow != "*")
        {
            sb.Append(dow).Append(' ');
        }

        sb.Append("*-").Append(month).Append('-').Append(dom).Append(' ').Append(hour).Append(':').Append(minute).Append(":00");
        if (schedule.Zone.Id is not ("UTC" or "Etc/UTC"))
        {
            sb.Append(' ').Append(schedule.Zone.Id);
        }
        else
        {
            sb.Append(" UTC");
        }

        return sb.ToString();
    }

    private static string[]? Macro(string text) => text switch
    {
        "@YEARLY" or "@ANNUALLY" => ["0", "0", "1", "1", "*"],
        "@MONTHLY" => ["0", "0", "1", "*", "*"],
        "@WEEKLY" => ["0", "0", "*", "*", "0"],
        "@DAILY" or "@MIDNIGHT" => ["0", "0", "*", "*", "*"],
        "@HOURLY" => ["0", "*", "*", "*", "*"],
        "@EVERY_MINUTE" => ["*", "*", "*", "*", "*"],
        _ when text.StartsWith('@') => [],
        _ => null,
    };

    /// <summary>One field: '*', values, ranges (a..b), and an explicit list for a step.</summary>
    private static string Field(string text, string field, int min, int max, string[]? names)
    {
        if (field is "*" or "?")
        {
            return "*";
        }

        var parts = new List<string>();
        foreach (var item in field.Split(','))
        {
            Refuse(text, item);
            var (range, step) = SplitStep(text, item);
            // Every step becomes the list of its values: systemd's own repetition (start/step) with a weekday skips days
            // cron fires on (systemd 252: "Mon,Fri *-*-1/11" passes over Friday the 1st), found by a property test.
            if (range == "*")
            {
                parts.Add(step is { } s ? Steps(min, max, s) : "*");
                continue;
            }

            var dash = range.IndexOf('-', StringComparison.Ordinal);
            if (dash < 0)
            {
                var value = Value(text, range, min, max, names);
                parts.Add(step is { } s ? Steps(value, max, s) : value.ToString(CultureInfo.InvariantCulture));
                continue;
            }

            var from = Value(text, range[..dash], min, max, names);
            var to = Value(text, range[(dash + 1)..], min, max, names);
            if (from > to)
            {
                throw new ConfigException($"schedule '{text}': the range {range} runs backwards; systemd timers cannot say it");
            }

            parts.Add(step is { } st
                ? string.Join(',', Enumerable.Range(from, to - from + 1).Where(v => (v - from) % st == 0).Select(v => v.ToString(CultureInfo.InvariantCulture)))
                : $"{from}..{to}");
        }

        return string.Join(',', parts);
    }

    private static string Steps(int from, int to, int step) =>
        string.Join(',', Enumerable.Range(from, to - from + 1).Where(v => (v - from) % step == 0).Select(v => v.ToString(CultureInfo.InvariantCulture)));

    /// <summary>Day of week: names (systemd's Mon..Sun), lists and ranges; steps and Sunday-crossing ranges become lists.</summary>
    private static string DayOfWeek(string text, string field)
    {
        if (field is "*" or "?")
        {
            return "*";
        }

        var days = new SortedSet<int>();
        foreach (var item in field.Split(','))
        {
            Refuse(text, item);
            var (range, step) = SplitStep(text, item);
            int from, to;
            if (range == "*")
            {
                (from, to) = (0, 6);
            }
            else if (range.IndexOf('-', StringComparison.Ordinal) is var dash and >= 0)
            {
                (from, to) = (Day(text, range[..dash]), Day(text, range[(dash + 1)..]));
                if (to == 0 && from > 0)
                {
                    to = 7; // 5-0 or FRI-SUN: through Sunday
                }
            }
            else
            {
                from = Day(text, range);
                to = step is null ? from : 6;
            }

            for (var d = from; d <= to; d += step ?? 1)
            {
                days.Add(d % 7);
            }
        }

        return string.Join(',', days.Select(d => Days[d]));
    }

    private static int Day(string text, string value) =>
        Array.FindIndex(Days, d => d.Equals(value, StringComparison.OrdinalIgnoreCase)) is var named and >= 0 ? named : Value(text, value, 0, 7, null) % 7;

    private static (string Range, int? Step) SplitStep(string text, string item)
    {
        var slash = item.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            return (item, null);
        }

        if (!int.TryParse(item[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var step) || step <= 0)
        {
            throw new ConfigException($"schedule '{text}': '{item}' has no valid step");
        }

        return (item[..slash], step);
    }

    private static int Value(string text, string value, int min, int max, string[]? names)
    {
        if (names is not null && Array.FindIndex(names, n => n.Equals(value, StringComparison.OrdinalIgnoreCase)) is var i and >= 0)
        {
            return i + min;
        }

        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
        {
            throw new ConfigException($"schedule '{text}': '{value}' is not a value from {min} to {max}");
        }

        return v;
    }

    private static void Refuse(string text, string item)
    {
        var bare = item.ToUpperInvariant();
        foreach (var name in Days.Select(d => d.ToUpperInvariant()).Concat(Months))
        {
            bare = bare.Replace(name, "", StringComparison.Ordinal);
        }

        if (bare.IndexOfAny(['L', 'W', '#']) >= 0)
        {
            throw new ConfigException($"schedule '{text}': '{item}' (L, W or #) cannot be written as a systemd timer; " +
                                      "run this schedule under 'backstop serve', or write it without L, W and #");
        }
    }
}
