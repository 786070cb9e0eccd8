using System.Text;
using Backstop.Sources.Postgres;
using CsCheck;

namespace Backstop.Tests.Sources;

/// <summary>What a restore reads from a dump that came from a target (hostile until proven otherwise): its table of contents and its globals.</summary>
public sealed class PostgresDumpParsingTests
{
    /// <summary>A custom-format head (archive 1.14 or 1.16) with the given entries, as pg_dump writes it.</summary>
    private static byte[] Archive(int vmin, params (int Id, string Desc, string Tag, string? Schema, string? Definition)[] entries) =>
        ArchiveWith("data follows"u8.ToArray(), vmin, entries);

    /// <summary>An archive whose table of contents is followed by <paramref name="data"/> (its data blocks).</summary>
    private static byte[] ArchiveWith(byte[] data, int vmin, params (int Id, string Desc, string Tag, string? Schema, string? Definition)[] entries)
    {
        var b = new List<byte>();
        b.AddRange("PGDMP"u8.ToArray());
        b.AddRange([1, (byte)vmin, 0, 4, 8, 1]);
        void Int(long v)
        {
            b.Add((byte)(v < 0 ? 1 : 0));
            b.AddRange(BitConverter.GetBytes((int)Math.Abs(v)));
        }

        void Str(string? s)
        {
            if (s is null)
            {
                Int(-1);
                return;
            }

            var bytes = Encoding.UTF8.GetBytes(s);
            Int(bytes.Length);
            b.AddRange(bytes);
        }

        if (vmin >= 15)
        {
            b.Add(0);
        }
        else
        {
            Int(0);
        }

        foreach (var v in new[] { 12, 30, 3, 29, 10, 126, 0 })
        {
            Int(v);
        }

        Str("shop");
        Str("16.4");
        Str("16.4");
        Int(entries.Length);
        foreach (var (id, desc, tag, schema, definition) in entries)
        {
            Int(id);
            Int(0);
            Str("0");
            Str("0");
            Str(tag);
            Str(desc);
            Int(1);
            Str(definition);
            Str("");
            Str(null);
            Str(schema);
            Str(null);
            Str(null);
            if (vmin >= 16)
            {
                Int(0);
            }

            Str("postgres");
            Str("false");
            Str("1");
            Str(null);
            b.Add(3);
            b.AddRange(new byte[8]);
        }

        b.AddRange(data);
        return [.. b];
    }

    /// <summary>A data block (type 1) of one entry, its bytes in the chunks given, then the zero length that ends them.</summary>
    private static byte[] Block(int id, params string[] chunks)
    {
        var b = new List<byte> { 1 };
        void Int(int v)
        {
            b.Add(0);
            b.AddRange(BitConverter.GetBytes(v));
        }

        Int(id);
        foreach (var c in chunks)
        {
            Int(Encoding.UTF8.GetByteCount(c));
            b.AddRange(Encoding.UTF8.GetBytes(c));
        }

        Int(0);
        return [.. b];
    }

    [Fact]
    public async Task Rows_are_the_newlines_of_the_copy_data_of_the_tables_the_dump_creates_across_chunks()
    {
        // t's rows split across chunks (a row cut in two), an extension's configuration table dumped for its rows (no
        // TABLE entry: the extension's), and large objects (type 3: an oid, its chunks, then oid 0).
        // pg_dump ends each table's data with "\." and two empty lines (here split across chunks): not rows.
        byte[] data = [.. Block(10, "1\tone\n2\tt", "wo\n3\tthree\\nstill three\n\\", ".\n\n\n"), .. Block(11, "ext row\n\\.\n\n\n"),
                3, 0, 12, 0, 0, 0, /* oid */ 0, 1, 0x40, 0, 0, /* chunk */ 0, 3, 0, 0, 0, .. "a\nb"u8.ToArray(), /* end of chunks */ 0, 0, 0, 0, 0, /* oid 0 */ 0, 0, 0, 0, 0];
        var bytes = ArchiveWith(data, 14, (5, "TABLE", "t", "public", null), (10, "TABLE DATA", "t", "public", null), (11, "TABLE DATA", "spatial_ref_sys", "public", null),
            (12, "BLOBS", "BLOBS", null, null));
        Assert.Equal(CustomDumpHeader.Outcome.Read, CustomDumpHeader.TryRead(bytes, out var toc));
        Assert.Equal(3, await CustomDumpData.CountRowsAsync(new MemoryStream(bytes), toc!, CancellationToken.None));

        // Cut short inside a chunk, or a block of a kind pg_dump never writes: a format error, never a count.
        await Assert.ThrowsAsync<EndOfStreamException>(() => CustomDumpData.CountRowsAsync(new MemoryStream(bytes[..^30]), toc!, CancellationToken.None));
        var odd = bytes.ToArray();
        odd[toc!.Length] = 7;
        await Assert.ThrowsAsync<FormatException>(() => CustomDumpData.CountRowsAsync(new MemoryStream(odd), toc, CancellationToken.None));
    }

