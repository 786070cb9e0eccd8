using System.Text.RegularExpressions;

namespace Backstop.Sources.Scratch;

/// <summary>
/// The names drills give what they make on servers (scratch databases <c>backstop_drill_TOKEN_N</c>), read back from
/// a killed drill's record strictly: only such a name is ever dropped.
/// </summary>
public static partial class ScratchNames
{
    [GeneratedRegex("^db:(backstop_drill_[0-9a-f]{12}_[0-9]{1,4})$")]
    private static partial Regex Database();

    /// <summary>The scratch database a <c>db:</c> leftover names, or null (and the line is left alone) when it is not one a drill makes.</summary>
    public static string? ScratchDatabase(string leftover)
    {
        ArgumentNullException.ThrowIfNull(leftover);
        var m = Database().Match(leftover);
        return m.Success ? m.Groups[1].Value : null;
    }

    /// <summary>What the sweep says of a leftover that is not a drill's scratch database.</summary>
    public static string NotOurs(string source, string leftover) =>
        $"a killed drill of '{source}' recorded '{Core.Text.ServerText.Printable(leftover)}', which is not a drill's scratch database; left alone";
}
