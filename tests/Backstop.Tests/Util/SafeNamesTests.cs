using Backstop.Core.Storage;
using Backstop.Core.Text;

namespace Backstop.Tests.Util;

public class SafeNamesTests
{
    [Theory]
    [InlineData("gx", "gx")]
    [InlineData("app_db-2.v1", "app_db-2.v1")]
    [InlineData("a+b=c@d e", "a+b=c@d e")] // file names before: unchanged, so an upgrade renames no artifact
    [InlineData("../../../x", "%2E%2E%2F.%2E%2F.%2E%2Fx")]
    [InlineData("host=127.0.0.1 port=5433 dbname=evil", "host=127.0.0.1 port=5433 dbname=evil")]
    [InlineData("--result-file=/tmp/x", "--result-file=%2Ftmp%2Fx")]
    [InlineData("a\\'; DROP DATABASE y; --", "a%5C'; DROP DATABASE y; --")]
    [InlineData("line\nbreak", "line%0Abreak")]
    [InlineData("100%", "100%25")]
    [InlineData(".hidden", "%2Ehidden")]
    [InlineData("café ✓", "café ✓")]
    [InlineData("rtl\u202Eexe.txt", "rtl%E2%80%AEexe.txt")]
    public void Hostile_names_encode_to_safe_file_names(string name, string encoded)
    {
        Assert.Equal(encoded, SafeNames.Encode(name));
        Assert.True(SafeNames.IsSafeFileName(SafeNames.Encode(name) + ".dump"));
    }

    [Fact]
    public void A_long_name_is_shortened_with_a_hash_and_two_never_collide()
    {
        var a = SafeNames.Encode(new string('数', 90) + "a");
        var b = SafeNames.Encode(new string('数', 90) + "b");
        Assert.NotEqual(a, b);
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(a) <= 200);
        Assert.Matches("~[0-9a-f]{16}$", a);
        Assert.True(SafeNames.IsSafeFileName(a + ".dump.zst.age"));
        var escaped = SafeNames.Encode(new string('\n', 150));
        Assert.True(SafeNames.IsSafeFileName(escaped + ".dump.zst.age"));
        Assert.DoesNotMatch("%.?~", escaped); // never a %XX cut in half
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("a/b")]
    [InlineData(".x")]
    [InlineData("a..b")]
    [InlineData("")]
    [InlineData("a\\b")]
    [InlineData("a\nb")]
    public void Unsafe_names_are_recognised(string name) => Assert.False(SafeNames.IsSafeFileName(name));

    [Fact]
    public void Inside_refuses_every_way_out_of_the_folder()
    {
        Assert.Equal("/restore/to/a.db", SafeNames.Inside("/restore/to", "a.db"));
        Assert.Equal("/restore/to/sub/a.db", SafeNames.Inside("/restore/to/", "sub/a.db"));
        Assert.Throws<PathOutsideException>(() => SafeNames.Inside("/restore/to", "../x"));
        Assert.Throws<PathOutsideException>(() => SafeNames.Inside("/restore/to", "/etc/cron.d/x"));
        Assert.Throws<PathOutsideException>(() => SafeNames.Inside("/restore/to", "sub/../../to2/x"));
        Assert.Throws<PathOutsideException>(() => SafeNames.Inside("/restore/to", "."));
    }

    private static byte[] ManifestJson(string artifact = "db.dump", string file = "db.dump.zst", int format = 1, string sha = "ab") =>
        System.Text.Encoding.UTF8.GetBytes($$"""
            {"format": {{format}}, "snapshot": "20260101T000000Z-abcd", "source": {"name": "pg", "kind": "postgres"}, "host": "h",
             "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z", "tools": {}, "raw_bytes": 10, "stored_bytes": 5,
             "facts": {}, "warnings": [], "artifacts": [{"name": "{{artifact}}", "file": "{{file}}", "raw_bytes": 10, "stored_bytes": 5,
             "sha256": "{{string.Concat(Enumerable.Repeat(sha, 32))}}", "compression": "zstd", "encryption_recipients": [], "facts": {}, "restore": "x"}]}
            """);

    [Fact]
    public void A_manifest_from_a_target_is_validated_before_use()
    {
        Assert.Equal("db.dump", Manifest.ParseUntrusted(ManifestJson(), "m").Artifacts[0].Name);
        Assert.Contains("not a safe file name", Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted(ManifestJson("../../x", "../../x.zst"), "pg/x/MANIFEST.json on 'nas'")).Message, StringComparison.Ordinal);
        Assert.Contains("pg/x/MANIFEST.json on 'nas'", Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted(ManifestJson(format: 2), "pg/x/MANIFEST.json on 'nas'")).Message, StringComparison.Ordinal);
        Assert.Contains("names its file", Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted(ManifestJson(file: "other.zst"), "m")).Message, StringComparison.Ordinal);
        Assert.Contains("malformed SHA-256", Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted(ManifestJson(sha: "AB"), "m")).Message, StringComparison.Ordinal);
        Assert.Contains("not valid JSON", Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted("{"u8, "m")).Message, StringComparison.Ordinal);
        var nullCompression = System.Text.Encoding.UTF8.GetString(ManifestJson()).Replace("\"compression\": \"zstd\"", "\"compression\": null", StringComparison.Ordinal);
        Assert.Contains("lacks a required field", Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted(System.Text.Encoding.UTF8.GetBytes(nullCompression), "m")).Message, StringComparison.Ordinal);
        var nullHost = System.Text.Encoding.UTF8.GetString(ManifestJson()).Replace("\"host\": \"h\"", "\"host\": null", StringComparison.Ordinal);
        Assert.Contains("missing or null", Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted(System.Text.Encoding.UTF8.GetBytes(nullHost), "m")).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../../../etc/passwd")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/../../x")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.gz")]
    [InlineData("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("")]
    public void A_manifest_naming_a_shared_blob_other_than_HEX_zst_age_is_refused(string file)
    {
        var good = System.Text.Encoding.UTF8.GetString(ManifestJson()).Replace("\"restore\": \"x\"",
            "\"restore\": \"x\", \"blobs\": [{\"file\": \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.zst.age\", \"bytes\": 9}]", StringComparison.Ordinal);
        Assert.Equal(9, Manifest.ParseUntrusted(System.Text.Encoding.UTF8.GetBytes(good), "m").Artifacts[0].Blobs!.Single().Bytes);
        var bad = good.Replace("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.zst.age", file, StringComparison.Ordinal);
        var error = Assert.Throws<InvalidManifestException>(() => Manifest.ParseUntrusted(System.Text.Encoding.UTF8.GetBytes(bad), "images/x/MANIFEST.json on 'nas'"));
        Assert.Contains("names a blob", error.Message, StringComparison.Ordinal);
        Assert.Contains("images/x/MANIFEST.json on 'nas'", error.Message, StringComparison.Ordinal);
    }
}
