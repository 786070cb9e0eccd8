using Cronos;

namespace Backstop.Core.Config;

/// <summary>A cron schedule (five fields, Cronos) in a time zone (default UTC), as written.</summary>
public sealed record Schedule(string Text, CronExpression Cron, TimeZoneInfo Zone)
{
    /// <summary>The first occurrence after <paramref name="from"/>, or null when the expression never fires again.</summary>
    public DateTimeOffset? Next(DateTimeOffset from) => Cron.GetNextOccurrence(from, Zone);

    /// <summary>
    /// The time between two occurrences around <paramref name="now"/>: what "older than its schedule's interval"
    /// means for catch-up (a daily schedule: a day).
    /// </summary>
    public TimeSpan Interval(DateTimeOffset now)
    {
        var first = Next(now);
        var second = first is { } f ? Next(f) : null;
        return first is { } a && second is { } b ? b - a : TimeSpan.MaxValue;
    }

    /// <summary>Parses <c>KEY: "0 3 * * *"</c> (and the zone) from a mapping; null when the key is absent.</summary>
    public static Schedule? Parse(ConfigMap map, string key, TimeZoneInfo zone)
    {
        ArgumentNullException.ThrowIfNull(map);
        var text = map.String(key);
        if (text is null)
        {
            return null;
        }

        if (text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length != 5 && !text.StartsWith('@'))
        {
            throw map.Error(key, $"'{text}' is not a cron schedule of five fields (minute hour day-of-month month day-of-week), like \"0 3 * * *\"");
        }

        try
        {
            return new Schedule(text, CronExpression.Parse(text, CronFormat.Standard), zone);
        }
        catch (CronFormatException e)
        {
            throw map.Error(key, $"'{text}' is not a cron schedule: {e.Message}");
        }
    }

    /// <summary>The zone named by <c>schedule_timezone</c> (an IANA name such as Europe/Paris), or <paramref name="fallback"/>.</summary>
    public static TimeZoneInfo ParseZone(ConfigMap? map, TimeZoneInfo fallback)
    {
        var name = map?.String("schedule_timezone");
        if (name is null)
        {
            return fallback;
        }

        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(name);
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            throw map!.Error("schedule_timezone", $"'{name}' is not a time zone known here; use an IANA name such as UTC or Europe/Paris");
        }
    }
}

/// <summary>
/// <c>serve:</c> how many sources run at once, where the web side listens, its token, the jitter of scheduled starts,
/// and the host names its web side answers to (null: loopback names, this machine's name and the listen address).
/// </summary>
public sealed record ServeOptions(int Parallel, string Listen, SecretRef? Token, TimeSpan Jitter)
{
    public IReadOnlyList<string>? Hostnames { get; init; }

    public static ServeOptions Default { get; } = new(1, "127.0.0.1:8080", null, TimeSpan.Zero);
}
