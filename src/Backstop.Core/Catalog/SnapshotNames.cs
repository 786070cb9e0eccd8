using Backstop.Core.Config;

namespace Backstop.Core.Catalog;

/// <summary>
/// A snapshot as a person names it, the same way for every verb (show, restore, drill): its whole id, a prefix of it
/// that only one snapshot has (as git takes a short commit id), its random suffix alone (<c>4ed8</c> of
/// <c>20261205T173123Z-4ed8</c>, as people copy it from <c>list</c>: every 4-character prefix of one day's ids is
/// ambiguous), or <c>latest</c>.
/// </summary>
public static class SnapshotNames
{
    /// <summary>
    /// What <c>latest</c> means for every verb (show, ls, restore, drill): the newest committed snapshot with a verified
    /// copy on a target the configuration still has, even short of min_copies (after a night whose second target was
    /// down, the newest data is on the first, and an older snapshot is not what anyone asking for "latest" wants). Null
    /// when there is none. <paramref name="passedOver"/> gets each newer committed snapshot left out, with why.
    /// </summary>
    public static SnapshotInfo? Latest(IReadOnlyList<SnapshotInfo> snapshots, IReadOnlySet<string> targets, string configFile, List<(string Id, string? Why)>? passedOver = null)
    {
        ArgumentNullException.ThrowIfNull(snapshots);
        ArgumentNullException.ThrowIfNull(targets);
        var committed = snapshots.Where(s => s.State == SnapshotState.Committed).ToList();
        var chosen = committed.LastOrDefault(s => s.VerifiedTargets.Any(targets.Contains));
        if (chosen is null || passedOver is null)
        {
            return chosen;
        }

        foreach (var newer in committed.Skip(committed.IndexOf(chosen) + 1))
        {
            var elsewhere = newer.VerifiedTargets.Where(t => !targets.Contains(t)).ToList();
            passedOver.Add((newer.Id, elsewhere.Count > 0
                ? $"snapshot {newer.Id} is newer but verified only on {string.Join(", ", elsewhere.Select(t => $"'{t}'"))}, no longer in {configFile}; using {chosen.Id}"
                : newer.CopyProblems.Count > 0
                    ? $"snapshot {newer.Id} is newer but has no verified copy ({string.Join("; ", newer.CopyProblems)}); using {chosen.Id}"
                    : null));
        }

        return chosen;
    }

    /// <summary>
    /// The snapshot <paramref name="name"/> means among <paramref name="snapshots"/> (oldest first): null for <c>latest</c>
    /// (<see cref="Latest"/>). A prefix that fits several is refused, listing them.
    /// </summary>
    public static SnapshotInfo? Resolve(IReadOnlyList<SnapshotInfo> snapshots, string name, string where)
    {
        ArgumentNullException.ThrowIfNull(snapshots);
        ArgumentNullException.ThrowIfNull(name);
        if (name == "latest")
        {
            return null;
        }

        if (snapshots.FirstOrDefault(s => s.Id == name) is { } exact)
        {
            return exact;
        }

        var matches = name.Length >= 4
            ? snapshots.Where(s => s.Id.StartsWith(name, StringComparison.Ordinal) || s.Id.EndsWith("-" + name, StringComparison.Ordinal)).ToList()
            : [];
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ConfigException($"{name}: {where} has no snapshot of that id or prefix (at least 4 characters), nor one whose random suffix it is; see 'backstop list'"),
            _ => throw new ConfigException($"{name}: {matches.Count} snapshots of {where} start so ({string.Join(", ", matches.TakeLast(5).Select(s => s.Id))}); give more of the id"),
        };
    }
}
