namespace Backstop.Core.Sealing.Age;

/// <summary>Bech32 (BIP 173) as age uses it: no length limit, all lower or all upper case.</summary>
internal static class Bech32
{
    private const string Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    private static readonly uint[] Generator = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

    public static string Encode(string hrp, ReadOnlySpan<byte> data)
    {
        var values = ConvertBits(data, 8, 5, pad: true);
        var lower = hrp.ToLowerInvariant();
        var checksum = Checksum(lower, values);
        var chars = new char[lower.Length + 1 + values.Count + 6];
        lower.CopyTo(chars);
        chars[lower.Length] = '1';
        var i = lower.Length + 1;
        foreach (var v in values.Concat(checksum))
        {
            chars[i++] = Charset[v];
        }

        var s = new string(chars);
        return hrp == lower ? s : s.ToUpperInvariant();
    }

    /// <summary>The human-readable part (lower case) and the data, or an exception naming what is wrong.</summary>
    public static (string Hrp, byte[] Data) Decode(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (s.Any(c => c is < (char)33 or > (char)126))
        {
            throw new FormatException("bech32: invalid character");
        }

        if (s.Any(char.IsAsciiLetterLower) && s.Any(char.IsAsciiLetterUpper))
        {
            throw new FormatException("bech32: mixed case");
        }

        var lower = s.ToLowerInvariant();
        var sep = lower.LastIndexOf('1');
        if (sep < 1 || sep + 7 > lower.Length)
        {
            throw new FormatException("bech32: separator missing or data too short");
        }

        var hrp = lower[..sep];
        var values = new List<byte>();
        foreach (var c in lower[(sep + 1)..])
        {
            var v = Charset.IndexOf(c, StringComparison.Ordinal);
            if (v < 0)
            {
                throw new FormatException($"bech32: invalid character '{c}'");
            }

            values.Add((byte)v);
        }

        if (Polymod(Expand(hrp).Concat(values)) != 1)
        {
            throw new FormatException("bech32: checksum mismatch (a typo in the key?)");
        }

        var data = ConvertBits(values.Take(values.Count - 6).ToArray(), 5, 8, pad: false);
        return (hrp, data.ToArray());
    }

    private static List<byte> ConvertBits(ReadOnlySpan<byte> data, int from, int to, bool pad)
    {
        var acc = 0;
        var bits = 0;
        var result = new List<byte>();
        var maxv = (1 << to) - 1;
        foreach (var b in data)
        {
            acc = (acc << from) | b;
            bits += from;
            while (bits >= to)
            {
                bits -= to;
                result.Add((byte)((acc >> bits) & maxv));
            }
        }

        if (pad)
        {
            if (bits > 0)
            {
                result.Add((byte)((acc << (to - bits)) & maxv));
            }
        }
        else if (bits >= from || ((acc << (to - bits)) & maxv) != 0)
        {
            throw new FormatException("bech32: invalid padding");
        }

        return result;
    }

    private static IEnumerable<byte> Expand(string hrp) =>
        hrp.Select(c => (byte)(c >> 5)).Append((byte)0).Concat(hrp.Select(c => (byte)(c & 31)));

    private static uint Polymod(IEnumerable<byte> values)
    {
        uint chk = 1;
        foreach (var v in values)
        {
            var top = chk >> 25;
            chk = ((chk & 0x1ffffff) << 5) ^ v;
            for (var i = 0; i < 5; i++)
            {
                if (((top >> i) & 1) != 0)
                {
                    chk ^= Generator[i];
                }
            }
        }

        return chk;
    }

    private static byte[] Checksum(string hrp, List<byte> values)
    {
        var polymod = Polymod(Expand(hrp).Concat(values).Concat(new byte[6])) ^ 1;
        var result = new byte[6];
        for (var i = 0; i < 6; i++)
        {
            result[i] = (byte)((polymod >> (5 * (5 - i))) & 31);
        }

        return result;
    }
}
