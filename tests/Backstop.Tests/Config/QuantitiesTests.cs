using Backstop.Core.Config;

namespace Backstop.Tests.Config;

public class QuantitiesTests
{
    [Theory]
    [InlineData("512B", 512)]
    [InlineData("150KB", 150_000)]
    [InlineData("1.5GiB", 1_610_612_736)]
    [InlineData("1.5KiB", 1536)]
    [InlineData("2MiB", 2_097_152)]
    [InlineData("0.5MB", 500_000)]
    [InlineData("8TiB", 8_796_093_022_208)]
    public void Sizes_parse_exactly(string text, long expected)
    {
        Assert.True(Quantities.TryParseSize(text, out var bytes, out var error), error);
        Assert.Equal(expected, bytes);
    }

    [Theory]
    [InlineData("1.3B", "whole number of bytes")]
    [InlineData("150", "needs a unit")]
    [InlineData("12XB", "not a size")]
    [InlineData("12 parsecs", "needs a unit")]
    [InlineData("abcKB", "not a size")]
    [InlineData("1.2.3MB", "not a size")]
    [InlineData("99999999999TiB", "too large")]
    public void Bad_sizes_are_refused_with_a_reason(string text, string reason)
    {
        Assert.False(Quantities.TryParseSize(text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("15m", 900)]
    [InlineData("6h", 21600)]
    [InlineData("7d", 604800)]
    [InlineData("1h30m", 5400)]
    [InlineData("2w", 1209600)]
    public void Durations_parse(string text, long seconds)
    {
        Assert.True(Quantities.TryParseDuration(text, out var d, out var error), error);
        Assert.Equal(TimeSpan.FromSeconds(seconds), d);
    }

    [Theory]
    [InlineData("1.5h")]
    [InlineData("10")]
    [InlineData("5y")]
    [InlineData("")]
    [InlineData("h")]
    public void Bad_durations_are_refused(string text) => Assert.False(Quantities.TryParseDuration(text, out _, out _));

    [Theory]
    [InlineData("50%", 50)]
    [InlineData("0%", 0)]
    [InlineData("100%", 100)]
    public void Percentages_parse(string text, int expected)
    {
        Assert.True(Quantities.TryParsePercent(text, out var p, out _));
        Assert.Equal(expected, p);
    }

    [Theory]
    [InlineData("150%")]
    [InlineData("50")]
    [InlineData("12.5%")]
    public void Bad_percentages_are_refused(string text) => Assert.False(Quantities.TryParsePercent(text, out _, out _));
}
