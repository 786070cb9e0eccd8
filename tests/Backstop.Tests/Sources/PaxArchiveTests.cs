using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Backstop.Core.Tar;
using CsCheck;

namespace Backstop.Tests.Sources;

/// <summary>
/// Backstop's own pax writer and reader: names as bytes, binary xattr values, ACL and dumpdir records, nanosecond
/// times — round-tripped at random, read by stock GNU tar, reading what GNU tar writes, and refusing damaged input.
/// </summary>
public sealed partial class PaxArchiveTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("backstop-pax-").FullName;

    public void Dispose() => RunTool("rm", "-rf", "--", _dir); // names that are not UTF-8: .NET cannot name them to delete

    private static readonly byte[] Latin1Name = [(byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)'.', (byte)'t', (byte)'x', (byte)'t']; // "café.txt" in Latin-1: not UTF-8

    private static readonly Gen<byte[]> NameBytes =
        Gen.Byte[1, 255].Where(b => b != (byte)'/').Array[1, 40].Array[1, 8].Select(parts => parts.Aggregate((a, b) => [.. a, (byte)'/', .. b]));

    private static readonly Gen<PaxEntry> Entries =
        Gen.Select(Gen.Enum<PaxType>(),
                NameBytes, Gen.Byte[1, 255].Array[0, 300], Gen.Int[0, 0xFFF], Gen.Long[0, 1L << 40], Gen.Long[-(1L << 50), 1L << 62],
                Gen.Select(Gen.String[Gen.Char['a', 'z'], 1, 12], Gen.Byte.Array[0, 300]).Array[0, 4], Gen.Int[0, 3000])
            .Select((type, name, link, mode, id, mtime, xattrs, size) => new PaxEntry
            {
                Type = type,
                Name = name,
                LinkName = type is PaxType.SymbolicLink or PaxType.HardLink ? link : [],
                Mode = mode,
                Uid = id,
                Gid = id / 3,
                UserName = id % 2 == 0 ? "root" : "ü" + id,
                GroupName = "staff",
                Size = type == PaxType.File ? size : 0,
                MTimeNs = mtime,
                DevMajor = type == PaxType.CharacterDevice ? 1 : 0,
                DevMinor = type == PaxType.CharacterDevice ? mode % 256 : 0,
                Xattrs = [.. xattrs.DistinctBy(x => x.Item1).Select(x => KeyValuePair.Create("user." + x.Item1 + (x.Item2.Length % 3 == 0 ? "=%" : ""), x.Item2))],
                AclAccess = mode % 5 == 0 ? "user::rw-,group::r--,other::---" : null,
                DumpDir = type == PaxType.Directory && mode % 2 == 0 ? [(byte)'Y', .. name[..Math.Min(5, name.Length)], 0, (byte)'N', (byte)'x', 0, 0] : null,
            });

    private static byte[] ContentOf(PaxEntry e) => [.. Enumerable.Range(0, (int)e.Size).Select(i => (byte)(i * 31 + e.Name.Length))];

    [Fact]
    public void Any_members_round_trip_byte_for_byte()
    {
        Entries.Array[1, 6].Sample(entries =>
        {
            var archive = new MemoryStream();
            var writer = new PaxWriter(archive);
            foreach (var e in entries)
            {
                writer.Write(e, new MemoryStream(ContentOf(e)));
            }

            writer.Finish();
            Assert.Equal(0, archive.Length % 512);
            archive.Position = 0;
            var reader = new PaxReader(archive);
            foreach (var e in entries)
            {
                var read = reader.Next();
                Assert.NotNull(read);
                Assert.Equal(e.Type, read.Type);
                Assert.Equal(e.Name, read.Name);
                Assert.Equal(e.LinkName, read.LinkName);
                Assert.Equal((e.Mode, e.Uid, e.Gid, e.UserName, e.GroupName, e.Size, e.MTimeNs), (read.Mode, read.Uid, read.Gid, read.UserName, read.GroupName, read.Size, read.MTimeNs));
                Assert.Equal((e.DevMajor, e.DevMinor), (read.DevMajor, read.DevMinor));
                Assert.Equal(e.Xattrs.Select(x => (x.Key, Convert.ToHexString(x.Value))), read.Xattrs.Select(x => (x.Key, Convert.ToHexString(x.Value))));
                Assert.Equal(e.AclAccess, read.AclAccess);
                Assert.Equal(e.DumpDir, read.DumpDir);
                var content = new MemoryStream();
                read.Type.Equals(PaxType.File);
                reader.Content().CopyTo(content);
                Assert.Equal(ContentOf(e), content.ToArray());
            }

            Assert.Null(reader.Next());
        }, iter: 200);
    }

    [Fact]
    public void Stock_gnu_tar_restores_a_non_utf8_name_a_binary_xattr_a_long_path_and_nanosecond_times()
    {
        var deep = Encoding.ASCII.GetBytes(string.Join('/', Enumerable.Repeat("folder-with-a-long-name", 12)));
        var capability = new byte[] { 0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
        var archive = Path.Combine(_dir, "a.tar");
        using (var file = File.Create(archive))
        {
            var writer = new PaxWriter(file);
            writer.Write(new PaxEntry { Type = PaxType.File, Name = Latin1Name, Mode = 0x1A0 /* 0640 */, Size = 5, MTimeNs = 1_700_000_000_123_456_789, Xattrs = [KeyValuePair.Create("user.blob", capability)] }, new MemoryStream("hello"u8.ToArray()));
            writer.Write(new PaxEntry { Type = PaxType.SymbolicLink, Name = "link"u8.ToArray(), LinkName = Latin1Name, Mode = 0x1FF, MTimeNs = 1_600_000_000_000_000_000 });
            writer.Write(new PaxEntry { Type = PaxType.File, Name = [.. deep, .. "/leaf"u8], Mode = 0x180, Size = 3, MTimeNs = 1_500_000_000_500_000_000 }, new MemoryStream("abc"u8.ToArray()));
            writer.Finish();
        }

        var to = Directory.CreateDirectory(Path.Combine(_dir, "out")).FullName;
        var (code, _, err) = RunTool("tar", "-x", "--xattrs", "--xattrs-include=*", "-f", archive, "-C", to);
        Assert.True(code == 0, err);
        var names = Encoding.Latin1.GetString(RunTool("find", to, "-mindepth", "1", "-maxdepth", "1", "-printf", "%P\\0").Stdout).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(Encoding.Latin1.GetString(Latin1Name), names); // the same bytes, not a UTF-8 re-encoding
        byte[] path = [.. Encoding.UTF8.GetBytes(to + "/"), .. Latin1Name, 0];
        var value = new byte[64];
        var got = lgetxattr(path, "user.blob", value, (nuint)value.Length);
        Assert.True(got >= 0, $"getxattr: errno {Marshal.GetLastPInvokeError()}");
        Assert.Equal(capability, value[..(int)got]);
        var stat = Encoding.ASCII.GetString(RunTool("find", to, "-maxdepth", "1", "-name", "caf*", "-printf", "%m %T@").Stdout);
        Assert.Equal("640 1700000000.1234567890", stat);
        Assert.Equal("abc", File.ReadAllText(Path.Combine(to, Encoding.ASCII.GetString(deep), "leaf")));
        var target = RunTool("readlink", Path.Combine(to, "link")).Stdout;
        Assert.Equal([.. Latin1Name, (byte)'\n'], target);
    }

    [Fact]
    public void What_gnu_tar_writes_with_xattrs_and_long_names_is_read_with_the_same_bytes()
    {
        var src = Directory.CreateDirectory(Path.Combine(_dir, "src")).FullName;
        byte[] odd = [.. Encoding.UTF8.GetBytes(src + "/"), .. Latin1Name, 0];
        var fd = open(odd, 0x41 /* O_CREAT|O_WRONLY */, 0x1a4);
        Assert.True(fd >= 0);
        close(fd);
        var binary = new byte[] { 0, 1, 2, 0xff, 0xfe, (byte)'\n', (byte)'=' };
        Assert.Equal(0, lsetxattr(odd, "user.bin", binary, (nuint)binary.Length, 0));
        var longName = new string('n', 180);
        File.WriteAllText(Path.Combine(src, longName), "long");
        foreach (var format in new[] { "posix", "gnu" })
        {
            var archive = Path.Combine(_dir, format + ".tar");
            var (code, _, err) = RunTool("tar", "-c", "--format=" + format, "--xattrs", "--xattrs-include=*", "-f", archive, "-C", src, ".");
            Assert.True(code == 0, err);
            using var file = File.OpenRead(archive);
            var reader = new PaxReader(file);
            var seen = new List<PaxEntry>();
            while (reader.Next() is { } e)
            {
                seen.Add(e);
            }

            var cafe = seen.Single(e => e.Name.AsSpan().EndsWith(Latin1Name));
            Assert.Equal(PaxType.File, cafe.Type);
            if (format == "posix")
            {
                Assert.Equal(Convert.ToHexString(binary), Convert.ToHexString(cafe.Xattrs.Single(x => x.Key == "user.bin").Value));
            }

            Assert.Contains(seen, e => Encoding.UTF8.GetString(e.Name).EndsWith(longName, StringComparison.Ordinal) && e.Size == 4);
        }
    }

    [Fact]
    public void A_sparse_file_gnu_tar_writes_in_format_1_0_reads_as_its_segments_and_ours_extracts_with_gnu_tar()
    {
        var src = Directory.CreateDirectory(Path.Combine(_dir, "sparse")).FullName;
        var (code, _, err) = RunTool("sh", "-c", $"cd '{src}' && truncate -s 64M holes.img && printf middle | dd of=holes.img bs=1 seek=30000000 conv=notrunc 2>/dev/null && printf start | dd of=holes.img conv=notrunc 2>/dev/null");
        Assert.True(code == 0, err);
        var archive = Path.Combine(_dir, "gnu-sparse.tar");
        (code, _, err) = RunTool("tar", "-c", "--format=posix", "--sparse", "--sparse-version=1.0", "-f", archive, "-C", src, "holes.img");
        Assert.True(code == 0, err);
        PaxEntry entry;
        byte[] data;
        using (var file = File.OpenRead(archive))
        {
            var reader = new PaxReader(file);
            entry = reader.Next()!;
            var content = new MemoryStream();
            reader.Content().CopyTo(content);
            data = content.ToArray();
            Assert.Null(reader.Next());
        }

        Assert.Equal("holes.img", Encoding.UTF8.GetString(entry.Name));
        Assert.Equal(64L << 20, entry.Size);
        Assert.NotNull(entry.Sparse);
        Assert.Equal(entry.Sparse!.Sum(x => x.Length), data.LongLength);
        Assert.True(data.Length < 1 << 20, $"{data.Length} bytes of data for a 64 MiB file with two small writes");

        // Ours, extracted by GNU tar: the same segments come back as a sparse file of the same size and bytes.
        var ours = Path.Combine(_dir, "ours-sparse.tar");
        using (var output = File.Create(ours))
        {
            var writer = new PaxWriter(output);
            writer.Write(entry with { Name = "copy.img"u8.ToArray() }, new MemoryStream(data));
            writer.Finish();
        }

        var to = Directory.CreateDirectory(Path.Combine(_dir, "sparse-out")).FullName;
        (code, _, err) = RunTool("tar", "-x", "-f", ours, "-C", to);
        Assert.True(code == 0, err);
        (code, _, err) = RunTool("cmp", Path.Combine(src, "holes.img"), Path.Combine(to, "copy.img"));
        Assert.True(code == 0, err);
        var blocks = Encoding.ASCII.GetString(RunTool("stat", "-c", "%b", Path.Combine(to, "copy.img")).Stdout).Trim();
        Assert.True(long.Parse(blocks, CultureInfo.InvariantCulture) * 512 < 1 << 20, $"{blocks} blocks: the holes were written");
    }

    [Theory]
    [InlineData("4\n0\n10\n", "map runs past its content")]
    [InlineData("1\n0\nx\n", "other than decimal numbers")]
    [InlineData("2\n100\n10\n0\n10\n", "overlap, are out of order")]
    [InlineData("1\n0\n99999\n", "end past its size")]
    [InlineData("99999999\n", "more than 1048576")]
    [InlineData("1\n0\n5\n", "lists 5 bytes of data, and 10 are stored")]
    public void A_hostile_sparse_map_is_refused_by_name(string map, string expected)
    {
        var records = new MemoryStream();
        foreach (var (k, v) in new[] { ("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "f"), ("GNU.sparse.realsize", "1000") })
        {
            var body = $" {k}={v}\n";
            var length = body.Length + 2;
            records.Write(Encoding.ASCII.GetBytes($"{length}{body}"));
        }

        var mapBlock = new byte[512];
        Encoding.ASCII.GetBytes(map).CopyTo(mapBlock, 0);
        var archive = new MemoryStream();
        archive.Write(Header("x", records.Length));
        archive.Write(records.ToArray());
        archive.Write(new byte[(512 - (records.Length % 512)) % 512]);
        archive.Write(Header("0", 512 + 10));
        archive.Write(mapBlock);
        archive.Write(new byte[512]);
        archive.Write(new byte[1024]);
        archive.Position = 0;
        var e = Assert.Throws<InvalidDataException>(() => new PaxReader(archive).Next());
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);

        static byte[] Header(string type, long size)
        {
            var h = new byte[512];
            Encoding.ASCII.GetBytes("GNUSparseFile.0/f").CopyTo(h, 0);
            Encoding.ASCII.GetBytes("0000644\0").CopyTo(h, 100);
            Encoding.ASCII.GetBytes(Convert.ToString(size, 8).PadLeft(11, '0') + "\0").CopyTo(h, 124);
            Encoding.ASCII.GetBytes("00000000000\0").CopyTo(h, 136);
            h[156] = (byte)type[0];
            Encoding.ASCII.GetBytes("ustar\0" + "00").CopyTo(h, 257);
            Reseal(h, 0);
            return h;
        }
    }

    [Theory]
    [InlineData("checksum", "checksum does not match")]
    [InlineData("truncated", "ends inside a member's content")]
    [InlineData("truncated-header", "ends inside a pax extended header")]
    [InlineData("cut-at-a-member", "ends without its end-of-archive blocks")]
    [InlineData("huge-header", "larger than the 8 MiB")]
    [InlineData("bad-record", "is malformed")]
    [InlineData("negative-size", "size field is out of range")]
    [InlineData("huge-record-length", "is malformed")]
    [InlineData("bad-type", "member type 'S' is not one Backstop reads")]
    public void A_damaged_or_hostile_archive_is_refused_with_where_and_why(string damage, string expected)
    {
        var archive = new MemoryStream();
        var writer = new PaxWriter(archive);
        writer.Write(new PaxEntry { Type = PaxType.File, Name = Latin1Name, Size = 600, MTimeNs = 1 }, new MemoryStream(new byte[600]));
        writer.Finish();
        var bytes = archive.ToArray(); // block 0: the 'x' header, 1: its records, 2: the member, 3-4: content
        switch (damage)
        {
            case "checksum":
                bytes[512 * 2 + 10] ^= 1;
                break;
            case "truncated":
                bytes = bytes[..(512 * 3 + 100)];
                break;
            case "cut-at-a-member":
                bytes = bytes[..(512 * 5)];
                break;
            case "truncated-header":
                bytes = bytes[..(512 + 10)];
                break;
            case "huge-header":
                Encoding.ASCII.GetBytes("77777777777\0").CopyTo(bytes, 124);
                Reseal(bytes, 0);
                break;
            case "bad-record":
                bytes[512] = (byte)'9';
                bytes[513] = (byte)'9';
                break;
            case "negative-size":
                bytes.AsSpan(512 * 2 + 124, 12).Fill(0xFF);
                Reseal(bytes, 512 * 2);
                break;
            case "huge-record-length":
                Encoding.ASCII.GetBytes("2147483647 ").CopyTo(bytes, 512 + 21); // the second record ("hdrcharset" is 21 bytes): a length that overflows at + length
                break;
            case "bad-type":
                bytes[512 * 2 + 156] = (byte)'S';
                Reseal(bytes, 512 * 2);
                break;
        }

        var reader = new PaxReader(new MemoryStream(bytes));
        var error = Assert.Throws<InvalidDataException>(() =>
        {
            while (reader.Next() is not null)
            {
                reader.Content().CopyTo(Stream.Null);
            }
        });
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("header is at byte", error.Message, StringComparison.Ordinal);
    }

    private static void Reseal(byte[] bytes, int at)
    {
        "        "u8.CopyTo(bytes.AsSpan(at + 148));
        var sum = bytes.AsSpan(at, 512).ToArray().Sum(b => b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(bytes, at + 148);
    }

    private static (int Code, byte[] Stdout, string Stderr) RunTool(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var output = new MemoryStream();
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.BaseStream.CopyTo(output);
        p.WaitForExit();
        return (p.ExitCode, output.ToArray(), err.Result);
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint lgetxattr(byte[] path, [MarshalAs(UnmanagedType.LPUTF8Str)] string name, byte[] value, nuint size);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int lsetxattr(byte[] path, [MarshalAs(UnmanagedType.LPUTF8Str)] string name, byte[] value, nuint size, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int open(byte[] path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
