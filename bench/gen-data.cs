#:property PublishAot=false
// Builds the benchmark's deterministic data set: about 20,000 files of 1–64 KiB and eight 64 MiB files,
// half compressible text and half random. Same seed, same bytes.
// Usage: dotnet run gen-data.cs -- DIR [small-file-count]
using System.Text;

var dir = args.Length > 0 ? args[0] : "data";
var smallCount = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 20_000;
var words = ("backup restore verify snapshot artifact target source catalog drill manifest postgres redis couchdb " +
             "etcd ledger cluster replica primary storage archive compress encrypt stream bounded memory proof " +
             "the a of to and in is it that for on with as was be by this are from at or an not").Split(' ');
var rng = new Random(20251214);

byte[] Text(int size)
{
    var sb = new StringBuilder(size + 64);
    var line = 0;
    while (sb.Length < size)
    {
        sb.Append(words[rng.Next(words.Length)]);
        sb.Append(++line % 14 == 0 ? '\n' : ' ');
        if (rng.Next(40) == 0)
        {
            sb.Append(rng.Next(1_000_000));
            sb.Append(' ');
        }
    }

    return Encoding.ASCII.GetBytes(sb.ToString(0, size));
}

byte[] Random(int size)
{
    var b = new byte[size];
    rng.NextBytes(b);
    return b;
}

Directory.CreateDirectory(dir);
for (var i = 0; i < smallCount; i++)
{
    var sub = Path.Combine(dir, "small", $"d{i / 200:000}");
    Directory.CreateDirectory(sub);
    var size = 1024 + rng.Next(63 * 1024 + 1);
    File.WriteAllBytes(Path.Combine(sub, $"f{i:00000}.{(i % 2 == 0 ? "txt" : "bin")}"), i % 2 == 0 ? Text(size) : Random(size));
}

Directory.CreateDirectory(Path.Combine(dir, "large"));
for (var i = 0; i < 8; i++)
{
    using var f = File.Create(Path.Combine(dir, "large", $"large-{i}.{(i % 2 == 0 ? "txt" : "bin")}"));
    for (var mb = 0; mb < 64; mb++)
    {
        f.Write(i % 2 == 0 ? Text(1 << 20) : Random(1 << 20));
    }
}

Console.WriteLine($"data set written to {dir}");
