using System.Formats.Tar;

namespace Backstop.Sources.Restoring;

/// <summary>
/// The next entry of a tar read with .NET's <see cref="TarReader"/>, for archives Backstop did not write (a layout from a
/// target, a volume's tar, a base backup): the reader throws OverflowException, FormatException, ArgumentException,
/// NotSupportedException or InvalidOperationException on some damaged headers (a base-256 size that does not fit, a
/// field that is not a number, a member type it does not read, a long name larger than it says); each is the archive's
/// damage, said as such (InvalidDataException: a restore takes the copy as corrupt and reads another target's).
/// </summary>
public static class TarEntries
{
    public static async ValueTask<TarEntry?> NextAsync(TarReader reader, string what, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reader);
        try
        {
            return await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false);
        }
        // Found by fuzzing as well: NotSupportedException for a member type it does not read (a GNU sparse file), and
        // InvalidOperationException for a long-name member whose size does not fit.
        catch (Exception e) when (e is OverflowException or FormatException or ArgumentException or NotSupportedException or InvalidOperationException)
        {
            throw new InvalidDataException($"{what}: a tar header is damaged ({e.Message})", e);
        }
    }
}
