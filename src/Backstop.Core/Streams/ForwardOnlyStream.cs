namespace Backstop.Core.Streams;

/// <summary>
/// A stream read once, in order, whatever the stream under it claims to do: a TarReader over it never seeks (the
/// validation stage's stream moves forward only, and says it can seek so that readers may skip). With a
/// <paramref name="head"/>, the bytes already taken from the inner stream (to read a header) are given first again.
/// </summary>
public sealed class ForwardOnlyStream(Stream inner, ReadOnlyMemory<byte> head = default) : ReadOnlyStream
{
    private ReadOnlyMemory<byte> _head = head;

    public override int Read(Span<byte> buffer) => _head.IsEmpty ? inner.Read(buffer) : FromHead(buffer);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _head.IsEmpty ? inner.ReadAsync(buffer, cancellationToken) : ValueTask.FromResult(FromHead(buffer.Span));

    private int FromHead(Span<byte> buffer)
    {
        var n = Math.Min(buffer.Length, _head.Length);
        _head.Span[..n].CopyTo(buffer);
        _head = _head[n..];
        return n;
    }
}
