using Backstop.Sources.Trees;

namespace Backstop.Tests.Sources;

public class FixedLengthStreamTests
{
    [Fact]
    public void A_file_that_grew_gives_only_the_promised_bytes()
    {
        using var s = new FixedLengthStream(new MemoryStream(new byte[100]), 60);
        var output = new MemoryStream();
        s.CopyTo(output);
        Assert.Equal(60, output.Length);
        Assert.True(s.Grew);
        Assert.False(s.Shrank);
    }

    [Fact]
    public void A_file_that_shrank_is_padded_to_the_promised_size()
    {
        using var s = new FixedLengthStream(new MemoryStream(Enumerable.Repeat((byte)7, 40).ToArray()), 100);
        var output = new MemoryStream();
        s.CopyTo(output);
        Assert.Equal(100, output.Length);
        Assert.True(s.Shrank);
        Assert.Equal(0, output.ToArray()[99]);
    }
}
