using Microsoft.Win32.SafeHandles;

namespace Backstop.Sources.Trees;

/// <summary>
/// The data segments of a sparse file, one after the other, read at their offsets (the holes between are skipped, never
/// read as zeros). A segment that ends early (the file shrank) ends the stream; the caller pads and says so.
/// </summary>
internal sealed class SparseDataStream(SafeFileHandle file, IReadOnlyList<(long Offset, long Length)> segments) : Stream
{
    private int _segment;
    private long _within;

    public override int Read(Span<byte> buffer)
    {
        while (_segment < segments.Count)
        {
            var (offset, length) = segments[_segment];
            if (_within == length)
            {
                _segment++;
                _within = 0;
                continue;
            }

            var n = RandomAccess.Read(file, buffer[..(int)Math.Min(buffer.Length, length - _within)], offset + _within);
            if (n == 0)
            {
                _segment = segments.Count; // shorter than listed: the file shrank while read
                return 0;
            }

            _within += n;
            return n;
        }

        return 0;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
