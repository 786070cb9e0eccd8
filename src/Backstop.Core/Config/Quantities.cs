using System.Globalization;

namespace Backstop.Core.Config;

/// <summary>
/// Exact parsing of sizes (<c>512B</c>, <c>150KB</c>, <c>1.5GiB</c>), durations (<c>90s</c>, <c>1h30m</c>, <c>7d</c>)
/// and percentages (<c>50%</c>), with integer arithmetic only: the shell scripts Backstop replaces crashed
/// on a decimal size.
/// </summary>
public static class Quantities
{
    private static readonly (string Unit, long Factor)[] SizeUnits =
    [
        ("TiB", 1L << 40), ("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10),
        ("TB", 1_000_000_000_000L), ("GB", 1_000_000_000L), ("MB", 1_000_000L), ("KB", 1_000L), ("kB", 1_000L),
        ("B", 1L),
    ];

    /// <summary>Parses a size into bytes. KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024.</summary>
    public static bool TryParseSize(string text, out long bytes, out string error)
    {
        bytes = 0;
        var s = text.Trim();
        foreach (var (unit, factor) in SizeUnits)
        {
            if (!s.EndsWith(unit, StringComparison.Ordinal))
            {
                continue;
            }

            var number = s[..^unit.Length].Trim();
            if (!TryParseDecimal(number, out var units, out var scale))
            {
                error = $"'{text}' is not a size: expected a number and a unit, like 512B, 150KB, 1.5GiB";
                return false;
            }

            try
            {
                var numerator = checked(units * factor);
                if (numerator % scale != 0 && factor == 1)
                {
                    error = $"'{text}' is not a whole number of bytes";
                    return false;
                }

                // A fraction of a larger unit is its nearest byte: what FormatSize prints ("180.6 GiB") reads back.
                bytes = (numerator + scale / 2) / scale;
                error = "";
                return true;
            }
            catch (OverflowException)
            {
                error = $"'{text}' is too large";
                return false;
            }
        }

        error = $"'{text}' is not a size: it needs a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), like 150KB";
        return false;
    }

    /// <summary>Parses a duration made of whole-number parts: <c>90s</c>, <c>15m</c>, <c>6h</c>, <c>7d</c>, <c>2w</c>, <c>1h30m</c>.</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration, out string error)
    {
        duration = TimeSpan.Zero;
        var s = text.Trim();
        if (s.Length == 0)
        {
            error = "a duration cannot be empty";
            return false;
        }

        long totalSeconds = 0;
        var i = 0;
        try
        {
            while (i < s.Length)
            {
                var start = i;
                while (i < s.Length && char.IsAsciiDigit(s[i]))
                {
                    i++;
                }

                if (i == start || i == s.Length)
                {
                    error = $"'{text}' is not a duration: expected whole numbers with units, like 90s, 15m, 6h, 7d or 1h30m";
                    return false;
                }

                var value = long.Parse(s.AsSpan(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture);
                long unit = s[i] switch
                {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86400,
                    'w' => 7 * 86400,
                    _ => 0,
                };
                if (unit == 0)
                {
                    error = $"'{text}' has an unknown unit '{s[i]}': use s, m, h, d or w";
                    return false;
                }

                i++;
                totalSeconds = checked(totalSeconds + checked(value * unit));
            }

            duration = TimeSpan.FromSeconds(totalSeconds);
            error = "";
            return true;
        }
        catch (Exception e) when (e is OverflowException or FormatException or ArgumentOutOfRangeException)
        {
            error = $"'{text}' is too large";
            return false;
        }
    }

    /// <summary>Parses a percentage between 0% and 100% into whole percent.</summary>
    public static bool TryParsePercent(string text, out int percent, out string error)
    {
        var s = text.Trim();
        percent = 0;
        if (!s.EndsWith('%') || !int.TryParse(s[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out percent) || percent > 100)
        {
            error = $"'{text}' is not a percentage: expected a whole number from 0% to 100%, like 50%";
            return false;
        }

        error = "";
        return true;
    }

    public static string FormatSize(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        var u = 0;
        while (Math.Abs(v) >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }

        return u == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{v:0.0} {units[u]}");
    }

    public static string FormatDuration(TimeSpan t)
    {
        var s = (long)Math.Round(t.TotalSeconds);
        if (s % 86400 == 0 && s > 0)
        {
            return $"{s / 86400}d";
        }

        if (s % 3600 == 0 && s > 0)
        {
            return $"{s / 3600}h";
        }

        if (s % 60 == 0 && s > 0)
        {
            return $"{s / 60}m";
        }

        if (s < 3600)
        {
            return $"{s}s";
        }

        if (s < 86400)
        {
            return $"{s / 3600}h{s % 3600 / 60}m";
        }

        return $"{s / 86400}d{s % 86400 / 3600}h";
    }

    /// <summary>Digits with an optional fraction: returns the digits as one integer and the power of ten to divide by.</summary>
    private static bool TryParseDecimal(string s, out long units, out long scale)
    {
        units = 0;
        scale = 1;
        if (s.Length == 0)
        {
            return false;
        }

        var seenDot = false;
        var digits = 0;
        foreach (var c in s)
        {
            if (c == '.' && !seenDot)
            {
                seenDot = true;
                continue;
            }

            if (!char.IsAsciiDigit(c))
            {
                return false;
            }

            digits++;
            if (digits > 17)
            {
                return false;
            }

            units = units * 10 + (c - '0');
            if (seenDot)
            {
                scale *= 10;
            }
        }

        return digits > 0;
    }
}
