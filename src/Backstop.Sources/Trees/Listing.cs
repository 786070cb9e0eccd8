using System.Buffers.Text;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;

namespace Backstop.Sources.Trees;

/// <summary>
/// A level's listing of the tree it walked: for each folder (in walk order) the stat of every entry in it that is not
/// a folder (mode, size, mtime and ctime in ns, inode). The next level compares with it to find what changed without
/// reading an unchanged file. Walk order is byte order with '/' lowest, so the next walk reads the listing once,
/// front to back, holding one folder's entries at a time.
/// <code>
/// backstop listing 1\n
/// D&lt;folder path&gt;\0                              a folder ("" holds the roots that are files, by full path)
/// E&lt;mode hex&gt; &lt;size&gt; &lt;mtime&gt; &lt;ctime&gt; &lt;inode&gt; &lt;name&gt;\0   an entry of the folder above
/// </code>
/// </summary>
internal static class Listing
{
    private static readonly byte[] Header = "backstop listing 1\n"u8.ToArray();

    /// <summary>The walk order of two raw paths: byte order, with '/' before every other byte.</summary>
    public static int Compare(string a, string b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if (a[i] != b[i])
            {
                return a[i] == '/' ? -1 : b[i] == '/' ? 1 : a[i].CompareTo(b[i]);
            }
        }

        return a.Length.CompareTo(b.Length);
    }

    public readonly record struct Stat(uint Mode, long Size, long MtimeNs, long CtimeNs, ulong Inode)
    {
        public static Stat Of(FileStatus st) => new(st.Mode, st.Size, st.MtimeNs, st.CtimeNs, st.Inode);

        /// <summary>
        /// What the listing keeps of an entry stat'ed at <paramref name="nowNs"/>. One changed in the 100 ms before is
        /// "racy", as git calls it: a write in the same clock tick (the kernel's coarse clock: 1–10 ms) after it was read
        /// would leave size and times as listed, and the next level would take the new content for unchanged. Its ctime
        /// is kept as 0, so the next level reads it again.
        /// </summary>
        public static Stat Listed(FileStatus st, long nowNs) =>
            nowNs - Math.Max(st.MtimeNs, st.CtimeNs) < 100_000_000L ? Of(st) with { CtimeNs = 0 } : Of(st);
    }

    /// <summary>Writes a listing while the walk goes (buffered; the stream is the local cache file).</summary>
    public sealed class Writer : IDisposable
    {
        private readonly BufferedStream _out;
        private readonly byte[] _number = new byte[24];

        public Writer(Stream output)
        {
            _out = new BufferedStream(output, 1 << 16);
            _out.Write(Header);
        }

        public void Folder(string rawPath)
        {
            _out.WriteByte((byte)'D');
            _out.Write(RawFs.Bytes(rawPath));
            _out.WriteByte(0);
        }

        public void Entry(string rawName, Stat st)
        {
            _out.WriteByte((byte)'E');
            Utf8Formatter.TryFormat(st.Mode, _number, out var n, new System.Buffers.StandardFormat('x'));
            _out.Write(_number, 0, n);
            foreach (var v in (ReadOnlySpan<long>)[st.Size, st.MtimeNs, st.CtimeNs, (long)st.Inode])
            {
                _out.WriteByte((byte)' ');
                Utf8Formatter.TryFormat(v, _number, out n);
                _out.Write(_number, 0, n);
            }

            _out.WriteByte((byte)' ');
            _out.Write(RawFs.Bytes(rawName));
            _out.WriteByte(0);
        }

        public void Dispose() => _out.Dispose();
    }

    /// <summary>
    /// Reads a parent's listing in walk order: <see cref="Folder"/> gives a folder's entries, skipping the folders
    /// before it. A listing that is not one (damaged cache) throws <see cref="BackupException"/>, and the caller
    /// stores that level whole rather than trust it.
    /// </summary>
    public sealed class Reader(Stream input) : IDisposable
    {
        private readonly BufferedStream _in = new(input, 1 << 16);
        private readonly List<byte> _token = [];
        private bool _started;
        private string? _pending; // the next folder's path, read but not yet asked for

        public Dictionary<string, Stat> Folder(string rawPath)
        {
            if (!_started)
            {
                Span<byte> head = stackalloc byte[Header.Length];
                if (_in.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) != head.Length || !head.SequenceEqual(Header))
                {
                    throw new BackupException("the parent's listing is not a backstop listing");
                }

                _started = true;
                _pending = NextFolder();
            }

            while (_pending is not null && Compare(_pending, rawPath) < 0)
            {
                SkipEntries();
                _pending = NextFolder();
            }

            var entries = new Dictionary<string, Stat>(StringComparer.Ordinal);
            if (_pending is not null && Compare(_pending, rawPath) == 0)
            {
                while (PeekKind() == 'E')
                {
                    var (name, st) = ReadEntry();
                    entries[name] = st;
                }

                _pending = NextFolder();
            }

            return entries;
        }

        private int _peeked = -2;

        private int PeekKind() => _peeked == -2 ? _peeked = _in.ReadByte() : _peeked;

        private int ReadByte()
        {
            if (_peeked != -2)
            {
                var b = _peeked;
                _peeked = -2;
                return b;
            }

            return _in.ReadByte();
        }

        private void SkipEntries()
        {
            while (PeekKind() == 'E')
            {
                _ = ReadEntry();
            }
        }

        private string? NextFolder()
        {
            var kind = ReadByte();
            if (kind < 0)
            {
                return null;
            }

            return kind == 'D' ? RawFs.FromBytes(Token()) : throw new BackupException("the parent's listing is damaged (a folder record was expected)");
        }

        private (string Name, Stat Stat) ReadEntry()
        {
            _ = ReadByte(); // 'E'
            var fields = Token();
            var at = 0;
            long Number(bool hex = false)
            {
                var rest = fields.AsSpan(at);
                long value;
                int n;
                bool ok;
                if (hex)
                {
                    ok = Utf8Parser.TryParse(rest, out ulong h, out n, 'x');
                    value = (long)h;
                }
                else
                {
                    ok = Utf8Parser.TryParse(rest, out value, out n);
                }

                if (!ok || at + n >= fields.Length || fields[at + n] != ' ')
                {
                    throw new BackupException("the parent's listing is damaged (an entry's numbers do not read)");
                }

                at += n + 1;
                return value;
            }

            var st = new Stat((uint)Number(hex: true), Number(), Number(), Number(), (ulong)Number());
            return (RawFs.FromBytes(fields.AsSpan(at)), st);
        }

        private byte[] Token()
        {
            _token.Clear();
            int b;
            while ((b = _in.ReadByte()) > 0)
            {
                _token.Add((byte)b);
            }

            return b < 0 ? throw new BackupException("the parent's listing is cut short") : [.. _token];
        }

        public void Dispose() => _in.Dispose();

        /// <summary>Reads a whole listing; throws <see cref="BackupException"/> naming the damage (a cache file cut short or overwritten).</summary>
        public static void Check(Stream input)
        {
            using var reader = new Reader(input);
            reader.Folder("\uFFFF"); // after every raw path: reads every record on the way
            if (reader.ReadByte() >= 0)
            {
                throw new BackupException("the parent's listing is damaged (records out of walk order)");
            }
        }
    }
}
