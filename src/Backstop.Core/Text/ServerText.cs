namespace Backstop.Core.Text;

/// <summary>What a server or an archive sends, made safe to print and bounded to read.</summary>
public static class ServerText
{
    /// <summary>No control characters (a newline cannot forge a log line), at most 200 characters.</summary>
    public static string Printable(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var clean = new string(text.Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return clean.Length > 200 ? clean[..200] + "…" : clean;
    }

    /// <summary>Every control character shown as '?', at any length (a path from an archive, printed whole).</summary>
    public static string Escape(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Any(char.IsControl) ? new string(text.Select(c => char.IsControl(c) ? '?' : c).ToArray()) : text;
    }

    /// <summary>The whole of a stream that must be small; past <paramref name="limit"/> bytes, <paramref name="tooLarge"/> is thrown.</summary>
    public static async Task<byte[]> ReadAtMostAsync(Stream stream, long limit, Func<Exception> tooLarge, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tooLarge);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > limit)
            {
                throw tooLarge();
            }

            buffer.Write(chunk, 0, n);
        }

        return buffer.ToArray();
    }
}
