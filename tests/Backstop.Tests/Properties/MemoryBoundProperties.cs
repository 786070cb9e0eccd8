using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using Backstop.Sources.CouchDb;
using Backstop.Sources.Redis;
using Backstop.Sources.Registry;
using Xunit.Abstractions;

namespace Backstop.Tests.Properties;

/// <summary>Runs alone: the heap is sampled for the whole process while one reader works.</summary>
[CollectionDefinition(nameof(MemoryBound), DisableParallelization = true)]
public sealed class MemoryBound;

/// <summary>
/// The stated bound: the readers of outside input that stream (CouchDB JSON lines, the RDB check, the OCI layout
/// reader) hold less than <see cref="Bound"/> of heap however large their input, here inputs of 192 MiB and more that
/// are made as they are read and never exist whole. The heap is sampled every few milliseconds while the reader runs;
/// the peak above the starting heap is what the reader held (plus garbage not yet collected).
/// </summary>
[Collection(nameof(MemoryBound))]
public sealed class MemoryBoundProperties(ITestOutputHelper output)
{
    private const long Bound = 48L << 20;
    private const long Large = 192L << 20;

    /// <summary>The largest heap above the start seen while <paramref name="read"/> ran.</summary>
    private long Peak(Func<Task> read, string what)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        long peak = 0;
        using var done = new ManualResetEventSlim();
        var sampler = new Thread(() =>
        {
            while (!done.Wait(2))
            {
                peak = Math.Max(peak, GC.GetTotalMemory(false) - baseline);
            }
        });
        sampler.Start();
        try
        {
            read().GetAwaiter().GetResult();
        }
        finally
        {
            done.Set();
            sampler.Join();
        }

        output.WriteLine($"{what}: peak heap {peak >> 20} MiB above the start (bound {Bound >> 20} MiB)");
        Assert.True(peak < Bound, $"{what} held {peak >> 20} MiB of heap; the bound is {Bound >> 20} MiB");
        return peak;
    }

    [Fact]
    public void Json_lines_with_a_document_of_192_MiB_and_many_small_ones_are_counted_within_the_bound()
    {
        var head = "{\"_id\":\"big\",\"_rev\":\"1-a\",\"data\":\""u8.ToArray();
        var tail = "\"}\n"u8.ToArray();
        var small = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 1000).Select(i => $"{{\"_id\":\"d{i}\",\"_rev\":\"1-b\",\"n\":{i}}}\n")));
        var scanner = new JsonLineScanner();
        Peak(() =>
        {
            using var stream = new Generated(head, Large, (byte)'A', [.. tail, .. small]);
            var buffer = new byte[64 << 10];
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                scanner.Feed(buffer.AsSpan(0, n));
            }

            scanner.Finish();
            return Task.CompletedTask;
        }, "JSON lines");
        Assert.Equal(1001, scanner.Documents);
    }

    [Fact]
    public void An_rdb_of_192_MiB_is_checked_within_the_bound()
    {
        // Magic and version, a body, the EOF opcode and the CRC64 of all before it: the checks Backstop makes itself.
        var magic = "REDIS0011"u8.ToArray();
        ulong crc = Crc64.Update(0, magic);
        var body = new byte[1 << 20];
        Array.Fill(body, (byte)0x5A);
        for (var i = 0; i < Large / body.Length; i++)
        {
            crc = Crc64.Update(crc, body);
        }

        crc = Crc64.Update(crc, [0xFF]);
        var trailer = new byte[9];
        trailer[0] = 0xFF;
        BitConverter.TryWriteBytes(trailer.AsSpan(1), crc);
        Peak(async () =>
        {
            await using var stream = new Generated(magic, Large, 0x5A, trailer);
            await new RedisSource.RdbValidator().ReadFactsAsync(stream, CancellationToken.None);
        }, "RDB check");
    }

    [Fact]
    public void An_oci_layout_with_a_layer_of_192_MiB_is_read_within_the_bound()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunk = new byte[1 << 20];
        Array.Fill(chunk, (byte)7);
        for (var i = 0; i < Large / chunk.Length; i++)
        {
            sha.AppendData(chunk);
        }

        var layerDigest = "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
        var config = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"u8.ToArray();
        var manifest = Encoding.UTF8.GetBytes(
            $"{{\"schemaVersion\":2,\"mediaType\":\"{RegistryNames.OciManifest}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{Digest(config)}\",\"size\":{config.Length}}}," +
            $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"{layerDigest}\",\"size\":{Large}}}]}}");
        var layers = 0L;
        Peak(async () =>
        {
            // Written by Backstop's own layout writer into a pipe that the reader drains as it goes: never whole anywhere.
            var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 1 << 20, resumeWriterThreshold: 512 << 10));
            var writing = Task.Run(async () =>
            {
                await using var into = pipe.Writer.AsStream();
                var writer = await OciLayoutWriter.CreateAsync(into, CancellationToken.None);
                await using (writer)
                {
                    await writer.AddAsync(Digest(config), config, CancellationToken.None);
                    await writer.AddAsync(layerDigest, Large, new Generated([], Large, 7, []), "layer", CancellationToken.None);
                    await writer.AddAsync(Digest(manifest), manifest, CancellationToken.None);
                    await writer.FinishAsync([new Descriptor(RegistryNames.OciManifest, Digest(manifest), manifest.Length, new Dictionary<string, string> { [OciLayoutWriter.RefName] = "v1" })],
                        new Dictionary<string, string>(), CancellationToken.None);
                }
            });
            await using var from = pipe.Reader.AsStream();
            var layout = await OciLayoutReader.ReadAsync(from, null, "layout", CancellationToken.None);
            layers = layout.Blobs.Count(b => b.Value == Large);
            await writing;
        }, "OCI layout");
        Assert.Equal(1, layers);
    }

    private static string Digest(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));

    /// <summary>A read-only stream of HEAD, then LENGTH bytes of FILL, then TAIL, made as it is read.</summary>
    private sealed class Generated(byte[] head, long length, byte fill, byte[] tail) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => head.Length + length + tail.Length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = 0;
            while (n < buffer.Length && _position < Length)
            {
                var p = _position;
                if (p < head.Length)
                {
                    var k = (int)Math.Min(buffer.Length - n, head.Length - p);
                    head.AsSpan((int)p, k).CopyTo(buffer[n..]);
                    n += k;
                    _position += k;
                }
                else if (p < head.Length + length)
                {
                    var k = (int)Math.Min(buffer.Length - n, head.Length + length - p);
                    buffer.Slice(n, k).Fill(fill);
                    n += k;
                    _position += k;
                }
                else
                {
                    var at = (int)(p - head.Length - length);
                    var k = Math.Min(buffer.Length - n, tail.Length - at);
                    tail.AsSpan(at, k).CopyTo(buffer[n..]);
                    n += k;
                    _position += k;
                }
            }

            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
