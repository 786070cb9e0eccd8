namespace Backstop.Core.Config;

/// <summary>What the documented keys of a block say about it.</summary>
public static class KeyRows
{
    /// <summary>
    /// The hint an unknown key gets when no valid key is near it: "<paramref name="what"/> keys are: …", the first names
    /// of the rows under <paramref name="prefix"/> (<c>policy.</c>), in the rows' order.
    /// </summary>
    public static string Hint(string what, IEnumerable<KeyDoc> rows, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(rows);
        var heads = rows.Where(r => r.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(r => Head(r.Key[prefix.Length..]))
            .Distinct(StringComparer.Ordinal);
        return $"{what} keys are: {string.Join(", ", heads)}";
    }

    /// <summary>The first name of a dotted key: <c>drill</c> of <c>drill.smoke[].sql</c>.</summary>
    public static string Head(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var end = key.IndexOfAny(['.', '[']);
        return end < 0 ? key : key[..end];
    }
}
