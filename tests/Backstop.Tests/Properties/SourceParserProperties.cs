using System.Text;
using System.Text.Json.Nodes;
using Backstop.Core.Plugins;
using Backstop.Sources.CouchDb;
using Backstop.Sources.Kubernetes;
using Backstop.Sources.Redis;
using Backstop.Sources.Registry;
using CsCheck;
using Xunit.Abstractions;

namespace Backstop.Tests.Properties;

/// <summary>The source kinds' parsers of what servers and targets hand back, fed damaged valid inputs (CsCheck).</summary>
public sealed class SourceParserProperties(ITestOutputHelper output)
{
    /// <summary>CRC-64/Jones as Redis computes it, one bit at a time: the reference the table-driven one must equal.</summary>
    private static ulong ReferenceCrc64(ReadOnlySpan<byte> data)
    {
        const ulong poly = 0x95ac9329ac4bc9b5UL; // 0xad93d23594c935a9 reflected
        ulong crc = 0;
        foreach (var b in data)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ poly : crc >> 1;
            }
        }

        return crc;
    }

    [Fact]
    public void Crc64_equals_the_bitwise_reference_on_any_bytes_and_in_any_pieces()
    {
        Assert.Equal(0xe9c6d914c4b8d9caUL, ReferenceCrc64("123456789"u8)); // the reference is Redis' own (its check value)
        Gen.Byte.Array[0, 3000].Select(Gen.Int[0, 3000]).Sample((data, cut) =>
        {
            cut = Math.Min(cut, data.Length);
            Assert.Equal(ReferenceCrc64(data), Crc64.Update(0, data));
            Assert.Equal(Crc64.Update(0, data), Crc64.Update(Crc64.Update(0, data.AsSpan(0, cut)), data.AsSpan(cut)));
        }, iter: 2000);
    }

    private const string Dump = """
        {"_id":"order-1","_rev":"1-a","total":12.5,"items":[{"sku":"x","n":2}],"note":"caf\u00e9 \"quoted\""}
        {"_id":"order-2","_rev":"3-b","total":0,"_attachments":{"r.pdf":{"content_type":"application/pdf","data":"JVBERi0="}}}
        {"_id":"_design/app","_rev":"1-c","views":{"by":{"map":"function(d){emit(d._id)}"}}}
        {"_id":"order-3","_rev":"2-d","_deleted":false,"nested":{"a":{"b":{"c":[1,2,{"d":null}]}}}}

        """;

    /// <summary>A small RDB as Redis writes it (the fuzz harness's seed): magic and version, an AUX field, a database, one key, EOF and the CRC64.</summary>
    private static byte[] Rdb() => Backstop.Fuzz.FuzzTargets.Seeds().First(x => x.Target == "rdb").Bytes;

    /// <summary>A stream that hands its bytes out in the pieces given (a network read, a pipe).</summary>
    private sealed class Pieces(byte[] data, int piece) : MemoryStream(data)
    {
        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, piece)]);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, piece)], cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            base.ReadAsync(buffer, offset, Math.Min(count, piece), cancellationToken);
    }

    [Fact]
    public async Task A_damaged_rdb_is_refused_in_any_pieces_and_only_an_intact_one_passes()
    {
        var seed = Rdb();
        await new RedisSource.RdbValidator().ReadFactsAsync(new MemoryStream(seed), CancellationToken.None); // the seed passes
        var past = new PastFirstCheck("RDB (magic and version read)");
        await Mutations.Of(seed, 4).Select(Gen.Int[1, 40]).SampleAsync(async (bytes, piece) =>
        {
            string? whole = null, pieces = null;
            foreach (var (stream, set) in new (Stream, Action<string>)[] { (new MemoryStream(bytes), v => whole = v), (new Pieces(bytes, piece), v => pieces = v) })
            {
                try
                {
                    await new RedisSource.RdbValidator().ReadFactsAsync(stream, CancellationToken.None);
                    set("ok");
                }
                catch (BackupException e)
                {
                    set(e.Message);
                }
            }

            Assert.Equal(whole, pieces); // the answer never depends on how the bytes arrived
            Assert.True(whole != "ok" || bytes.AsSpan().SequenceEqual(seed) || Crc64.Update(0, bytes.AsSpan(0, bytes.Length - 8)) == BitConverter.ToUInt64(bytes, bytes.Length - 8),
                "a damaged RDB whose CRC64 does not match passed");
            (whole is { } w && !w.Contains("REDIS", StringComparison.Ordinal) && !w.Contains("magic", StringComparison.Ordinal) ? (Action)past.Accepted : past.Refused)();
        }, iter: 3000);
        output.WriteLine(past.ToString());
    }

    [Fact]
    public void Json_lines_are_counted_the_same_in_any_chunks_and_damage_is_refused_naming_its_line()
    {
        var past = new PastFirstCheck("JSON lines (every line a document)");
        Mutations.OfText(Dump, 4).Select(Gen.Int[1, 64]).Sample((text, chunk) =>
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            long? whole = null;
            string? refused = null;
            foreach (var size in new[] { bytes.Length + 1, chunk, 1 })
            {
                var scanner = new JsonLineScanner();
                try
                {
                    for (var i = 0; i < bytes.Length; i += size)
                    {
                        scanner.Feed(bytes.AsSpan(i, Math.Min(size, bytes.Length - i)));
                    }

                    scanner.Finish();
                    Assert.Null(refused); // refused in one chunking, accepted in another: never
                    Assert.True(whole is null || whole == scanner.Documents, "the count depends on the chunking");
                    whole = scanner.Documents;
                }
                catch (BackupException e)
                {
                    Assert.Null(whole);
                    Assert.Contains("line ", e.Message, StringComparison.Ordinal);
                    Assert.True(refused is null || refused == e.Message, $"'{refused}' in one chunking, '{e.Message}' in another");
                    refused = e.Message;
                }
            }

            (whole is not null ? (Action)past.Accepted : past.Refused)();
        }, iter: 3000);
        output.WriteLine(past.ToString());
        Assert.True(past.Share > 0.02, past.ToString());
    }

    /// <summary>A layout of one image (config and one layer) tagged v1, written by Backstop's own writer (the fuzz harness's seed).</summary>
    private static Task<byte[]> LayoutAsync() => Task.FromResult(Backstop.Fuzz.FuzzTargets.Seeds().First(x => x.Target == "oci").Bytes);

    [Fact]
    public async Task A_damaged_oci_layout_is_refused_with_a_message_or_read_whole()
    {
        var seed = await LayoutAsync();
        Assert.Equal(2, (await OciLayoutReader.ReadAsync(new MemoryStream(seed), null, "layout", CancellationToken.None)).Facts["blobs"]);
        var past = new PastFirstCheck("OCI layout (read whole)");
        await Mutations.Of(seed, 6).SampleAsync(async bytes =>
        {
            try
            {
                var layout = await OciLayoutReader.ReadAsync(new MemoryStream(bytes), null, "layout", CancellationToken.None);
                Assert.True(layout.Facts["blobs"] >= 0);
                past.Accepted();
            }
            catch (Exception e) when (e is BackupException or InvalidDataException or EndOfStreamException)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                past.Refused();
            }
        }, iter: 2000);
        output.WriteLine(past.ToString());
    }

    /// <summary>Strings YAML reads as something else unless quoted.</summary>
    private static readonly string[] Awkward =
        ["yes", "no", "on", "off", "y", "~", "null", "Null", "0x1f", "0o17", "1e3", ".inf", "-", "- a", "a: b", "#x", "'", "\"", "*alias", "&anchor", "!tag", "{}", "[]", "007",
         "1_000", " lead", "trail ", "", "\n", "a\nb", "\t", "%YAML", "---", "...", "@x", "`x", "|", ">"];

    [Fact]
    public void Kubernetes_yaml_reads_back_what_it_writes_and_damage_is_refused_with_a_message()
    {
        // Write → read gives the same object, for trees of every JSON type and awkward strings.
        var scalar = Gen.OneOf<JsonNode?>(
            Gen.String.Select(s => (JsonNode?)JsonValue.Create(s)),
            Gen.Int[0, Awkward.Length - 1].Select(i => (JsonNode?)JsonValue.Create(Awkward[i])),
            Gen.Long.Select(l => (JsonNode?)JsonValue.Create(l)),
            Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b)),
            Gen.Const((JsonNode?)null));
        var tree = scalar.Array[0, 4].Select(Gen.String[1, 8].Array[0, 4]).Select((values, keys) =>
        {
            var o = new JsonObject();
            for (var i = 0; i < Math.Min(values.Length, keys.Length); i++)
            {
                o[keys[i]] = values[i];
            }

            o["list"] = new JsonArray(values.Select(v => v?.DeepClone()).ToArray());
            o["nested"] = new JsonObject { ["inner"] = o.DeepClone() };
            return o;
        });
        tree.Sample(o =>
        {
            var text = KubeYaml.Write(o);
            var back = KubeYaml.Read(text, "test");
            Assert.True(JsonNode.DeepEquals(o, back), $"{o.ToJsonString()}\nwritten as\n{text}\nread back as\n{back?.ToJsonString()}");
        }, iter: 1500);

        // Damaged YAML: an object, or Backstop's refusal naming the file.
        var seed = KubeYaml.Write(JsonNode.Parse("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app","namespace":"shop","labels":{"a":"b"}},"data":{"k":"v: x","n":"007"}}""")!);
        var past = new PastFirstCheck("Kubernetes YAML (read)");
        Mutations.OfText(seed, 4).Sample(text =>
        {
            try
            {
                KubeYaml.Read(text, "shop/ConfigMap/app.yaml");
                past.Accepted();
            }
            catch (BackupException e)
            {
                Assert.Contains("shop/ConfigMap/app.yaml", e.Message, StringComparison.Ordinal);
                past.Refused();
            }
        }, iter: 3000);
        output.WriteLine(past.ToString());
        Assert.True(past.Share > 0.1, past.ToString());
    }

    [Fact]
    public void A_registry_challenge_of_any_text_is_parsed_without_throwing()
    {
        Gen.String.Sample(s => RegistrySession.ParseChallenge(s), iter: 5000);
        Mutations.OfText("realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:app:pull,push\"", 6)
            .Sample(s => RegistrySession.ParseChallenge(s), iter: 5000);
    }

    /// <summary>A registry's answers: an image manifest and an index as registries send them, damaged.</summary>
    [Fact]
    public void A_damaged_registry_manifest_or_index_is_read_or_refused_with_a_message_never_an_error_of_its_own()
    {
        var layer = "sha256:" + new string('a', 64);
        var config = "sha256:" + new string('b', 64);
        var manifest = $"{{\"schemaVersion\":2,\"mediaType\":\"{RegistryNames.OciManifest}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{config}\",\"size\":1469}}," +
                       $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{layer}\",\"size\":2811478,\"annotations\":{{\"org.opencontainers.image.title\":\"rootfs\"}}}}]}}";
        var index = $"{{\"schemaVersion\":2,\"mediaType\":\"{RegistryNames.OciIndex}\",\"manifests\":[{{\"mediaType\":\"{RegistryNames.OciManifest}\",\"digest\":\"{layer}\",\"size\":528,\"platform\":{{\"architecture\":\"amd64\",\"os\":\"linux\"}}}}]}}";
        var past = new PastFirstCheck("registry manifests and indexes (valid JSON of a known type)");
        void Check(byte[] bytes)
        {
            var type = RegistryNames.MediaTypeOf(bytes);
            (type is null ? (Action)past.Refused : past.Accepted)();
            foreach (var read in new Func<IReadOnlyList<Descriptor>>[]
                     {
                         () => Descriptor.ListOf(bytes, "manifests", "the index"),
                         () => Descriptor.ListOf(bytes, "layers", "the manifest"),
                         () => [.. RegistrySource.Parts(bytes, "the manifest").Select(p => p.Blob)],
                     })
            {
                try
                {
                    foreach (var d in read())
                    {
                        Assert.True(RegistryNames.IsDigest(d.Digest) && d.Size >= 0, $"a descriptor read with digest '{d.Digest}' and size {d.Size}");
                    }
                }
                catch (BackupException e)
                {
                    Assert.False(string.IsNullOrWhiteSpace(e.Message));
                }
            }
        }

        // Shapes a mutation seldom makes: JSON that is not an object, members of the wrong type, a string not UTF-8.
        foreach (var odd in new[] { "[]", "1", "\"x\"", "null", "{\"config\":1}", "{\"layers\":[1]}", "{\"layers\":{}}", "{\"manifests\":[[]]}" })
        {
            Check(Encoding.UTF8.GetBytes(odd));
        }

        Check([.. Encoding.UTF8.GetBytes(manifest[..60]), 0xC3, 0x28, .. Encoding.UTF8.GetBytes(manifest[60..])]);
        Gen.OneOf(Mutations.OfText(manifest, 4), Mutations.OfText(index, 4)).Sample(text => Check(Encoding.UTF8.GetBytes(text)), iter: 3000);
        output.WriteLine(past.ToString());
        Assert.True(past.Share > 0.1, past.ToString());

        // The Link header of a paged tag list, of any text.
        Gen.String.Sample(link =>
        {
            using var response = new HttpResponseMessage();
            if (response.Headers.TryAddWithoutValidation("Link", link))
            {
                _ = RegistryClient.NextLink(response);
            }
        }, iter: 3000);
    }

    [Fact]
    public void A_crontab_of_any_damage_is_checked_without_throwing()
    {
        const string crontab = """
            SHELL=/bin/bash
            PATH=/usr/local/bin:/usr/bin:/bin
            MAILTO=ops@example.org
            # m h dom mon dow command
            0 3 * * * /usr/local/bin/backstop run --source db >> /var/log/backstop.log 2>&1
            */15 * * * * cd /opt/app && ./sync.sh
            @reboot sleep 60 && /usr/bin/true
            30 4 * * 0 root /bin/sh -c 'pg_dump app | gzip > /backups/app.sql.gz'

            """;
        Mutations.OfText(crontab, 6).Select(Gen.Bool).Sample((text, system) =>
            Backstop.Core.Doctor.Schedules.CheckCrontab("/etc/cron.d/test", text, system, "/usr/bin:/bin", _ => "/root"), iter: 3000);
    }
}
