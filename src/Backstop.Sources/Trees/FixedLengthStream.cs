using Backstop.Core.Streams;

namespace Backstop.Sources.Trees;

/// <summary>
/// Gives exactly <c>length</c> bytes of a file that may change while read: a tar header has already promised
/// that size. Bytes past it are cut, a shortfall is filled with zeros, and either is reported as a change.
/// </summary>
internal sealed class FixedLengthStream(Stream inner, long length) : KnownLengthStream(length)
{
    public bool Shrank { get; private set; }

    public bool Grew { get; private set; }

    public override int Read(Span<byte> buffer)
    {
        var want = (int)Math.Min(buffer.Length, Length - Consumed);
        if (want <= 0)
        {
            if (!Grew && !Shrank)
            {
                Span<byte> probe = stackalloc byte[1];
                Grew = ReadSource(probe) > 0;
            }

            return 0;
        }

        var n = Shrank ? 0 : ReadSource(buffer[..want]);
        if (n == 0)
        {
            Shrank = true;
            buffer[..want].Clear();
            n = want;
        }

        Consumed += n;
        return n;
    }

    /// <summary>A read of the file itself; its failure (EIO from a dying disk) is told apart from the archive's own writes.</summary>
    private int ReadSource(Span<byte> buffer)
    {
        try
        {
            return inner.Read(buffer);
        }
        catch (IOException e)
        {
            throw new SourceReadException(e.Message, e);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>Reading a file being backed up failed (the disk under it, not the archive being written).</summary>
internal sealed class SourceReadException(string message, Exception inner) : IOException(message, inner);
