namespace Backstop.Core.Streams;

/// <summary>
/// A stream read no further than a known length: one byte past it throws what <c>tooLong</c> makes. A restore reads a
/// copy's decoded content through it, bounded by the raw size the manifest recorded, so that a copy that decodes to
/// more (a zstd bomb planted on a tampered target) fills nothing before its hash would fail it.
/// </summary>
public sealed class BoundedReadStream(Stream inner, long limit, Func<Exception> tooLong) : ReadOnlyStream
{
    private long _read;

    public override int Read(Span<byte> buffer)
    {
        var n = inner.Read(buffer[..(int)Math.Min(buffer.Length, limit - _read + 1)]);
        return Count(n);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, limit - _read + 1)], cancellationToken).ConfigureAwait(false);
        return Count(n);
    }

    private int Count(int n)
    {
        _read += n;
        return _read > limit ? throw tooLong() : n;
    }
}
