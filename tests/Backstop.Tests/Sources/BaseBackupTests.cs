using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using Backstop.Core.Plugins;
using Backstop.Sources.Postgres;

namespace Backstop.Tests.Sources;

/// <summary>The base backup's format check: the manifest's own checksum, every file it lists with its size, and the WAL range.</summary>
public sealed class BaseBackupTests
{
    private static byte[] ManifestFor(IReadOnlyList<(string Path, int Size)> files, bool tamper = false)
    {
        var body = new StringBuilder("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n");
        body.Append(string.Join(",\n", files.Select(f => $"{{ \"Path\": \"{f.Path}\", \"Size\": {f.Size}, \"Last-Modified\": \"2026-12-06 01:51:53 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"{Crc(new byte[f.Size])}\" }}")));
        body.Append("\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"1/2000100\" }\n],\n");
        var checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(body.ToString())));
        var text = body + $"\"Manifest-Checksum\": \"{checksum}\"}}\n";
        return Encoding.UTF8.GetBytes(tamper ? text.Replace("\"Timeline\": 1", "\"Timeline\": 2", StringComparison.Ordinal) : text);
    }

    /// <summary>A file's CRC-32C as a manifest writes it: the four bytes little-endian, in hex.</summary>
    private static string Crc(byte[] content) => Convert.ToHexStringLower(BitConverter.GetBytes(Crc32C.Final(Crc32C.Append(Crc32C.Initial, content))));

    [Theory]
    [InlineData("123456789", 0xE3069283u)] // the CRC-32C check value
    [InlineData("", 0u)]
    public void Crc32c_gives_the_standard_check_values(string text, uint expected) =>
        Assert.Equal(expected, Crc32C.Final(Crc32C.Append(Crc32C.Initial, Encoding.ASCII.GetBytes(text))));

    [Theory]
    [InlineData(0)]
    [InlineData(24575)]
    [InlineData(24576)]
    [InlineData(24583)]
    [InlineData(100003)]
    public void Crc32c_over_interleaved_blocks_equals_the_byte_by_byte_crc(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        var plain = Crc32C.Initial;
        foreach (var b in data)
        {
            plain = System.Numerics.BitOperations.Crc32C(plain, b);
        }

        // Whole, and in uneven pieces (as a pipe hands them over).
        Assert.Equal(plain, Crc32C.Append(Crc32C.Initial, data));
        var pieces = Crc32C.Initial;
        for (var at = 0; at < length; at += 30001)
        {
            pieces = Crc32C.Append(pieces, data.AsSpan(at, Math.Min(30001, length - at)));
        }

        Assert.Equal(plain, pieces);
    }

    private static MemoryStream Tar(IReadOnlyList<(string Path, int Size)> files, byte[]? manifest)
    {
        var output = new MemoryStream();
        using (var tar = new TarWriter(output, TarEntryFormat.Ustar, leaveOpen: true))
        {
            foreach (var (path, size) in files)
            {
                tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, path) { DataStream = new MemoryStream(new byte[size]) });
            }

            if (manifest is not null)
            {
                tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, "backup_manifest") { DataStream = new MemoryStream(manifest) });
            }
        }

        output.Position = 0;
        return output;
    }

    private static readonly (string, int)[] Files = [("backup_label", 20), ("global/pg_control", 8192), ("base/1/1259", 100)];

    [Fact]
    public async Task A_whole_base_backup_gives_its_files_bytes_and_wal_range()
    {
        var facts = await new BaseBackupValidator().ReadFactsAsync(Tar(Files, ManifestFor(Files)), CancellationToken.None);
        Assert.Equal(3, facts["files"]);
        Assert.Equal(8312, facts["bytes"]);
        Assert.Equal(3, facts["checksummed_files"]);
        Assert.Equal(1, facts["timeline"]);
        Assert.Equal(0x2000028, facts["start_lsn"]);
        Assert.Equal((1L << 32) | 0x2000100, facts["end_lsn"]);
    }

    [Fact]
    public async Task An_altered_manifest_a_missing_or_resized_file_and_a_tar_without_a_manifest_are_refused()
    {
        var altered = await Assert.ThrowsAsync<BackupException>(() => new BaseBackupValidator().ReadFactsAsync(Tar(Files, ManifestFor(Files, tamper: true)), CancellationToken.None));
        Assert.Contains("altered or cut", altered.Message, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<BackupException>(() => new BaseBackupValidator().ReadFactsAsync(Tar(Files[..2], ManifestFor(Files)), CancellationToken.None));
        Assert.Contains("lists base/1/1259, which the base backup does not hold", missing.Message, StringComparison.Ordinal);

        var resized = await Assert.ThrowsAsync<BackupException>(() =>
            new BaseBackupValidator().ReadFactsAsync(Tar([.. Files[..2], ("base/1/1259", 99)], ManifestFor(Files)), CancellationToken.None));
        Assert.Contains("base/1/1259 is 99 bytes in the base backup; its manifest says 100", resized.Message, StringComparison.Ordinal);

        var none = await Assert.ThrowsAsync<BackupException>(() => new BaseBackupValidator().ReadFactsAsync(Tar(Files, null), CancellationToken.None));
        Assert.Contains("no backup_manifest", none.Message, StringComparison.Ordinal);

        var cut = await Assert.ThrowsAsync<BackupException>(() => new BaseBackupValidator().ReadFactsAsync(Tar(Files[1..], ManifestFor(Files[1..])), CancellationToken.None));
        Assert.Contains("no backup_label", cut.Message, StringComparison.Ordinal);

        // A file of the right size whose bytes changed: its CRC-32C is not the manifest's (what pg_verifybackup finds).
        var tar = Tar(Files, ManifestFor(Files)).ToArray();
        var at = tar.AsSpan().IndexOf("global/pg_control"u8);
        tar[at + 512 + 100] ^= 0xFF; // a byte of its content, after its 512-byte header
        var altered2 = await Assert.ThrowsAsync<BackupException>(() => new BaseBackupValidator().ReadFactsAsync(new MemoryStream(tar), CancellationToken.None));
        Assert.Contains("global/pg_control does not hold what its manifest says (CRC-32C", altered2.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("16/B374D848", 0x16B374D848L)]
    [InlineData("0/0", 0L)]
    public void Lsns_read_and_write_as_postgresql_does(string text, long value)
    {
        Assert.Equal(value, PostgresPhysical.ParseLsn(text));
        Assert.Equal(text, PostgresPhysical.FormatLsn(value));
    }
}
