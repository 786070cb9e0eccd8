using System.Globalization;
using System.Text;

namespace Backstop.Sources.Postgres;

/// <summary>
/// The header of a <c>pg_dump -Fc</c> archive, as pg_restore reads it (ReadHead in pg_backup_archiver.c): "PGDMP",
/// the archive version, int and offset sizes, the format, the compression, the creation time, the database name,
/// then the version of the server it was dumped from. Only that version is wanted: the drill's throwaway cluster
/// matches its major version.
/// </summary>
internal static class CustomDumpHeader
{
    /// <summary>The major version of the server the dump came from, or null when the header is not one this reads.</summary>
    public static int? ServerMajor(ReadOnlySpan<byte> header)
    {
        var reader = new Reader(header);
        if (header.Length < 11 || !header[..5].SequenceEqual("PGDMP"u8))
        {
            return null;
        }

        reader.Skip(5);
        int vmaj = reader.Byte(), vmin = reader.Byte(), vrev = reader.Byte();
        var version = (vmaj << 16) | (vmin << 8) | vrev;
        if (version < 0x010A00)
        {
            return null; // before archive 1.10 (PostgreSQL 8.4) the server version is not in the header
        }

        reader.IntSize = reader.Byte();
        reader.Skip(2); // offset size, format
        if (version >= 0x010F00)
        {
            reader.Skip(1); // 1.15 (PostgreSQL 16): the compression algorithm, one byte
        }
        else
        {
            reader.Int(); // the compression level
        }

        for (var i = 0; i < 7; i++)
        {
            reader.Int(); // the creation time: sec, min, hour, mday, mon, year, isdst
        }

        reader.Str(); // the database name
        var remote = reader.Str(); // "15.8 (Debian 15.8-0+deb12u1)"
        if (remote is null)
        {
            return null;
        }

        var digits = new string(remote.TakeWhile(char.IsAsciiDigit).ToArray());
        return int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var major) && major > 0 ? major : null;
    }

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _at;

        public int IntSize { get; set; } = 4;

        public void Skip(int n) => _at += n;

        public int Byte() => _at < _data.Length ? _data[_at++] : throw new FormatException("the dump header is cut short");

        /// <summary>A sign byte, then IntSize bytes, least significant first.</summary>
        public long Int()
        {
            var negative = Byte() != 0;
            long value = 0;
            for (var i = 0; i < IntSize; i++)
            {
                value |= (long)Byte() << (8 * i);
            }

            return negative ? -value : value;
        }

        public string? Str()
        {
            var length = Int();
            if (length < 0)
            {
                return null;
            }

            if (length > 4096 || _at + length > _data.Length)
            {
                throw new FormatException("the dump header is cut short");
            }

            var s = Encoding.UTF8.GetString(_data.Slice(_at, (int)length));
            _at += (int)length;
            return s;
        }
    }
}
