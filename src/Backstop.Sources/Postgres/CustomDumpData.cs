namespace Backstop.Sources.Postgres;

/// <summary>
/// The data of a <c>pg_dump -Fc -Z0</c> archive after its table of contents, as pg_restore reads it from a pipe
/// (pg_backup_custom.c): a block is a type byte — 1 for one entry's data, 3 for large objects — then the entry's
/// dump id, then chunks (a length, then that many bytes) ended by a zero length; large objects give an oid before each
/// object's chunks, ended by oid 0. Table data is COPY text, one line per row (a newline in a value is written
/// <c>\n</c>) and the data ends with pg_dump's end-of-copy marker <c>\.</c> and two empty lines, so the rows are the
/// newline bytes of each table's chunks less those three: counted from the dump itself while it
/// streams, with no second pass on the server. Only data whose table the dump creates counts (an extension's
/// configuration table, dumped for its rows, is the extension's). A block of another kind, or an archive cut short,
/// is a format error.
/// </summary>
internal static class CustomDumpData
{
    private const int DataBlock = 1;
    private const int LargeObjectsBlock = 3;

    /// <summary>Reads every data block of the archive to its end; the rows of the tables it creates.</summary>
    /// <param name="archive">The whole archive, from its first byte.</param>
    public static async Task<long> CountRowsAsync(Stream archive, DumpToc toc, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(archive);
        ArgumentNullException.ThrowIfNull(toc);
        var buffer = new byte[64 << 10];
        await SkipAsync(archive, toc.Length, buffer, ct).ConfigureAwait(false);
        var tables = toc.Entries.Where(e => e.Desc == "TABLE").Select(e => (e.Namespace, e.Tag)).ToHashSet();
        var counted = toc.Entries.Where(e => e.Desc == "TABLE DATA" && tables.Contains((e.Namespace, e.Tag))).Select(e => e.DumpId).ToHashSet();
        var known = toc.Entries.Select(e => e.DumpId).ToHashSet();
        var small = new byte[1 + 8];
        long rows = 0;
        while (true)
        {
            var n = await archive.ReadAsync(small.AsMemory(0, 1), ct).ConfigureAwait(false);
            if (n == 0)
            {
                return rows; // the end of the archive, between blocks
            }

            var type = small[0];
            if (type is not (DataBlock or LargeObjectsBlock))
            {
                throw new FormatException($"a data block of unknown type {type} (not what pg_dump writes)");
            }

            var id = await IntAsync(archive, toc.IntSize, small, ct).ConfigureAwait(false);
            if (!known.Contains((int)id))
            {
                throw new FormatException($"a data block for entry {id}, which the table of contents does not have");
            }

            if (type == DataBlock)
            {
                var newlines = await ChunksAsync(archive, toc.IntSize, buffer, small, ct).ConfigureAwait(false);
                rows += counted.Contains((int)id) ? newlines : 0;
                continue;
            }

            while (await IntAsync(archive, toc.IntSize, small, ct).ConfigureAwait(false) != 0)
            {
                await ChunksAsync(archive, toc.IntSize, buffer, small, ct).ConfigureAwait(false); // one large object's bytes
            }
        }
    }

    /// <summary>What pg_dump writes after a table's COPY data (dumpTableData_copy): the end marker and two empty lines.</summary>
    private static ReadOnlySpan<byte> EndOfCopy => "\\.\n\n\n"u8;

    /// <summary>Chunks to the zero length that ends them; the newline bytes in them, less the end-of-copy marker's.</summary>
    private static async Task<long> ChunksAsync(Stream archive, int intSize, byte[] buffer, byte[] small, CancellationToken ct)
    {
        long newlines = 0;
        var tail = new byte[EndOfCopy.Length]; // the last bytes read, across chunks
        var seen = 0;
        while (true)
        {
            var length = await IntAsync(archive, intSize, small, ct).ConfigureAwait(false);
            if (length == 0)
            {
                return seen >= tail.Length && tail.AsSpan().SequenceEqual(EndOfCopy) ? newlines - 3 : newlines;
            }

            if (length < 0)
            {
                throw new FormatException("a data chunk of negative length");
            }

            while (length > 0)
            {
                var n = await archive.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length)), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new EndOfStreamException("the dump ends inside a data chunk: it is cut short");
                }

                newlines += buffer.AsSpan(0, n).Count((byte)'\n');
                Keep(tail, buffer.AsSpan(0, n));
                seen = Math.Min(seen + n, tail.Length);
                length -= n;
            }
        }
    }

    /// <summary>Shifts the newest bytes into the end of <paramref name="tail"/>.</summary>
    private static void Keep(byte[] tail, ReadOnlySpan<byte> read)
    {
        if (read.Length >= tail.Length)
        {
            read[^tail.Length..].CopyTo(tail);
            return;
        }

        tail.AsSpan(read.Length).CopyTo(tail);
        read.CopyTo(tail.AsSpan(tail.Length - read.Length));
    }

    /// <summary>A sign byte, then <paramref name="intSize"/> bytes, least significant first (pg_dump's WriteInt).</summary>
    private static async Task<long> IntAsync(Stream archive, int intSize, byte[] small, CancellationToken ct)
    {
        await archive.ReadExactlyAsync(small.AsMemory(0, 1 + intSize), ct).ConfigureAwait(false);
        long value = 0;
        for (var i = 0; i < intSize; i++)
        {
            if (i >= 4 && small[1 + i] != 0)
            {
                throw new FormatException("an integer larger than 32 bits");
            }

            value |= (long)small[1 + i] << (8 * i);
        }

        return small[0] != 0 ? -value : value;
    }

    private static async Task SkipAsync(Stream archive, long count, byte[] buffer, CancellationToken ct)
    {
        while (count > 0)
        {
            var n = await archive.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException("the dump ends inside its table of contents");
            }

            count -= n;
        }
    }
}
