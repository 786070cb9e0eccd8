using System.Formats.Tar;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Storage;
using Backstop.Tests.Support;
using CsCheck;
using Xunit.Abstractions;

namespace Backstop.Tests.Properties;

/// <summary>
/// Parsers of what Backstop did not write, fed what nobody thought of (CsCheck): valid inputs damaged a few bytes at a
/// time. Each property: only Backstop's own errors (with a message that says where), never a path outside the
/// destination, and where Backstop writes the format, what it writes reads back the same. Bounded to seconds each.
/// </summary>
public sealed class ParserProperties(ITestOutputHelper output)
{
    private const long Iterations = 3000;

    // The fuzz harness's seed: one valid manifest for both (what a target hands back, every optional field set).
    private static readonly byte[] RealManifest = Backstop.Fuzz.FuzzTargets.Seeds().First(x => x.Target == "manifest").Bytes;

    [Fact]
    public void Sizes_durations_and_percents_parse_any_text_without_throwing_and_read_back_what_they_print()
    {
        Gen.String.Sample(s =>
        {
            _ = Quantities.TryParseSize(s, out _, out _);
            _ = Quantities.TryParseDuration(s, out _, out _);
            _ = Quantities.TryParsePercent(s, out _, out _);
        }, iter: 20000);
        Mutations.OfText("1.5GiB 30m 2d12h 75%", 4).Sample(s =>
        {
            _ = Quantities.TryParseSize(s, out _, out _);
            _ = Quantities.TryParseDuration(s, out _, out _);
            _ = Quantities.TryParsePercent(s, out _, out _);
        }, iter: 20000);

        // What FormatSize prints reads back within its rounding (one decimal of its unit).
        Gen.Long[0, 1L << 50].Sample(bytes =>
        {
            var text = Quantities.FormatSize(bytes);
            Assert.True(Quantities.TryParseSize(text.Replace(" ", "", StringComparison.Ordinal), out var back, out var error), $"{text}: {error}");
            Assert.True(Math.Abs(back - bytes) <= Math.Max(1, bytes / 20), $"{bytes} printed as {text} reads back as {back}");
        }, iter: Iterations);

        // What FormatDuration prints reads back exactly to its precision (whole units, then minutes under a day, hours above).
        Gen.Long[1, 10L * 365 * 86400].Sample(seconds =>
        {
            var t = TimeSpan.FromSeconds(seconds);
            var text = Quantities.FormatDuration(t);
            Assert.True(Quantities.TryParseDuration(text, out var back, out var error), $"{text}: {error}");
            var precision = seconds < 3600 ? TimeSpan.Zero : seconds < 86400 ? TimeSpan.FromMinutes(1) : TimeSpan.FromHours(1);
            Assert.True(back <= t && t - back < precision + TimeSpan.FromSeconds(1), $"{t} printed as {text} reads back as {back}");
        }, iter: Iterations);
    }

    [Fact]
    public void A_damaged_manifest_is_refused_naming_where_it_was_read_or_read_as_it_says_and_written_back_the_same()
    {
        Assert.Equal("db.dump", Manifest.ParseUntrusted(RealManifest, "m").Artifacts[0].Name); // the seed is valid
        var past = new PastFirstCheck("manifest (valid JSON of a manifest)");
        Mutations.Of(RealManifest).Sample(bytes =>
        {
            try
            {
                var m = Manifest.ParseUntrusted(bytes, "pg/x/MANIFEST.json on 'nas'");
                past.Accepted();
                var again = Manifest.ParseUntrusted(m.ToBytes(), "again");
                Assert.Equal(m.ToBytes(), again.ToBytes()); // what Backstop writes reads back the same
            }
            catch (InvalidManifestException e)
            {
                Assert.StartsWith("pg/x/MANIFEST.json on 'nas' ", e.Message, StringComparison.Ordinal);
                if (e.Message.Contains("is not valid JSON", StringComparison.Ordinal))
                {
                    past.Refused();
                }
                else
                {
                    past.Accepted();
                }
            }
        }, iter: Iterations);
        output.WriteLine(past.ToString());
        Assert.True(past.Share > 0.05, past.ToString());
    }

