namespace Backstop.Core.Catalog;

/// <summary>
/// A disaster rehearsal as recorded: the scenario, whether every restore passed within its objective, the measured
/// total (with the manual estimates), the objective, and the runbook it wrote. <see cref="Detail"/> is its JSON.
/// </summary>
public sealed record RehearsalInfo(long Id, string Scenario, DateTimeOffset At, bool Passed, double Seconds, long RtoSeconds, bool RtoMet, string? Error,
    string? Runbook, string Detail);

public sealed partial class CatalogStore
{
    public long AddRehearsal(RehearsalInfo r)
    {
        ArgumentNullException.ThrowIfNull(r);
        using var cmd = Command(
            "INSERT INTO rehearsals(scenario, at, passed, seconds, rto_seconds, rto_met, error, runbook, detail) VALUES (@s, @at, @p, @sec, @rto, @met, @e, @rb, @d) RETURNING id",
            ("@s", r.Scenario), ("@at", Time(r.At)), ("@p", r.Passed ? 1L : 0L), ("@sec", r.Seconds), ("@rto", r.RtoSeconds), ("@met", r.RtoMet ? 1L : 0L),
            ("@e", r.Error), ("@rb", r.Runbook), ("@d", r.Detail));
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>Rehearsals, oldest first (of one scenario, when given).</summary>
    public IReadOnlyList<RehearsalInfo> Rehearsals(string? scenario = null)
    {
        using var cmd = Command(
            "SELECT id, scenario, at, passed, seconds, rto_seconds, rto_met, error, runbook, detail FROM rehearsals WHERE (CAST(@s AS TEXT) IS NULL OR scenario = @s) ORDER BY id",
            ("@s", scenario));
        using var r = cmd.ExecuteReader();
        var list = new List<RehearsalInfo>();
        while (r.Read())
        {
            list.Add(new RehearsalInfo(r.GetInt64(0), r.GetString(1), ParseTime(r.GetString(2)), r.GetInt64(3) == 1, r.GetDouble(4), r.GetInt64(5), r.GetInt64(6) == 1,
                Str(r, 7), Str(r, 8), r.GetString(9)));
        }

        return list;
    }
}
