using CsCheck;

namespace Backstop.Tests.Properties;

/// <summary>
/// Generators that start from a valid input and damage it the ways files and answers get damaged (a flipped bit, a
/// byte set to a value parsers care about, a range cut out, bytes inserted or repeated, a truncation), a few at a
/// time: most inputs get past a parser's first check and reach the code behind it, which random bytes never do.
/// </summary>
public static class Mutations
{
    private static readonly byte[] Interesting = [0, 1, 0x7f, 0x80, 0xff, (byte)'/', (byte)'.', (byte)'"', (byte)'\\', (byte)'{', (byte)'}', (byte)'[', (byte)':', (byte)'-', (byte)'0', (byte)'9', (byte)'\n'];

    /// <summary>One to <paramref name="most"/> damages of <paramref name="seed"/>.</summary>
    public static Gen<byte[]> Of(byte[] seed, int most = 6) =>
        Gen.Int[1, most].SelectMany(n => Gen.Int[0, int.MaxValue].Array[n * 4].Select(r => Apply(seed, r)));

    /// <summary>Text damaged as bytes, read back as UTF-8 (what a parser of text meets).</summary>
    public static Gen<string> OfText(string seed, int most = 6) =>
        Of(System.Text.Encoding.UTF8.GetBytes(seed), most).Select(b => System.Text.Encoding.UTF8.GetString(b));

    private static byte[] Apply(byte[] seed, int[] r)
    {
        var data = new List<byte>(seed);
        for (var i = 0; i + 3 < r.Length; i += 4)
        {
            var (op, a, b, c) = (r[i] % 7, r[i + 1], r[i + 2], r[i + 3]);
            var at = data.Count == 0 ? 0 : a % data.Count;
            switch (op)
            {
                case 0 when data.Count > 0:
                    data[at] ^= (byte)(1 << (b % 8)); // a flipped bit
                    break;
                case 1 when data.Count > 0:
                    data[at] = Interesting[b % Interesting.Length];
                    break;
                case 2 when data.Count > 0:
                    data.RemoveRange(at, Math.Min(data.Count - at, 1 + b % 64)); // a range cut out
                    break;
                case 3:
                    data.InsertRange(at, Enumerable.Range(0, 1 + b % 16).Select(k => (byte)((c >> (k % 4 * 8)) ^ k)));
                    break;
                case 4 when data.Count > 0:
                    var length = Math.Min(data.Count - at, 1 + b % 128);
                    data.InsertRange(Math.Min(data.Count, c % (data.Count + 1)), data.GetRange(at, length)); // a range repeated elsewhere
                    break;
                case 5 when data.Count > 0 && b % 4 == 0:
                    data.RemoveRange(at, data.Count - at); // truncated (rarer: it ends most parses at once)
                    break;
                case 6 when data.Count > 0:
                    data[at] = (byte)(data[at] + 1 + b % 3); // a digit or a letter moved by one
                    break;
            }
        }

        return [.. data];
    }
}

/// <summary>What share of a property's inputs got past the parser's first check (said in the test's output, and held above a floor).</summary>
public sealed class PastFirstCheck(string what)
{
    private int _accepted;
    private int _refused;

    public void Accepted() => Interlocked.Increment(ref _accepted);

    public void Refused() => Interlocked.Increment(ref _refused);

    public double Share => _accepted + _refused == 0 ? 0 : (double)_accepted / (_accepted + _refused);

    public override string ToString() => $"{what}: {_accepted} of {_accepted + _refused} inputs past the first check ({Share:P0})";
}