    [Fact]
    public void A_damaged_configuration_is_refused_with_file_line_and_column_never_an_unhandled_error()
    {
        var plugins = new TestPlugins().Registry;
        var seed = Backstop.Cli.Docs.ConfigReferenceDocument.SourceExample(plugins, "files");
        ConfigLoader.Parse(seed, "/etc/backstop/backstop.yaml", plugins); // the seed is valid
        var past = new PastFirstCheck("configuration (YAML that parses)");
        Mutations.OfText(seed, 4).Sample(text =>
        {
            try
            {
                ConfigLoader.Parse(text, "/etc/backstop/backstop.yaml", plugins);
                past.Accepted();
            }
            catch (ConfigException e)
            {
                Assert.All(e.Errors, error => Assert.Matches(@"^/etc/backstop/backstop\.yaml(:\d+:\d+)?: ", error.Message));
                if (e.Errors.Any(x => x.Message.Contains("YAML", StringComparison.Ordinal)))
                {
                    past.Refused();
                }
                else
                {
                    past.Accepted();
                }
            }
        }, iter: 1500);
        output.WriteLine(past.ToString());
        Assert.True(past.Share > 0.2, past.ToString());
    }

    [Fact]
    public async Task A_damaged_tar_extracts_only_inside_its_destination_or_is_refused_with_a_message()
    {
        using var dir = new TempDir();
        var seed = SeedTar();
        var past = new PastFirstCheck("tar (a first entry read)");
        var n = 0;
        await Mutations.Of(seed, 8).SampleAsync(async bytes =>
        {
            var round = Path.Combine(dir.Path, (Interlocked.Increment(ref n)).ToString(System.Globalization.CultureInfo.InvariantCulture));
            var dest = Path.Combine(round, "dest");
            var canary = Path.Combine(round, "canary");
            Directory.CreateDirectory(dest);
            Directory.CreateDirectory(canary);
            File.WriteAllText(Path.Combine(canary, "keep"), "keep");
            try
            {
                using var tar = new MemoryStream(bytes);
                await Backstop.Sources.Trees.TarExtractor.ExtractAsync(tar, dest, CancellationToken.None);
                past.Accepted();
            }
            catch (Exception e) when (e is BackupException or InvalidDataException or EndOfStreamException)
            {
                // Backstop's own refusals: InvalidDataException and EndOfStreamException say the bytes are damaged or cut
                // short (what a restore then takes as a corrupt copy, and reads another target's).
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                (Directory.EnumerateFileSystemEntries(dest).Any() ? (Action)past.Accepted : past.Refused)();
            }

            // Nothing outside the destination: the canary as it was, nothing else beside them.
            Assert.Equal(["canary", "dest"], Directory.EnumerateFileSystemEntries(round).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.Equal(["keep"], Directory.EnumerateFileSystemEntries(canary).Select(Path.GetFileName));
            Assert.Equal("keep", File.ReadAllText(Path.Combine(canary, "keep")));
        }, iter: 1500, threads: 1);
        RemoveRaw(dir.Path); // names of any bytes, which .NET's own delete cannot walk
        output.WriteLine(past.ToString());
        Assert.True(past.Share > 0.2, past.ToString());
    }

    private static void RemoveRaw(string path) =>
        System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("rm", ["-rf", "--", path]))!.WaitForExit();

    /// <summary>A pax archive with what restores meet: folders, files, a symlink out, a hard link, a long name, and one that climbs.</summary>
    private static byte[] SeedTar()
    {
        using var m = new MemoryStream();
        using (var w = new TarWriter(m, TarEntryFormat.Pax, leaveOpen: true))
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "srv/"));
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "srv/app/"));
            foreach (var (name, text) in new[] { ("srv/app/a.txt", "alpha"), ("srv/app/b.txt", new string('b', 700)), ("srv/app/" + new string('n', 120) + ".txt", "long") })
            {
                w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)) });
            }

            w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "srv/app/out") { LinkName = "../../../canary" });
            w.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, "srv/app/hard") { LinkName = "srv/app/a.txt" });
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "srv/app/out/through") { DataStream = new MemoryStream("x"u8.ToArray()) });
        }

        return m.ToArray();
    }
}
