using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using Backstop.Core.Plugins;
using Backstop.Sources.Registry;

namespace Backstop.Tests.Sources;

/// <summary>
/// OCI layouts as a target hands them back (hostile input): the reader takes only the files a layout has, checks
/// every blob against its name and every descriptor against the blobs, and counts what it finds.
/// </summary>
public sealed class OciLayoutTests
{
    private static string Digest(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));

    /// <summary>A layout of one image (config and one layer) tagged v1, written by Backstop's own writer.</summary>
    private static async Task<(MemoryStream Tar, string Manifest, string Layer)> LayoutAsync()
    {
        var config = "{\"architecture\":\"amd64\",\"os\":\"linux\"}"u8.ToArray();
        var layer = new byte[3000];
        new Random(3).NextBytes(layer);
        var manifest = Encoding.UTF8.GetBytes(
            $"{{\"schemaVersion\":2,\"mediaType\":\"{RegistryNames.OciManifest}\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{Digest(config)}\",\"size\":{config.Length}}}," +
            $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"{Digest(layer)}\",\"size\":{layer.Length}}}]}}");
        var output = new MemoryStream();
        await using (var writer = await OciLayoutWriter.CreateAsync(output, CancellationToken.None))
        {
            await writer.AddAsync(Digest(config), config, CancellationToken.None);
            await writer.AddAsync(Digest(layer), layer.Length, new MemoryStream(layer), "layer", CancellationToken.None);
            await writer.AddAsync(Digest(manifest), manifest, CancellationToken.None);
            await writer.FinishAsync([new Descriptor(RegistryNames.OciManifest, Digest(manifest), manifest.Length, new Dictionary<string, string> { [OciLayoutWriter.RefName] = "v1" })],
                new Dictionary<string, string>(), CancellationToken.None);
        }

        output.Position = 0;
        return (output, Digest(manifest), Digest(layer));
    }

    private static Task<OciLayoutReader.Layout> ReadAsync(Stream tar) => OciLayoutReader.ReadAsync(tar, null, "layout", CancellationToken.None);

    /// <summary>Rewrites a layout tar entry by entry, letting <paramref name="change"/> replace or add entries.</summary>
    private static async Task<MemoryStream> RewriteAsync(Stream tar, Func<TarEntry, byte[], IEnumerable<TarEntry>> change)
    {
        var output = new MemoryStream();
        using (var reader = new TarReader(tar, leaveOpen: true))
        await using (var writer = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true))
        {
            while (await reader.GetNextEntryAsync(copyData: true) is { } entry)
            {
                var data = new MemoryStream();
                if (entry.DataStream is { } s)
                {
                    await s.CopyToAsync(data);
                }

                foreach (var e in change(entry, data.ToArray()))
                {
                    await writer.WriteEntryAsync(e);
                }
            }
        }

        output.Position = 0;
        return output;
    }

    private static PaxTarEntry File(string name, byte[] bytes) => new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes) };

    /// <summary>The entry as it was (a folder stays a folder).</summary>
    private static PaxTarEntry Same(TarEntry e, byte[] bytes) => e.EntryType == TarEntryType.Directory ? new PaxTarEntry(TarEntryType.Directory, e.Name) : File(e.Name, bytes);

    [Fact]
    public async Task A_layout_reads_back_with_its_facts()
    {
        var (tar, manifest, _) = await LayoutAsync();
        var layout = await ReadAsync(tar);
        Assert.Equal([("v1", manifest)], layout.Tags.Select(t => (t.Tag, t.Manifest.Digest)));
        Assert.Equal(1, layout.Facts["tags"]);
        Assert.Equal(1, layout.Facts["manifests"]);
        Assert.Equal(2, layout.Facts["blobs"]);
        Assert.Equal(layout.Blobs.Values.Sum(), layout.Facts["bytes"]);
    }

    [Fact]
    public async Task A_blob_whose_bytes_do_not_match_its_name_is_refused_naming_it()
    {
        var (tar, _, layer) = await LayoutAsync();
        var bad = await RewriteAsync(tar, (e, d) =>
        {
            if (e.Name.EndsWith(layer[7..], StringComparison.Ordinal))
            {
                d[100] ^= 1;
            }

            return [Same(e, d)];
        });
        var error = await Assert.ThrowsAsync<BackupException>(() => ReadAsync(bad));
        Assert.Contains(layer, error.Message, StringComparison.Ordinal);
        Assert.Contains("not to its", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("symlink")]
    [InlineData("traversal")]
    [InlineData("stranger")]
    public async Task Entries_an_oci_layout_never_has_are_refused(string kind)
    {
        var (tar, _, _) = await LayoutAsync();
        var bad = await RewriteAsync(tar, (e, d) => e.Name == "oci-layout"
            ? kind switch
            {
                "symlink" => [File(e.Name, d), new PaxTarEntry(TarEntryType.SymbolicLink, "blobs/sha256/" + new string('a', 64)) { LinkName = "/etc/passwd" }],
                "traversal" => [File(e.Name, d), File("../../etc/cron.d/evil", "* * * * * root sh"u8.ToArray())],
                _ => [File(e.Name, d), File("blobs/sha256/not-a-digest", "x"u8.ToArray())],
            }
            : [Same(e, d)]);
        var error = await Assert.ThrowsAsync<BackupException>(() => ReadAsync(bad));
        Assert.Contains("layout holds", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_layer_the_layout_does_not_hold_is_external_and_a_missing_manifest_or_index_is_refused()
    {
        var (tar, manifest, layer) = await LayoutAsync();
        var whole = await ReadAsync(tar);

        // Backstop stores configs and layers apart (shared blobs): the layout names them, the facts count them the same.
        tar.Position = 0;
        var apart = await ReadAsync(await RewriteAsync(tar, (e, d) => e.Name.EndsWith(layer[7..], StringComparison.Ordinal) ? [] : [Same(e, d)]));
        Assert.Equal([layer], apart.External.Select(b => b.Digest));
        Assert.Equal(3000, apart.External.Single().Size);
        Assert.Equal(whole.Facts, apart.Facts);

        tar.Position = 0;
        var noManifest = await RewriteAsync(tar, (e, d) => e.Name.EndsWith(manifest[7..], StringComparison.Ordinal) ? [] : [Same(e, d)]);
        Assert.Contains($"names {manifest}, which the layout does not hold", (await Assert.ThrowsAsync<BackupException>(() => ReadAsync(noManifest))).Message, StringComparison.Ordinal);

        tar.Position = 0;
        var noIndex = await RewriteAsync(tar, (e, d) => e.Name == "index.json" ? [] : [Same(e, d)]);
        Assert.Contains("no index.json", (await Assert.ThrowsAsync<BackupException>(() => ReadAsync(noIndex))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_streamed_blob_shorter_longer_or_other_than_its_digest_fails_the_writer()
    {
        var bytes = new byte[1000];
        await using var writer = await OciLayoutWriter.CreateAsync(new MemoryStream(), CancellationToken.None);
        var right = Digest(bytes);
        var shortErr = await Assert.ThrowsAsync<BackupException>(() => writer.AddAsync(right, 1001, new MemoryStream(bytes), "blob x", CancellationToken.None));
        Assert.Contains("ended after 1000 of its 1001 bytes", shortErr.Message, StringComparison.Ordinal);

        await using var writer2 = await OciLayoutWriter.CreateAsync(new MemoryStream(), CancellationToken.None);
        var longErr = await Assert.ThrowsAsync<BackupException>(() => writer2.AddAsync(right, 999, new MemoryStream(bytes), "blob y", CancellationToken.None));
        Assert.Contains("more than the 999 bytes", longErr.Message, StringComparison.Ordinal);

        await using var writer3 = await OciLayoutWriter.CreateAsync(new MemoryStream(), CancellationToken.None);
        var other = await Assert.ThrowsAsync<BackupException>(() => writer3.AddAsync(Digest([1, 2, 3]), 1000, new MemoryStream(bytes), "blob z", CancellationToken.None));
        Assert.Contains("not to its digest", other.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("app/api", true)]
    [InlineData("a.b_c__d-e/f", true)]
    [InlineData("../etc", false)]
    [InlineData("App/api", false)]
    [InlineData("app//api", false)]
    [InlineData("app/api/", false)]
    public void Repository_names_follow_the_distribution_grammar(string name, bool valid) => Assert.Equal(valid, RegistryNames.IsRepository(name));

    [Fact]
    public void A_link_header_and_a_token_challenge_are_parsed()
    {
        using var response = new HttpResponseMessage();
        response.Headers.TryAddWithoutValidation("Link", "</v2/_catalog?last=r099&n=100>; rel=\"next\"");
        Assert.Equal("/v2/_catalog?last=r099&n=100", RegistryClient.NextLink(response));
        var fields = RegistrySession.ParseChallenge("realm=\"https://auth.example/token\",service=\"registry\",scope=\"repository:app/api:pull\"");
        Assert.Equal("https://auth.example/token", fields["realm"]);
        Assert.Equal("repository:app/api:pull", fields["scope"]);
    }

    [Fact]
    public async Task A_tag_in_the_index_that_is_not_a_tag_is_refused_before_it_becomes_a_url()
    {
        var (tar, manifest, _) = await LayoutAsync();
        var bad = await RewriteAsync(tar, (e, d) => e.Name == "index.json"
            ? [File(e.Name, Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(d).Replace("\"v1\"", "\"../../victim/manifests/latest\"", StringComparison.Ordinal)))]
            : [Same(e, d)]);
        var error = await Assert.ThrowsAsync<BackupException>(() => ReadAsync(bad));
        Assert.Contains("which is not a tag", error.Message, StringComparison.Ordinal);
        Assert.Contains(manifest, error.Message, StringComparison.Ordinal);
    }
}
