using System.Globalization;
using System.Text;
using Backstop.Core.Plugins;
using Backstop.Core.Streams;

namespace Backstop.Sources.Postgres;

/// <summary>One entry of a <c>pg_dump -Fc</c> archive's table of contents: what <c>pg_restore -l</c> lists.</summary>
internal sealed record DumpTocEntry(int DumpId, string Desc, string? Tag, string? Namespace)
{
    /// <summary>The entry's SQL, kept for EXTENSION entries only (the schema is in it).</summary>
    public string? Definition { get; init; }
}

/// <summary>A custom-format archive's header and table of contents, and how many bytes of the archive they take.</summary>
internal sealed record DumpToc(int? ServerMajor, IReadOnlyList<DumpTocEntry> Entries, int Length)
{
    /// <summary>The archive's integer size (pg_dump writes 4), for reading the data blocks after the contents.</summary>
    public int IntSize { get; init; } = 4;

    /// <summary>Whether the data blocks are compressed (pg_dump -Z other than 0): their bytes are then not COPY text.</summary>
    public bool Compressed { get; init; }

    /// <summary>
    /// The extensions the dump creates (EXTENSION entries), by name, with the schema each was in: an extension's entry
    /// has no namespace, its definition says <c>CREATE EXTENSION IF NOT EXISTS x WITH SCHEMA s;</c>.
    /// </summary>
    public IReadOnlyList<(string Name, string? Schema)> Extensions =>
        [.. Entries.Where(e => e.Desc == "EXTENSION" && e.Tag is not null).Select(e => (e.Tag!, e.Namespace is { Length: > 0 } n ? n : SchemaOf(e.Definition)))];

    private static string? SchemaOf(string? definition)
    {
        const string With = " WITH SCHEMA ";
        var at = definition?.IndexOf(With, StringComparison.Ordinal) ?? -1;
        if (at < 0)
        {
            return null;
        }

        var rest = definition![(at + With.Length)..];
        var end = rest.IndexOf(';', StringComparison.Ordinal);
        var name = (end < 0 ? rest : rest[..end]).Trim();
        return name.Length > 1 && name[0] == '"' && name[^1] == '"' ? name[1..^1].Replace("\"\"", "\"", StringComparison.Ordinal) : name.Length > 0 ? name : null;
    }
}

/// <summary>
/// The head of a <c>pg_dump -Fc</c> archive as pg_restore reads it (ReadHead and ReadToc in pg_backup_archiver.c,
/// _ReadExtraToc in pg_backup_custom.c): "PGDMP", the archive version, int and offset sizes, the format, the
/// compression, the creation time, the database name and the server's and pg_dump's versions; then the table of
/// contents, each entry's fields as the archive version has them. The drill reads the server's major version (its
/// throwaway cluster matches it) and the extensions a dump needs; a restore as a role that is not a superuser
/// leaves out of <c>pg_restore -L</c> the entries only a superuser may run. The archive comes from a target:
/// every length is checked against what is there, and a cut-short head says so instead of guessing.
/// </summary>
internal static class CustomDumpHeader
{
    /// <summary>The longest table of contents read (a dump of a million objects is far below it).</summary>
    public const int MaxLength = 256 << 20;

    public enum Outcome
    {
        /// <summary>The header and the whole table of contents were read.</summary>
        Read,

        /// <summary>The bytes end before the table of contents does: read more of the archive.</summary>
        NeedMore,

        /// <summary>Not a custom-format archive this reads (another format, an archive older than 1.10, or damaged).</summary>
        NotCustom,
    }

    /// <summary>The major version of the server the dump came from, or null when the header is not one this reads.</summary>
    /// <exception cref="FormatException">The header is cut short.</exception>
    public static int? ServerMajor(ReadOnlySpan<byte> header)
    {
        var reader = new Reader(header);
        return Head(ref reader) switch
        {
            Outcome.Read => reader.ServerMajor,
            Outcome.NeedMore => throw new FormatException("the dump header is cut short"),
            _ => null,
        };
    }

    /// <summary>Reads the header and the table of contents from the first bytes of an archive.</summary>
    public static Outcome TryRead(ReadOnlySpan<byte> data, out DumpToc? toc)
    {
        toc = null;
        var reader = new Reader(data);
        var head = Head(ref reader);
        if (head != Outcome.Read)
        {
            return head;
        }

        try
        {
            var count = reader.Int();
            if (count < 0 || count > data.Length)
            {
                return count < 0 ? Outcome.NotCustom : Outcome.NeedMore; // every entry takes more than one byte
            }

            var entries = new List<DumpTocEntry>((int)Math.Min(count, 100_000));
            for (var i = 0; i < count; i++)
            {
                var id = reader.Int();
                if (id <= 0 || id > int.MaxValue)
                {
                    return Outcome.NotCustom; // pg_restore: "entry ID out of range -- perhaps a corrupt TOC"
                }

                reader.Int(); // had a dumper
                reader.Skip(reader.Version >= 0x010800 ? 2 : 1); // table oid (1.8), oid
                var tag = reader.Str();
                var desc = reader.Str() ?? "";
                if (reader.Version >= 0x010B00)
                {
                    reader.Int(); // section (1.11)
                }

                var definition = reader.Str();
                reader.Skip(2); // drop statement, copy statement
                var schema = reader.Str();
                reader.Skip(1); // tablespace
                if (reader.Version >= 0x010E00)
                {
                    reader.Skip(1); // table access method (1.14)
                }

                if (reader.Version >= 0x011000)
                {
                    reader.Int(); // relkind (1.16)
                }

                reader.Skip(2); // owner, "with oids"
                while (reader.Str() is not null)
                {
                    // dependencies, ended by a null string
                }

                reader.Offset(); // the custom format's data offset: a flag byte, then offset-size bytes
                entries.Add(new DumpTocEntry((int)id, desc, tag, schema) { Definition = desc == "EXTENSION" ? definition : null });
            }

            toc = new DumpToc(reader.ServerMajor, entries, reader.Position) { IntSize = reader.IntSize, Compressed = reader.Compressed };
            return Outcome.Read;
        }
        catch (EndOfDataException)
        {
            return Outcome.NeedMore;
        }
        catch (FormatException)
        {
            return Outcome.NotCustom;
        }
    }

