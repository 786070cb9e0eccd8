using Backstop.Core.Streams;

namespace Backstop.Tests.Pipeline;

/// <summary>The read-ahead stage between restore's threads: the same bytes, errors where they happened, no hang on early stop.</summary>
public sealed class ReadAheadStreamTests
{
    private static byte[] Data(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        return data;
    }

    /// <summary>Gives at most <paramref name="chunk"/> bytes per read, then throws after <paramref name="failAfter"/> bytes.</summary>
    private sealed class Trickle(byte[] data, int chunk, long failAfter = long.MaxValue) : ReadOnlyStream
    {
        private int _position;

        public override int Read(Span<byte> buffer)
        {
            if (_position >= failAfter)
            {
                throw new IOException("the target broke off");
            }

            var n = Math.Min(Math.Min(chunk, buffer.Length), data.Length - _position);
            data.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));
    }

    [Theory]
    [InlineData(0, 1000, false)]
    [InlineData(1, 7, false)]
    [InlineData(5_000_000, 65_536, false)]
    [InlineData(5_000_000, 333_333, true)]
    [InlineData(4 << 20, 1 << 20, true)]
    public async Task The_reader_gets_exactly_the_inner_bytes(int length, int chunk, bool asyncReads)
    {
        var data = Data(length);
        await using var ahead = new ReadAheadStream(new Trickle(data, chunk), asyncReads);
        var copy = new MemoryStream();
        var buffer = new byte[12_345];
        int n;
        while ((n = ahead.Read(buffer)) > 0)
        {
            copy.Write(buffer, 0, n);
        }

        Assert.Equal(data, copy.ToArray());
        Assert.Equal(0, ahead.Read(buffer));
    }

    [Fact]
    public void An_error_of_the_inner_stream_reaches_the_reader_after_the_bytes_before_it()
    {
        var data = Data(3_000_000);
        using var ahead = new ReadAheadStream(new Trickle(data, 100_000, failAfter: 2_500_000));
        var copy = new MemoryStream();
        var e = Assert.Throws<IOException>(() => ahead.CopyTo(copy));
        Assert.Equal("the target broke off", e.Message);
        Assert.Equal(data.AsSpan(0, (int)copy.Length).ToArray(), copy.ToArray());
        Assert.True(copy.Length >= 2 << 20); // the whole blocks read before the error were handed over
        Assert.Throws<IOException>(() => ahead.Read(new byte[10])); // and again: a swallowed error never turns into a clean end
    }

    [Fact]
    public void Disposing_before_the_end_stops_the_reading_thread_without_waiting_for_the_rest()
    {
        var data = Data(64 << 20);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using (var ahead = new ReadAheadStream(new Trickle(data, 1 << 20)))
        {
            Assert.Equal(10, ahead.Read(new byte[10]));
        }

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
    }
}
