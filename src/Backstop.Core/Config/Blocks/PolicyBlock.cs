namespace Backstop.Core.Config;

/// <summary>The policy every source takes unless it says its own: copies, RPO, RTO, schedules and their zone, drills.</summary>
internal sealed record PolicySettings(int MinCopies, TimeSpan Rpo, TimeSpan? Rto, TimeZoneInfo Zone, Schedule? Schedule, TimeSpan? DrillEvery, Schedule? DrillSchedule)
{
    public static PolicySettings Default { get; } = new(1, TimeSpan.FromHours(24), null, TimeZoneInfo.Utc, null, null, null);

    public Policy ToPolicy() => new(MinCopies, Rpo) { Rto = Rto, DrillEvery = DrillEvery };
}

/// <summary><c>policy:</c> the defaults of every source.</summary>
internal static class PolicyBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("policy.min_copies", "1", "Verified copies a snapshot needs to be valid; a source may say its own"),
        new("policy.rpo", "24h", "How old the last valid snapshot may be before status says stale (exit 1)"),
        new("policy.rto", "30m", "A drill slower than this fails; none by default"),
        new("policy.schedule", "\"0 3 * * *\"", "When serve runs each source (cron, five fields)") { Type = "cron schedule" },
        new("policy.schedule_timezone", "Europe/Paris", "The zone of every schedule (an IANA name)") { Default = "UTC" },
        new("policy.drill.every", "7d", "Drill each source this often (serve); a drill older than this makes status say so"),
        new("policy.drill.schedule", "\"30 4 * * 0\"", "When serve drills each source (cron)") { Type = "cron schedule" },
    ];

    public static PolicySettings Parse(ConfigMap top, ConfigDocument document)
    {
        var map = top.Map("policy");
        if (map is null)
        {
            return PolicySettings.Default;
        }

        var minCopies = map.IntOr("min_copies", 1, 1, 100);
        var rpo = map.DurationOr("rpo", TimeSpan.FromHours(24));
        if (rpo <= TimeSpan.Zero)
        {
            document.Report(map.Error("rpo", "must be longer than zero"));
            rpo = TimeSpan.FromHours(24);
        }

        var rto = Durations.Positive(map, "rto");
        var zone = Schedule.ParseZone(map, TimeZoneInfo.Utc);
        var schedule = Schedule.Parse(map, "schedule", zone);
        var drill = map.Map("drill");
        var drillEvery = Durations.Positive(drill, "every");
        var drillSchedule = drill is null ? null : Schedule.Parse(drill, "schedule", zone);
        drill?.EnsureAllKeysKnown(KeyRows.Hint("policy.drill", Keys, "policy.drill.") + " (the kinds' own drill keys go under each source's drill:)");
        map.EnsureAllKeysKnown(KeyRows.Hint("policy", Keys, "policy."));
        return new PolicySettings(minCopies, rpo, rto, zone, schedule, drillEvery, drillSchedule);
    }
}
