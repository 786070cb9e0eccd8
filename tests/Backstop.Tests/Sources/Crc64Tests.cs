using Backstop.Sources.Redis;

namespace Backstop.Tests.Sources;

public class Crc64Tests
{
    [Fact]
    public void Matches_the_crc64_jones_check_value() =>
        Assert.Equal(0xe9c6d914c4b8d9caUL, Crc64.Update(0, "123456789"u8));

    [Fact]
    public void Can_be_computed_in_pieces() =>
        Assert.Equal(Crc64.Update(0, "123456789"u8), Crc64.Update(Crc64.Update(0, "1234"u8), "56789"u8));
}
