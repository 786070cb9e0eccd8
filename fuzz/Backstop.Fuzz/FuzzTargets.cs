using System.Security.Cryptography;
using System.Text;
using Backstop.Core.Plugins;
using Backstop.Core.Storage;
using Backstop.Sources.CouchDb;
using Backstop.Sources.Trees;
using Backstop.Core.Tar;
using Backstop.Sources.Redis;
using Backstop.Sources.Registry;

namespace Backstop.Fuzz;

/// <summary>
/// The five most exposed parsers, each called through its entry point as a restore or a check calls it, on bytes
/// that came from elsewhere: what a fuzzer feeds (SharpFuzz under AFL) and what the test suite replays (every input
/// of <c>fuzz/corpus/NAME/</c>, crashes kept there included). Backstop's own refusals (BackupException, and
/// InvalidDataException or EndOfStreamException for damaged bytes) are answers; anything else escaping is a crash.
/// </summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyList<string> Names = ["manifest", "tar", "rdb", "oci", "jsonlines"];

    /// <summary>Runs one target on one input; returns whether the input was accepted (false: refused as Backstop refuses).</summary>
    public static bool Run(string name, byte[] input)
    {
        try
        {
            switch (name)
            {
                case "manifest":
                    var m = Manifest.ParseUntrusted(input, "MANIFEST.json");
                    _ = Manifest.ParseUntrusted(m.ToBytes(), "MANIFEST.json again");
                    return true;
                case "tar":
                    return Tar(input);
                case "rdb":
                    new RedisSource.RdbValidator().ReadFactsAsync(new MemoryStream(input), CancellationToken.None).GetAwaiter().GetResult();
                    return true;
                case "oci":
                    OciLayoutReader.ReadAsync(new MemoryStream(input), null, "layout", CancellationToken.None).GetAwaiter().GetResult();
                    return true;
                case "jsonlines":
                    var scanner = new JsonLineScanner();
                    scanner.Feed(input);
                    scanner.Finish();
                    return true;
                default:
                    throw new ArgumentException($"no fuzz target '{name}'; targets: {string.Join(", ", Names)}", nameof(name));
            }
        }
        catch (Exception e) when (e is BackupException or InvalidDataException or EndOfStreamException)
        {
            return false;
        }
    }

    /// <summary>Extracts into a folder of its own and checks nothing was written beside it (then removes it).</summary>
    private static bool Tar(byte[] input)
    {
        var root = Path.Combine(Path.GetTempPath(), "backstop-fuzz-" + Guid.NewGuid().ToString("N")[..12]);
        var dest = Path.Combine(root, "dest");
        Directory.CreateDirectory(dest);
        try
        {
            TarExtractor.ExtractAsync(new MemoryStream(input), dest, CancellationToken.None).GetAwaiter().GetResult();
            return true;
        }
        finally
        {
            var beside = Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName).ToList();
            System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("rm", ["-rf", "--", root]))!.WaitForExit();
            if (beside is not ["dest"])
            {
#pragma warning disable CA2219 // A write beside the destination is the finding: it outranks whatever the extraction threw.
                throw new InvalidOperationException($"the extraction wrote beside its destination: {string.Join(", ", beside)}");
#pragma warning restore CA2219
            }
        }
    }

    /// <summary>Valid inputs of each target, the corpus's seeds: what Backstop writes, or what the servers it reads write.</summary>
    public static IEnumerable<(string Target, string Name, byte[] Bytes)> Seeds()
    {
        yield return ("manifest", "seed-manifest.json", Encoding.UTF8.GetBytes("""
            {"format": 1, "snapshot": "20260101T000000Z-abcd", "source": {"name": "pg", "kind": "postgres"}, "host": "h",
             "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z", "tools": {"pg_dump": "16.1"}, "raw_bytes": 10, "stored_bytes": 5,
             "facts": {"rows": 3}, "warnings": ["w"], "parent": "20251231T000000Z-abcd", "level": 1, "artifacts": [{"name": "db.dump", "file": "db.dump.zst", "raw_bytes": 10, "stored_bytes": 5,
             "sha256": "abababababababababababababababababababababababababababababababab", "compression": "zstd", "encryption_recipients": [], "facts": {"rows": 3},
             "restore": "zstd -dc db.dump.zst | pg_restore -d DB", "reported": ["rows"], "level": 1,
             "blobs": [{"file": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.zst", "bytes": 7}]}]}
            """));
        yield return ("tar", "seed-files.tar", SeedTar());
        yield return ("rdb", "seed.rdb", Rdb());
        yield return ("oci", "seed-layout.tar", Layout());
        yield return ("jsonlines", "seed-dump.jsonl", Encoding.UTF8.GetBytes("""
            {"_id":"order-1","_rev":"1-a","total":12.5,"items":[{"sku":"x","n":2}],"note":"caf\u00e9 \"quoted\""}
            {"_id":"order-2","_rev":"3-b","_attachments":{"r.pdf":{"content_type":"application/pdf","data":"JVBERi0="}}}
            {"_id":"_design/app","_rev":"1-c","views":{"by":{"map":"function(d){emit(d._id)}"}}}

            """));
    }

    /// <summary>A files archive as Backstop writes it (its own pax writer): a folder with its dumpdir, a file, a symlink out, a hard link, an xattr.</summary>
    private static byte[] SeedTar()
    {
        const long at = 1767225600L * 1_000_000_000; // fixed times: the same bytes on every run, as committed
        using var m = new MemoryStream();
        var w = new PaxWriter(m);
        w.Write(new PaxEntry { Type = PaxType.Directory, Name = "srv/"u8.ToArray(), Mode = 0x1ed, MTimeNs = at, DumpDir = "Ya.txt\0Yhard\0Yout\0\0"u8.ToArray() });
        var alpha = "alpha"u8.ToArray();
        w.Write(new PaxEntry { Type = PaxType.File, Name = "srv/a.txt"u8.ToArray(), Mode = 0x1a4, Size = alpha.Length, MTimeNs = at,
            Xattrs = [new("user.note", "x"u8.ToArray())] }, new MemoryStream(alpha));
        w.Write(new PaxEntry { Type = PaxType.SymbolicLink, Name = "srv/out"u8.ToArray(), LinkName = "../../etc"u8.ToArray(), Mode = 0x1ff, MTimeNs = at });
        w.Write(new PaxEntry { Type = PaxType.HardLink, Name = "srv/hard"u8.ToArray(), LinkName = "srv/a.txt"u8.ToArray(), Mode = 0x1a4, MTimeNs = at });
        w.Finish();
        return m.ToArray();
    }

    private static byte[] Rdb()
    {
        var body = new List<byte>();
        body.AddRange("REDIS0011"u8.ToArray());
        body.AddRange([0xFA, 9]);
        body.AddRange("redis-ver"u8.ToArray());
        body.Add(5);
        body.AddRange("7.2.4"u8.ToArray());
        body.AddRange([0xFE, 0x00, 0xFB, 0x01, 0x00, 0x00, 0x03]);
        body.AddRange("key"u8.ToArray());
        body.Add(5);
        body.AddRange("value"u8.ToArray());
        body.Add(0xFF);
        body.AddRange(BitConverter.GetBytes(Crc64.Update(0, body.ToArray())));
        return [.. body];
    }

    private static string Digest(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));

    private static byte[] Layout()
    {
        var config = "{\"architecture\":\"amd64\",\"os\":\"linux\"}"u8.ToArray();
        var layer = Encoding.UTF8.GetBytes(new string('l', 600));
        var manifest = Encoding.UTF8.GetBytes(
            $"{{\"schemaVersion\":2,\"mediaType\":\"{RegistryNames.OciManifest}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{Digest(config)}\",\"size\":{config.Length}}}," +
            $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"{Digest(layer)}\",\"size\":{layer.Length}}}]}}");
        var stream = new MemoryStream();
        var writer = OciLayoutWriter.CreateAsync(stream, CancellationToken.None).GetAwaiter().GetResult();
        try
        {
            writer.AddAsync(Digest(config), config, CancellationToken.None).GetAwaiter().GetResult();
            writer.AddAsync(Digest(layer), layer.Length, new MemoryStream(layer), "layer", CancellationToken.None).GetAwaiter().GetResult();
            writer.AddAsync(Digest(manifest), manifest, CancellationToken.None).GetAwaiter().GetResult();
            writer.FinishAsync([new Descriptor(RegistryNames.OciManifest, Digest(manifest), manifest.Length, new Dictionary<string, string> { [OciLayoutWriter.RefName] = "v1" })],
                new Dictionary<string, string>(), CancellationToken.None).GetAwaiter().GetResult();
        }
        finally
        {
            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        return stream.ToArray();
    }
}
