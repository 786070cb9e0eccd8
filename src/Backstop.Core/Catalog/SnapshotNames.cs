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
    /// The snapshot <paramref name="name"/> means among <paramref name="snapshots"/> (oldest first): null for <c>latest</c>,
    /// which each verb chooses its own way. A prefix that fits several is refused, listing them.
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
