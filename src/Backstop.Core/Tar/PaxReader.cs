using System.Globalization;
using System.Text;

namespace Backstop.Core.Tar;

/// <summary>
/// Reads a pax/ustar archive member by member, names as bytes, with the records <see cref="PaxWriter"/> writes and
/// those GNU tar writes (<c>--format=posix</c> with <c>--xattrs --acls</c>, and its default format's 'L'/'K' long
/// names). The archive is hostile input: every checksum is checked, an extended header is capped at
/// <see cref="MaxHeader"/>, numbers are parsed strictly, and any other member type is refused by name. Content is a
/// stream of the member's size, read through; whatever is left unread is skipped by <see cref="Next"/>.
/// </summary>
public sealed class PaxReader(Stream input)
{
    /// <summary>The largest extended header (or GNU long name) read: xattrs of 64 KiB each, many of them, fit.</summary>
    public const int MaxHeader = 8 << 20;

    private readonly byte[] _block = new byte[PaxWriter.Block];
    private long _left; // content bytes of the current member not yet read
    private long _padding;
    private long _offset;

    /// <summary>The archive offset of the current member's header, for messages.</summary>
    public long Offset { get; private set; }

    /// <summary>The next member, or null at the end of the archive.</summary>
    public PaxEntry? Next()
    {
        Skip(_left + _padding);
        _left = _padding = 0;
        Dictionary<string, byte[]>? records = null;
        byte[]? longName = null;
        byte[]? longLink = null;
        while (true)
        {
            Offset = _offset;
            if (!ReadBlock(allowEnd: true))
            {
                // Every writer ends an archive with zero blocks; a stream that stops at a member's end was cut there.
                throw Bad("the archive ends without its end-of-archive blocks: it is truncated");
            }

            if (_block.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                return null; // the end-of-archive blocks
            }

            CheckSum();
            var type = _block[156];
            var size = Number(124, 12, "size");
            if (size > long.MaxValue - PaxWriter.Block)
            {
                throw Bad("a member's size is out of range");
            }

            switch (type)
            {
                case (byte)'x':
                    records = ParseRecords(ReadSmall(size, "a pax extended header"));
                    continue;
                case (byte)'g':
                    ReadSmall(size, "a pax global header"); // nothing Backstop writes; read and set aside
                    continue;
                case (byte)'L':
                    longName = TrimNul(ReadSmall(size, "a GNU long name"));
                    continue;
                case (byte)'K':
                    longLink = TrimNul(ReadSmall(size, "a GNU long link name"));
                    continue;
            }

            var kind = type switch
            {
                (byte)'0' or 0 or (byte)'7' => PaxType.File,
                (byte)'1' => PaxType.HardLink,
                (byte)'2' => PaxType.SymbolicLink,
                (byte)'3' => PaxType.CharacterDevice,
                (byte)'4' => PaxType.BlockDevice,
                (byte)'5' => PaxType.Directory,
                (byte)'6' => PaxType.Fifo,
                _ => throw Bad($"member type '{(type is >= 0x21 and < 0x7f ? ((char)type).ToString() : "0x" + type.ToString("x2", CultureInfo.InvariantCulture))}' is not one Backstop reads"),
            };
            var name = Field(0, 100);
            if (_block.AsSpan(257, 5).SequenceEqual("ustar"u8) && _block[345] != 0)
            {
                name = [.. Field(345, 155), (byte)'/', .. name];
            }

            var entry = new PaxEntry
            {
                Type = kind,
                Name = records?.GetValueOrDefault("path") ?? longName ?? name,
                LinkName = records?.GetValueOrDefault("linkpath") ?? longLink ?? Field(157, 100),
                Mode = (int)(Number(100, 8, "mode") & 0xFFF),
                Uid = Override(records, "uid") ?? Number(108, 8, "uid"),
                Gid = Override(records, "gid") ?? Number(116, 8, "gid"),
                UserName = records?.GetValueOrDefault("uname") is { } u ? Encoding.UTF8.GetString(u) : Encoding.UTF8.GetString(Field(265, 32)),
                GroupName = records?.GetValueOrDefault("gname") is { } g ? Encoding.UTF8.GetString(g) : Encoding.UTF8.GetString(Field(297, 32)),
                Size = kind == PaxType.File ? Override(records, "size") ?? size : 0,
                MTimeNs = records?.GetValueOrDefault("mtime") is { } t ? ParseTime(t) : checked(Number(136, 12, "mtime") * 1_000_000_000L),
                DevMajor = kind is PaxType.CharacterDevice or PaxType.BlockDevice ? (int)Number(329, 8, "devmajor") : 0,
                DevMinor = kind is PaxType.CharacterDevice or PaxType.BlockDevice ? (int)Number(337, 8, "devminor") : 0,
                Xattrs = records is null ? [] : [.. records.Where(r => r.Key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal))
                    .Select(r => KeyValuePair.Create(DecodeXattrKey(r.Key["SCHILY.xattr.".Length..]), r.Value))],
                AclAccess = records?.GetValueOrDefault("SCHILY.acl.access") is { } a ? Encoding.UTF8.GetString(a) : null,
                AclDefault = records?.GetValueOrDefault("SCHILY.acl.default") is { } d ? Encoding.UTF8.GetString(d) : null,
                DumpDir = records?.GetValueOrDefault("GNU.dumpdir"),
            };
            if (entry.Name.Length == 0)
            {
                throw Bad("a member has an empty name");
            }

            if (entry.Size is < 0 or > long.MaxValue - PaxWriter.Block)
            {
                throw Bad("a member's size is out of range");
            }

            // A hard link's or folder's size field may be non-zero in some writers' archives; its bytes follow all the same.
            _left = kind == PaxType.File ? entry.Size : Override(records, "size") ?? size;
            _padding = (PaxWriter.Block - (_left % PaxWriter.Block)) % PaxWriter.Block;
            if (kind == PaxType.File && records?.GetValueOrDefault("GNU.sparse.major") is { } major)
            {
                entry = Sparse(entry, records, major);
            }
            if (kind != PaxType.File)
            {
                Skip(_left + _padding);
                _left = _padding = 0;
            }

            return entry;
        }
    }

    /// <summary>The most segments a sparse map may list (a hostile map is refused before it is held).</summary>
    public const int MaxSparseSegments = 1 << 20;

    /// <summary>
    /// A member in GNU tar's sparse format 1.0: its real name and size from the pax header, its map read from the start
    /// of its content (and checked: in order, no overlap, within the size, the data exactly what is stored); what
    /// <see cref="Read"/> gives after it is the data segments, one after the other.
    /// </summary>
    private PaxEntry Sparse(PaxEntry stored, Dictionary<string, byte[]> records, byte[] major)
    {
        if (!major.AsSpan().SequenceEqual("1"u8) || records.GetValueOrDefault("GNU.sparse.minor") is not { } minor || !minor.AsSpan().SequenceEqual("0"u8))
        {
            throw Bad("a sparse member is in a GNU sparse format other than 1.0, which Backstop does not read");
        }

        if (records.GetValueOrDefault("GNU.sparse.name") is not { Length: > 0 } name || Override(records, "GNU.sparse.realsize") is not { } realSize || realSize < 0)
        {
            throw Bad("a sparse member lacks its GNU.sparse.name or GNU.sparse.realsize");
        }

        var numbers = new List<long>();
        long count = -1;
        var consumed = 0L;
        var digits = new StringBuilder();
        var block = new byte[PaxWriter.Block];
        while (count < 0 || numbers.Count < 2 * count)
        {
            if (_left < PaxWriter.Block)
            {
                throw Bad("a sparse member's map runs past its content");
            }

            ReadExactlyContent(block);
            consumed += PaxWriter.Block;
            foreach (var b in block)
            {
                if ((count >= 0 && numbers.Count == 2 * count) || (b == 0 && digits.Length == 0))
                {
                    break; // the map is complete, or this block's padding: the map goes on in the next block
                }

                if (b == (byte)'\n')
                {
                    if (digits.Length == 0 || !long.TryParse(digits.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
                    {
                        throw Bad("a sparse member's map holds something other than decimal numbers");
                    }

                    digits.Clear();
                    if (count < 0)
                    {
                        count = n <= MaxSparseSegments ? n : throw Bad($"a sparse member's map lists {n} segments, more than {MaxSparseSegments}");
                    }
                    else
                    {
                        numbers.Add(n);
                    }
                }
                else if (b is >= (byte)'0' and <= (byte)'9' && digits.Length < 19)
                {
                    digits.Append((char)b);
                }
                else
                {
                    throw Bad("a sparse member's map holds something other than decimal numbers");
                }
            }
        }

        var segments = new List<(long, long)>((int)count);
        long end = 0, data = 0;
        for (var i = 0; i < numbers.Count; i += 2)
        {
            var (offset, length) = (numbers[i], numbers[i + 1]);
            if (offset < end || offset > realSize - length)
            {
                throw Bad("a sparse member's segments overlap, are out of order, or end past its size");
            }

            end = offset + length;
            data += length;
            segments.Add((offset, length));
        }

        if (data != _left)
        {
            throw Bad($"a sparse member's map lists {data} bytes of data, and {_left} are stored");
        }

        return stored with { Name = name, Size = realSize, Sparse = segments };
    }

    private void ReadExactlyContent(Span<byte> buffer)
    {
        var done = 0;
        while (done < buffer.Length)
        {
            done += Read(buffer[done..]);
        }
    }

    /// <summary>Reads the current member's content; 0 at its end.</summary>
    public int Read(Span<byte> buffer)
    {
        if (_left == 0)
        {
            return 0;
        }

        var read = input.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
        if (read == 0)
        {
            throw Bad($"the archive ends inside a member's content ({_left} bytes missing)");
        }

        _left -= read;
        _offset += read;
        return read;
    }

    /// <summary>The current member's content as a stream (read once, forward only).</summary>
    public Stream Content() => new ContentStream(this);

    internal static long ParseTime(byte[] value)
    {
        var text = Encoding.ASCII.GetString(value);
        if (!decimal.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds)
            || text.Length > 40)
        {
            throw new InvalidDataException($"a pax time '{text}' is not a number");
        }

        try
        {
            return (long)decimal.Truncate(seconds * 1_000_000_000m);
        }
        catch (OverflowException)
        {
            throw new InvalidDataException($"a pax time '{text}' is out of range");
        }
    }

    internal static string DecodeXattrKey(string key) => key.Replace("%3D", "=", StringComparison.Ordinal).Replace("%25", "%", StringComparison.Ordinal);

    private static long? Override(Dictionary<string, byte[]>? records, string key)
    {
        if (records?.GetValueOrDefault(key) is not { } value)
        {
            return null;
        }

        var text = Encoding.ASCII.GetString(value);
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? n
            : throw new InvalidDataException($"the pax record {key}='{text}' is not a number");
    }

    private Dictionary<string, byte[]> ParseRecords(byte[] data)
    {
        var records = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var at = 0;
        while (at < data.Length)
        {
            if (data[at] == 0)
            {
                break; // some writers pad with NULs
            }

            var space = Array.IndexOf(data, (byte)' ', at, Math.Min(20, data.Length - at));
            if (space < 0 || !int.TryParse(data.AsSpan(at, space - at), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
                || length <= space - at + 1 || length > data.Length - at || data[at + length - 1] != (byte)'\n')
            {
                throw Bad($"a pax extended header record at byte {at} is malformed");
            }

            var equals = Array.IndexOf(data, (byte)'=', space + 1, at + length - space - 1);
            if (equals < 0)
            {
                throw Bad($"a pax extended header record at byte {at} has no '='");
            }

            var key = Encoding.UTF8.GetString(data, space + 1, equals - space - 1);
            records[key] = data[(equals + 1)..(at + length - 1)];
            at += length;
        }

        return records;
    }

    private byte[] ReadSmall(long size, string what)
    {
        if (size > MaxHeader)
        {
            throw Bad($"{what} of {size} bytes is larger than the {MaxHeader >> 20} MiB Backstop reads");
        }

        var data = new byte[size];
        if (input.ReadAtLeast(data, data.Length, throwOnEndOfStream: false) < data.Length)
        {
            throw Bad($"the archive ends inside {what}");
        }

        _offset += size;
        Skip((PaxWriter.Block - (size % PaxWriter.Block)) % PaxWriter.Block);
        return data;
    }

    private bool ReadBlock(bool allowEnd)
    {
        var got = input.ReadAtLeast(_block, _block.Length, throwOnEndOfStream: false);
        _offset += got;
        if (got == _block.Length)
        {
            return true;
        }

        return got == 0 && allowEnd ? false : throw Bad("the archive ends inside a header block");
    }

    private void Skip(long count)
    {
        if (count < 0)
        {
            throw Bad("a member's size is out of range");
        }

        if (count > 0 && input.CanSeek)
        {
            // Skipped without copying (the run's format check reads queued blocks); a stream that ends first is cut short.
            var from = input.Position;
            if (input.Seek(count, SeekOrigin.Current) - from != count || input.Position - from != count || PastEnd())
            {
                throw Bad("the archive ends inside a member's content");
            }

            _offset += count;
            return;
        }

        var scratch = new byte[Math.Min(count, 1 << 16)];
        while (count > 0)
        {
            var read = input.Read(scratch, 0, (int)Math.Min(scratch.Length, count));
            if (read == 0)
            {
                throw Bad("the archive ends inside a member's content");
            }

            count -= read;
            _offset += read;
        }
    }

    private bool PastEnd()
    {
        try
        {
            return input.Position > input.Length; // a file or memory stream lets a seek go past its end
        }
        catch (NotSupportedException)
        {
            return false;
        }
    }

    private void CheckSum()
    {
        var stored = Number(148, 8, "checksum");
        long unsigned = 0, signed = 0;
        for (var i = 0; i < _block.Length; i++)
        {
            var b = i is >= 148 and < 156 ? (byte)' ' : _block[i];
            unsigned += b;
            signed += (sbyte)b;
        }

        if (stored != unsigned && stored != signed)
        {
            throw Bad("a header block's checksum does not match: the archive is damaged");
        }
    }

    private long Number(int at, int length, string what)
    {
        var field = _block.AsSpan(at, length);
        if ((field[0] & 0x80) != 0)
        {
            // GNU base-256: big-endian two's complement, first byte's top bit the marker.
            var digits = field[1..];
            if (field[0] != 0x80 || (digits.Length > 8 && digits[..^8].IndexOfAnyExcept((byte)0) >= 0))
            {
                throw Bad($"the header's {what} field is out of range");
            }

            long value = 0;
            foreach (var b in digits.Length > 8 ? digits[^8..] : digits)
            {
                value = (value << 8) | b;
            }

            return value >= 0 ? value : throw Bad($"the header's {what} field is out of range");
        }

        var text = field.Trim((byte)' ').TrimEnd((byte)0).Trim((byte)' ');
        long n = 0;
        foreach (var b in text)
        {
            if (b is < (byte)'0' or > (byte)'7' || n > (long.MaxValue >> 3))
            {
                throw Bad($"the header's {what} field is not an octal number");
            }

            n = (n << 3) + (b - '0');
        }

        return n;
    }

    private byte[] Field(int at, int length) => TrimNul(_block.AsSpan(at, length).ToArray());

    private static byte[] TrimNul(byte[] bytes)
    {
        var end = Array.IndexOf(bytes, (byte)0);
        return end < 0 ? bytes : bytes[..end];
    }

    private InvalidDataException Bad(string what) => new($"{what} (the member whose header is at byte {Offset})");

    private sealed class ContentStream(PaxReader reader) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => reader.Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer) => reader.Read(buffer);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
