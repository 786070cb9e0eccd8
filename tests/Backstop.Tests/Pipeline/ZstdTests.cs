using Backstop.Core.Sealing;
using Backstop.Core.Streams;

namespace Backstop.Tests.Pipeline;

public class ZstdTests
{
    private static byte[] Compress(byte[] data, int workers)
    {
        var output = new MemoryStream();
        using (var encoder = new ZstdEncoder(3, workers, (block, length) =>
               {
                   output.Write(block, 0, length);
                   BlockPool.Return(block);
               }))
        {
            for (var i = 0; i < data.Length; i += 70_000)
            {
                encoder.Write(data.AsSpan(i, Math.Min(70_000, data.Length - i)));
            }

            encoder.Finish();
        }

        return output.ToArray();
    }

    private static byte[] Decompress(byte[] data)
    {
        using var z = new ZstdDecodeStream(new MemoryStream(data));
        var output = new MemoryStream();
        z.CopyTo(output);
        return output.ToArray();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void Round_trips_large_mixed_data(int workers)
    {
        var random = new Random(42);
        var data = new byte[5_000_000];
        random.NextBytes(data.AsSpan(0, 2_500_000));
        for (var i = 2_500_000; i < data.Length; i++)
        {
            data[i] = (byte)"backstop proves backups "[i % 24];
        }

        var compressed = Compress(data, workers);
        Assert.True(compressed.Length < data.Length);
        Assert.Equal(data, Decompress(compressed));
    }

    [Fact]
    public void Empty_input_makes_a_valid_frame() => Assert.Empty(Decompress(Compress([], 0)));

    [Fact]
    public void A_truncated_frame_is_an_error_not_a_short_read()
    {
        var data = new byte[1_000_000];
        new Random(1).NextBytes(data);
        var compressed = Compress(data, 0);
        var e = Assert.Throws<InvalidDataException>(() => Decompress(compressed[..(compressed.Length - 10)]));
        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_flipped_byte_is_caught_by_the_frame_checksum()
    {
        var data = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("some text to compress ", 5000)));
        var compressed = Compress(data, 0);
        compressed[compressed.Length / 2] ^= 0x40;
        Assert.ThrowsAny<Exception>(() => Decompress(compressed));
    }
}