    [Theory]
    [InlineData(14)]
    [InlineData(16)]
    public void The_table_of_contents_of_either_layout_is_read_with_its_extensions_and_their_schemas(int vmin)
    {
        var bytes = Archive(vmin,
            (2, "EXTENSION", "pgcrypto", null, "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA \"Ext \"\"s\"\"\";\n"),
            (3, "COMMENT", "EXTENSION pgcrypto", null, "COMMENT ON EXTENSION pgcrypto IS 'x';"),
            (216, "TABLE", "orders", "public", "CREATE TABLE public.orders (id int);"));
        Assert.Equal(CustomDumpHeader.Outcome.Read, CustomDumpHeader.TryRead(bytes, out var toc));
        Assert.Equal(16, toc!.ServerMajor);
        Assert.Equal([2, 3, 216], toc.Entries.Select(e => e.DumpId));
        Assert.Equal([("pgcrypto", (string?)"Ext \"s\"")], toc.Extensions);
        Assert.Equal(bytes.Length - "data follows".Length, toc.Length);
        Assert.Equal(CustomDumpHeader.Outcome.NeedMore, CustomDumpHeader.TryRead(bytes.AsSpan(0, toc.Length - 1), out _));
    }

    [Fact]
    public void Other_formats_and_damaged_entries_are_not_read_as_a_table_of_contents()
    {
        Assert.Equal(CustomDumpHeader.Outcome.NotCustom, CustomDumpHeader.TryRead("-- PostgreSQL database dump\n"u8, out _));
        var bytes = Archive(14, (0, "TABLE", "t", "public", null)); // entry id 0: pg_restore calls it a corrupt TOC
        Assert.Equal(CustomDumpHeader.Outcome.NotCustom, CustomDumpHeader.TryRead(bytes, out _));
    }

    [Fact]
    public void Any_bytes_give_an_outcome_and_never_an_exception_or_a_length_past_the_input()
    {
        var real = Archive(14, (2, "EXTENSION", "hstore", null, "CREATE EXTENSION hstore WITH SCHEMA public;"), (5, "TABLE", "t", "public", "CREATE TABLE t();"));
        // Random bytes, and real archives with random bytes changed: never a throw, never a length past what was given.
        Gen.Select(Gen.Byte.Array[0, 400], Gen.Int[0, real.Length - 1].Array[0, 6], Gen.Byte.Array[6])
            .Sample((noise, at, values) =>
            {
                var mutated = (byte[])real.Clone();
                for (var i = 0; i < at.Length; i++)
                {
                    mutated[at[i]] = values[i];
                }

                foreach (var input in new[] { noise, mutated, [.. "PGDMP"u8.ToArray(), .. noise] })
                {
                    var outcome = CustomDumpHeader.TryRead(input, out var toc);
                    if (outcome == CustomDumpHeader.Outcome.Read && toc!.Length > input.Length)
                    {
                        return false;
                    }
                }

                return true;
            }, iter: 20_000);
    }

    [Theory]
    [InlineData("CREATE ROLE reporting;", "reporting", ";")]
    [InlineData("CREATE ROLE \"Odd \"\"name\"\"\";", "\"Odd \"\"name\"\"\"", ";")]
    [InlineData("CREATE ROLE x; COPY (SELECT 1) TO PROGRAM 'id';", "x", "; COPY (SELECT 1) TO PROGRAM 'id';")]
    [InlineData("CREATE ROLE 1x;", null, null)]
    [InlineData("CREATE ROLE \"unterminated;", null, null)]
    [InlineData("CREATE ROLE ;", null, null)]
    public void A_globals_line_gives_its_role_exactly_as_written_and_what_follows(string line, string? role, string? after)
    {
        var (r, a) = PostgresRestore.BareRole(line, "CREATE ROLE ");
        Assert.Equal(role, r);
        Assert.Equal(after, a);
    }
}
