using System.Globalization;
using System.Text;

namespace Backstop.Core.Tar;

/// <summary>
/// Writes a POSIX pax archive (ustar blocks, each member preceded by an 'x' header when it needs one) that holds
/// what <see cref="PaxEntry"/> holds: names and link targets as bytes (<c>hdrcharset=BINARY</c> when they are not
/// UTF-8), nanosecond mtimes, <c>SCHILY.xattr.*</c> with binary values, <c>SCHILY.acl.*</c> and <c>GNU.dumpdir</c>,
/// the records GNU tar reads with <c>--xattrs --acls --incremental</c>. Content is copied through a 64 KiB buffer,
/// never held whole.
/// </summary>
public sealed class PaxWriter(Stream output)
{
    internal const int Block = 512;
    private const long MaxOctal11 = 0x1_FFFF_FFFF; // octal 77777777777, 8 GiB - 1: the largest size or time a 12-byte field holds in octal
    private const long MaxOctal7 = 0x1F_FFFF; // octal 7777777
    private readonly byte[] _buffer = new byte[1 << 16];

    /// <summary>Writes one member and exactly <see cref="PaxEntry.Size"/> bytes of <paramref name="content"/> (regular files).</summary>
    public void Write(PaxEntry entry, Stream? content = null)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Name.Length == 0 || entry.Name.Contains((byte)0) || entry.LinkName.Contains((byte)0))
        {
            throw new ArgumentException("a member's name must be non-empty and hold no NUL byte", nameof(entry));
        }

        var map = entry.Type == PaxType.File && entry.Sparse is { } segments ? SparseMap(segments, entry.Size) : null;
        var data = map is null ? (entry.Type == PaxType.File ? entry.Size : 0) : entry.Sparse!.Sum(x => x.Length);
        var size = (map?.Length ?? 0) + data; // a sparse file stores its map, then its data segments
        if (data > 0)
        {
            ArgumentNullException.ThrowIfNull(content); // before any byte is written: never half a member
        }

        if (entry.DevMajor is < 0 or > (int)MaxOctal7 || entry.DevMinor is < 0 or > (int)MaxOctal7 || size < 0)
        {
            throw new ArgumentException("a member's size or device numbers are out of range", nameof(entry));
        }
        var records = new MemoryStream();
        var (name, prefix) = SplitForUstar(map is null ? entry.Name : SparseStandIn(entry.Name));
        var binary = !IsUtf8(entry.Name) || !IsUtf8(entry.LinkName);
        if (binary)
        {
            Record(records, "hdrcharset", "BINARY"u8);
        }

        if (map is not null)
        {
            // GNU tar's sparse format 1.0: the real name and size in the pax header, the ustar name a stand-in that a
            // reader without sparse support extracts as a plain file (map and data).
            Record(records, "GNU.sparse.major", "1"u8);
            Record(records, "GNU.sparse.minor", "0"u8);
            Record(records, "GNU.sparse.name", entry.Name);
            Record(records, "GNU.sparse.realsize", Ascii(entry.Size.ToString(CultureInfo.InvariantCulture)));
            name ??= Truncated(SparseStandIn(entry.Name), 100);
            prefix ??= [];
        }
        else if (name is null)
        {
            Record(records, "path", entry.Name);
        }

        var linkFits = entry.LinkName.Length <= 100 && IsPlainAscii(entry.LinkName);
        if (!linkFits)
        {
            Record(records, "linkpath", entry.LinkName);
        }

        if (size > MaxOctal11)
        {
            Record(records, "size", Ascii(size.ToString(CultureInfo.InvariantCulture)));
        }

        if (entry.Uid is < 0 or > MaxOctal7)
        {
            Record(records, "uid", Ascii(entry.Uid.ToString(CultureInfo.InvariantCulture)));
        }

        if (entry.Gid is < 0 or > MaxOctal7)
        {
            Record(records, "gid", Ascii(entry.Gid.ToString(CultureInfo.InvariantCulture)));
        }

        var seconds = Math.DivRem(entry.MTimeNs, 1_000_000_000L, out var fraction);
        if (fraction != 0 || entry.MTimeNs < 0 || seconds > MaxOctal11)
        {
            Record(records, "mtime", Ascii(FormatTime(entry.MTimeNs)));
        }

        if (!FitsField(entry.UserName, 32))
        {
            Record(records, "uname", Encoding.UTF8.GetBytes(entry.UserName));
        }

        if (!FitsField(entry.GroupName, 32))
        {
            Record(records, "gname", Encoding.UTF8.GetBytes(entry.GroupName));
        }

        if (entry.AclAccess is { } access)
        {
            Record(records, "SCHILY.acl.access", Encoding.UTF8.GetBytes(access));
        }

        if (entry.AclDefault is { } defaults)
        {
            Record(records, "SCHILY.acl.default", Encoding.UTF8.GetBytes(defaults));
        }

        foreach (var (key, value) in entry.Xattrs)
        {
            Record(records, "SCHILY.xattr." + EncodeXattrKey(key), value);
        }

        if (entry.DumpDir is { } dumpdir)
        {
            Record(records, "GNU.dumpdir", dumpdir);
        }

        var ustarTime = Math.Clamp(entry.MTimeNs < 0 && fraction != 0 ? seconds - 1 : seconds, 0, MaxOctal11);
        if (records.Length > 0)
        {
            var header = NewHeader();
            PutBytes(header, 0, 100, PaxHeaderName(entry.Name));
            PutOctal(header, 100, 8, 0x1A4); // 0644
            PutOctal(header, 108, 8, 0);
            PutOctal(header, 116, 8, 0);
            PutSize(header, records.Length);
            PutOctal(header, 136, 12, ustarTime);
            header[156] = (byte)'x';
            Seal(header);
            output.Write(header);
            records.Position = 0;
            records.CopyTo(output);
            Pad(records.Length);
        }

        var block = NewHeader();
        PutBytes(block, 0, 100, name ?? Truncated(entry.Name, 100));
        PutBytes(block, 345, 155, prefix ?? []);
        PutOctal(block, 100, 8, entry.Mode & 0xFFF);
        PutOctal(block, 108, 8, entry.Uid is >= 0 and <= MaxOctal7 ? entry.Uid : 0);
        PutOctal(block, 116, 8, entry.Gid is >= 0 and <= MaxOctal7 ? entry.Gid : 0);
        PutSize(block, size);
        PutOctal(block, 136, 12, ustarTime);
        block[156] = (byte)entry.Type;
        PutBytes(block, 157, 100, linkFits ? entry.LinkName : Truncated(entry.LinkName, 100));
        PutBytes(block, 265, 32, FitsField(entry.UserName, 32) ? Encoding.ASCII.GetBytes(entry.UserName) : []);
        PutBytes(block, 297, 32, FitsField(entry.GroupName, 32) ? Encoding.ASCII.GetBytes(entry.GroupName) : []);
        if (entry.Type is PaxType.CharacterDevice or PaxType.BlockDevice)
        {
            PutOctal(block, 329, 8, entry.DevMajor);
            PutOctal(block, 337, 8, entry.DevMinor);
        }

        Seal(block);
        output.Write(block);
        if (map is not null)
        {
            output.Write(map);
        }

        if (data > 0)
        {
            var left = data;
            while (left > 0)
            {
                var read = content!.Read(_buffer, 0, (int)Math.Min(_buffer.Length, left));
                if (read == 0)
                {
                    throw new EndOfStreamException($"the content of {Encoding.UTF8.GetString(entry.Name)} ended {left} bytes short of its size {data}");
                }

                output.Write(_buffer, 0, read);
                left -= read;
            }
        }

        if (size > 0)
        {
            Pad(size);
        }
    }

    /// <summary>
    /// The sparse map of format 1.0: the number of segments, then each one's offset and length, one decimal per line,
    /// padded with NULs to whole blocks. Segments must be in order, not overlap and end within the real size.
    /// </summary>
    private static byte[] SparseMap(IReadOnlyList<(long Offset, long Length)> segments, long realSize)
    {
        var text = new StringBuilder().Append(segments.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
        long end = 0;
        foreach (var (offset, length) in segments)
        {
            if (offset < end || length < 0 || offset > realSize - length)
            {
                throw new ArgumentException("sparse segments must be in order, not overlap, and end within the file", nameof(segments));
            }

            end = offset + length;
            text.Append(offset.ToString(CultureInfo.InvariantCulture)).Append('\n').Append(length.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        var bytes = Encoding.ASCII.GetBytes(text.ToString());
        var padded = new byte[(bytes.Length + Block - 1) / Block * Block];
        bytes.CopyTo(padded, 0);
        return padded;
    }

    /// <summary>GNU tar's stand-in name of a sparse member: DIR/GNUSparseFile.0/NAME.</summary>
    private static byte[] SparseStandIn(byte[] name)
    {
        var slash = Array.LastIndexOf(name, (byte)'/');
        return [.. name.AsSpan(0, slash + 1), .. "GNUSparseFile.0/"u8, .. name.AsSpan(slash + 1)];
    }

    /// <summary>The end of the archive: two zero blocks.</summary>
    public void Finish() => output.Write(new byte[2 * Block]);

    internal static string FormatTime(long ns)
    {
        var magnitude = ns < 0 ? -(decimal)ns : ns;
        var whole = decimal.Truncate(magnitude / 1_000_000_000m);
        var fraction = (long)(magnitude - (whole * 1_000_000_000m));
        var text = fraction == 0
            ? whole.ToString(CultureInfo.InvariantCulture)
            : $"{whole.ToString(CultureInfo.InvariantCulture)}.{fraction.ToString("D9", CultureInfo.InvariantCulture).TrimEnd('0')}";
        return ns < 0 ? "-" + text : text;
    }

    /// <summary>GNU tar's escaping of an xattr name in a pax keyword: '%' and '=' as %25 and %3D.</summary>
    internal static string EncodeXattrKey(string key) => key.Replace("%", "%25", StringComparison.Ordinal).Replace("=", "%3D", StringComparison.Ordinal);

    private static void Record(MemoryStream records, string key, ReadOnlySpan<byte> value)
    {
        // "LEN KEY=VALUE\n", LEN counting itself.
        var body = 1 + Encoding.UTF8.GetByteCount(key) + 1 + value.Length + 1;
        var length = body + 1;
        while (length.ToString(CultureInfo.InvariantCulture).Length + body != length)
        {
            length = length.ToString(CultureInfo.InvariantCulture).Length + body;
        }

        records.Write(Encoding.UTF8.GetBytes(length.ToString(CultureInfo.InvariantCulture) + " " + key + "="));
        records.Write(value);
        records.WriteByte((byte)'\n');
    }

    /// <summary>The ustar name and prefix for a name that fits them in plain ASCII; (null, null) when it needs a pax path.</summary>
    private static (byte[]? Name, byte[]? Prefix) SplitForUstar(byte[] path)
    {
        if (!IsPlainAscii(path))
        {
            return (null, null);
        }

        if (path.Length <= 100)
        {
            return (path, []);
        }

        for (var i = Math.Min(path.Length - 1, 155); i > 0; i--)
        {
            if (path[i] == (byte)'/' && path.Length - i - 1 is > 0 and <= 100)
            {
                return (path[(i + 1)..], path[..i]);
            }
        }

        return (null, null);
    }

    private static byte[] PaxHeaderName(byte[] path)
    {
        var slash = Array.LastIndexOf(path, (byte)'/', path.Length - 2 < 0 ? 0 : path.Length - 2);
        var baseName = path.AsSpan(slash + 1).TrimEnd((byte)'/');
        var safe = new byte[Math.Min(baseName.Length, 80)];
        for (var i = 0; i < safe.Length; i++)
        {
            safe[i] = baseName[i] is >= 0x21 and < 0x7f ? baseName[i] : (byte)'_';
        }

        return [.. "PaxHeaders/"u8, .. safe];
    }

    private static byte[] Truncated(byte[] bytes, int max)
    {
        var ascii = bytes.Take(max).Select(b => b is >= 0x20 and < 0x7f ? b : (byte)'_').ToArray();
        return ascii;
    }

    private static bool FitsField(string text, int field) => text.Length < field && text.All(c => c is >= ' ' and < '\x7f');

    private static bool IsPlainAscii(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            if (b is < 0x20 or >= 0x7f)
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsUtf8(byte[] bytes) => System.Text.Unicode.Utf8.IsValid(bytes);

    private static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    private static byte[] NewHeader()
    {
        var header = new byte[Block];
        "ustar\0"u8.CopyTo(header.AsSpan(257));
        "00"u8.CopyTo(header.AsSpan(263));
        return header;
    }

    private static void PutBytes(byte[] header, int at, int length, ReadOnlySpan<byte> value) => value[..Math.Min(value.Length, length)].CopyTo(header.AsSpan(at, length));

    private static void PutOctal(byte[] header, int at, int length, long value)
    {
        var text = Convert.ToString(value, 8).PadLeft(length - 1, '0');
        Encoding.ASCII.GetBytes(text).CopyTo(header.AsSpan(at));
        header[at + length - 1] = 0;
    }

    private static void PutSize(byte[] header, long size)
    {
        if (size <= MaxOctal11)
        {
            PutOctal(header, 124, 12, size);
            return;
        }

        // GNU's base-256 form (the pax size record is what readers use; this keeps a reader without pax in step).
        header[124] = 0x80;
        for (var i = 0; i < 8; i++)
        {
            header[135 - i] = (byte)(size >> (8 * i));
        }
    }

    private static void Seal(byte[] header)
    {
        "        "u8.CopyTo(header.AsSpan(148));
        var sum = 0;
        foreach (var b in header)
        {
            sum += b;
        }

        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0')).CopyTo(header.AsSpan(148));
        header[154] = 0;
        header[155] = (byte)' ';
    }

    private void Pad(long length)
    {
        var pad = (int)((Block - (length % Block)) % Block);
        if (pad > 0)
        {
            output.Write(new byte[pad]);
        }
    }
}
