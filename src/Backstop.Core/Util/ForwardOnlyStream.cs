namespace Backstop.Core.Util;

/// <summary>
/// A stream read once, in order, whatever the stream under it claims to do: a TarReader over it never seeks (the
/// validation stage's stream moves forward only, and says it can seek so that readers may skip). With a
/// <paramref name="head"/>, the bytes already taken from the inner stream (to read a header) are given first again.
/// </summary>
public sealed class ForwardOnlyStream(Stream inner, ReadOnlyMemory<byte> head = default) : Stream
{
    private ReadOnlyMemory<byte> _head = head;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer) => _head.IsEmpty ? inner.Read(buffer) : FromHead(buffer);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _head.IsEmpty ? inner.ReadAsync(buffer, cancellationToken) : ValueTask.FromResult(FromHead(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int FromHead(Span<byte> buffer)
    {
        var n = Math.Min(buffer.Length, _head.Length);
        _head.Span[..n].CopyTo(buffer);
        _head = _head[n..];
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
