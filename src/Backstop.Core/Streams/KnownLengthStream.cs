namespace Backstop.Core.Streams;

/// <summary>
/// A stream read once, forward, whose length is known before the first byte: it says it can seek only so that a tar
/// writer reads the length up front for the entry's header; the position never moves but by reading.
/// </summary>
public abstract class KnownLengthStream(long length) : Stream
{
    /// <summary>The bytes given so far.</summary>
    protected long Consumed { get; set; }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => length;

    public override long Position
    {
        get => Consumed;
        set
        {
            if (value != Consumed)
            {
                throw new NotSupportedException("this stream reads forward only");
            }
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => Consumed + offset,
            _ => length + offset,
        };
        return Consumed;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