    /// <summary>
    /// Reads the head of a custom-format dump until its table of contents is whole: the contents (null when the dump is
    /// not one this reads, which pg_restore then judges) and a stream that gives the whole dump again.
    /// </summary>
    public static async Task<(DumpToc? Toc, Stream Archive)> ReadTocAsync(Stream content, CancellationToken ct)
    {
        var buffer = new byte[64 << 10];
        var filled = 0;
        while (true)
        {
            var n = await content.ReadAtLeastAsync(buffer.AsMemory(filled), buffer.Length - filled, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            filled += n;
            var outcome = TryRead(buffer.AsSpan(0, filled), out var toc);
            if (outcome != Outcome.NeedMore || filled < buffer.Length)
            {
                return (toc, new ForwardOnlyStream(content, buffer.AsMemory(0, filled)));
            }

            if (buffer.Length >= MaxLength)
            {
                throw new BackupException($"the dump's table of contents is larger than {MaxLength >> 20} MiB: not a dump this restores");
            }

            Array.Resize(ref buffer, Math.Min(buffer.Length * 2, MaxLength));
        }
    }

    /// <summary>Reads the archive header; the reader stands at the table of contents after it.</summary>
    private static Outcome Head(ref Reader reader)
    {
        try
        {
            if (!reader.Magic())
            {
                return Outcome.NotCustom;
            }

            int vmaj = reader.Byte(), vmin = reader.Byte(), vrev = reader.Byte();
            reader.Version = (vmaj << 16) | (vmin << 8) | vrev;
            if (reader.Version < 0x010A00 || vmaj != 1)
            {
                return Outcome.NotCustom; // before archive 1.10 (PostgreSQL 8.4) the server version is not in the header
            }

            reader.IntSize = reader.Byte();
            reader.OffSize = reader.Byte();
            var format = reader.Byte();
            if (reader.IntSize is < 1 or > 8 || reader.OffSize is < 1 or > 8 || format != 1)
            {
                return Outcome.NotCustom; // format 1 is custom (3 is tar, 5 a directory)
            }

            // 1.15 (PostgreSQL 16): the compression algorithm, one byte (0: none); before, the level (0: none).
            reader.Compressed = reader.Version >= 0x010F00 ? reader.Byte() != 0 : reader.Int() != 0;

            for (var i = 0; i < 7; i++)
            {
                reader.Int(); // the creation time: sec, min, hour, mday, mon, year, isdst
            }

            reader.Str(); // the database name
            var remote = reader.Str(); // "15.8 (Debian 15.8-0+deb12u1)"
            reader.Str(); // pg_dump's version
            var digits = new string((remote ?? "").TakeWhile(char.IsAsciiDigit).ToArray());
            reader.ServerMajor = int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var major) && major > 0 ? major : null;
            return Outcome.Read;
        }
        catch (EndOfDataException)
        {
            return Outcome.NeedMore;
        }
        catch (FormatException)
        {
            return Outcome.NotCustom;
        }
    }

    private sealed class EndOfDataException : Exception;

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;

        public int Position { get; private set; }

        public int Version { get; set; }

        public int IntSize { get; set; } = 4;

        public int OffSize { get; set; } = 8;

        public int? ServerMajor { get; set; }

        public bool Compressed { get; set; }

        public bool Magic()
        {
            if (_data.Length < 5)
            {
                throw new EndOfDataException();
            }

            Position = 5;
            return _data[..5].SequenceEqual("PGDMP"u8);
        }

        public int Byte() => Position < _data.Length ? _data[Position++] : throw new EndOfDataException();

        /// <summary>A sign byte, then IntSize bytes, least significant first.</summary>
        public long Int()
        {
            var negative = Byte() != 0;
            long value = 0;
            for (var i = 0; i < IntSize; i++)
            {
                var b = (long)Byte();
                if (i < 4)
                {
                    value |= b << (8 * i);
                }
                else if (b != 0)
                {
                    throw new FormatException("an integer larger than 32 bits"); // pg_dump writes ints of 32 bits
                }
            }

            return negative ? -value : value;
        }

        public void Offset()
        {
            Byte(); // the offset's flag: set, not set, no data
            for (var i = 0; i < OffSize; i++)
            {
                Byte();
            }
        }

        public void Skip(int strings)
        {
            for (var i = 0; i < strings; i++)
            {
                Str();
            }
        }

        /// <summary>A length (-1: null), then that many bytes of UTF-8.</summary>
        public string? Str()
        {
            var length = Int();
            if (length < 0)
            {
                return length == -1 ? null : throw new FormatException("a negative string length");
            }

            if (length > _data.Length - Position)
            {
                throw new EndOfDataException();
            }

            var s = Encoding.UTF8.GetString(_data.Slice(Position, (int)length));
            Position += (int)length;
            return s;
        }
    }
}
