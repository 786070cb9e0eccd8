using System.Formats.Tar;

namespace Backstop.Tests.Support;

/// <summary>Small tar archives built in memory, for the extraction and restore tests.</summary>
internal static class Tars
{
    public static MemoryStream Of(params TarEntry[] entries)
    {
        var m = new MemoryStream();
        using (var w = new TarWriter(m, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var e in entries)
            {
                w.WriteEntry(e);
            }
        }

        m.Position = 0;
        return m;
    }
}
