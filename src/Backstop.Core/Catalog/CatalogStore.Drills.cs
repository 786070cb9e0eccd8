namespace Backstop.Core.Catalog;

/// <summary>
/// A drill as recorded: the snapshot restored, whether every check passed, the measured RTO (<see cref="Seconds"/>,
/// without the scratch server's setup), the objective it was held to, and the evidence file. <see cref="Detail"/> is
/// the drill's JSON (phases, checks, copies used), kept whole for <c>show</c> and auditors.
/// </summary>
public sealed record DrillInfo(
    long Id,
    string Source,
    string Snapshot,
    DateTimeOffset At,
    bool Passed,
    double Seconds,
    double SetupSeconds,
    long? RtoSeconds,
    bool? RtoMet,
    string? Error,
    string? Evidence,
    string Detail)
{
    /// <summary>The target whose copy the drill restored (drills rotate over a source's targets).</summary>
    public string? Target { get; init; }
}

public sealed partial class CatalogStore
{
    /// <summary>Records one drill (passed or failed); returns its id.</summary>
    public long AddDrill(DrillInfo drill)
    {
        ArgumentNullException.ThrowIfNull(drill);
        using var cmd = Command(
            "INSERT INTO drills(source, snapshot_id, at, passed, seconds, setup_seconds, rto_seconds, rto_met, error, evidence, detail, target) " +
            "VALUES (@s, @id, @at, @p, @sec, @setup, @rto, @met, @e, @ev, @d, @t) RETURNING id",
            ("@s", drill.Source), ("@id", drill.Snapshot), ("@at", Time(drill.At)), ("@p", drill.Passed ? 1L : 0L), ("@sec", drill.Seconds),
            ("@setup", drill.SetupSeconds), ("@rto", drill.RtoSeconds), ("@met", drill.RtoMet is { } m ? (m ? 1L : 0L) : null), ("@e", drill.Error),
            ("@ev", drill.Evidence), ("@d", drill.Detail), ("@t", drill.Target));
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>What a source's state needs of its drills: the newest one and the newest that passed (one row when they are the same), oldest first.</summary>
    public IReadOnlyList<DrillInfo> LatestDrills(string source) => ReadDrills(
        "SELECT id, source, snapshot_id, at, passed, seconds, setup_seconds, rto_seconds, rto_met, error, evidence, detail, target FROM drills " +
        "WHERE id IN (SELECT max(id) FROM drills WHERE source = @s UNION SELECT max(id) FROM drills WHERE source = @s AND passed = 1) ORDER BY id",
        ("@s", source));

    /// <summary>The newest drill and the newest that passed of each named source (one query), each source's oldest first.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<DrillInfo>> LatestDrillsOf(IReadOnlyList<string> sources)
    {
        ArgumentNullException.ThrowIfNull(sources);
        var names = sources.Distinct(StringComparer.Ordinal).ToList();
        var result = names.ToDictionary(n => n, _ => (IReadOnlyList<DrillInfo>)[], StringComparer.Ordinal);
        foreach (var chunk in names.Chunk(500))
        {
            var parameters = chunk.Select((n, i) => ($"@n{i.ToString(System.Globalization.CultureInfo.InvariantCulture)}", (object?)n)).ToArray();
            var list = string.Join(", ", parameters.Select(p => p.Item1));
            foreach (var group in ReadDrills(
                         "SELECT id, source, snapshot_id, at, passed, seconds, setup_seconds, rto_seconds, rto_met, error, evidence, detail, target FROM drills " +
                         $"WHERE id IN (SELECT max(id) FROM drills WHERE source IN ({list}) GROUP BY source UNION SELECT max(id) FROM drills WHERE source IN ({list}) AND passed = 1 GROUP BY source) ORDER BY id",
                         parameters).GroupBy(d => d.Source, StringComparer.Ordinal))
            {
                result[group.Key] = group.ToList();
            }
        }

        return result;
    }

    /// <summary>Drills, oldest first (of one source, or of one snapshot, when given).</summary>
    public IReadOnlyList<DrillInfo> Drills(string? source = null, string? snapshot = null) => ReadDrills(
        "SELECT id, source, snapshot_id, at, passed, seconds, setup_seconds, rto_seconds, rto_met, error, evidence, detail, target FROM drills " +
        "WHERE (CAST(@s AS TEXT) IS NULL OR source = @s) AND (CAST(@id AS TEXT) IS NULL OR snapshot_id = @id) ORDER BY id",
        ("@s", source), ("@id", snapshot));

    private List<DrillInfo> ReadDrills(string sql, params (string Name, object? Value)[] parameters)
    {
        using var cmd = Command(sql, parameters);
        using var r = cmd.ExecuteReader();
        var list = new List<DrillInfo>();
        while (r.Read())
        {
            list.Add(new DrillInfo(r.GetInt64(0), r.GetString(1), r.GetString(2), ParseTime(r.GetString(3)), r.GetInt64(4) == 1, r.GetDouble(5), r.GetDouble(6),
                r.IsDBNull(7) ? null : r.GetInt64(7), r.IsDBNull(8) ? null : r.GetInt64(8) == 1, Str(r, 9), Str(r, 10), r.GetString(11)) { Target = Str(r, 12) });
        }

        return list;
    }
}
