namespace Backstop.Sources.Files;

/// <summary>
/// Gives exactly <see cref="Length"/> bytes of a file that may change while read: a tar header has already promised
/// that size. Bytes past it are cut, a shortfall is filled with zeros, and either is reported as a change.
/// </summary>
internal sealed class FixedLengthStream(Stream inner, long length) : Stream
{
    private long _position;

    public bool Shrank { get; private set; }

    public bool Grew { get; private set; }

    public override bool CanRead => true;

    // Seekable only so that the tar writer reads the length up front; the position never moves but forward.
    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => length;

    public override long Position
    {
        get => _position;
        set
        {
            if (value != _position)
            {
                throw new NotSupportedException("this stream reads forward only");
            }
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var want = (int)Math.Min(buffer.Length, length - _position);
        if (want <= 0)
        {
            if (!Grew && !Shrank)
            {
                Span<byte> probe = stackalloc byte[1];
                Grew = inner.Read(probe) > 0;
            }

            return 0;
        }

        var n = Shrank ? 0 : inner.Read(buffer[..want]);
        if (n == 0)
        {
            Shrank = true;
            buffer[..want].Clear();
            n = want;
        }

        _position += n;
        return n;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        var target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => length + offset,
        };
        Position = target;
        return _position;
    }

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
