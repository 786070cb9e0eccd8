using System.Text;
using System.Text.RegularExpressions;

namespace Backstop.Sources.MySql;

/// <summary>
/// A dump read with its <c>DEFINER=user@host</c> clauses taken out (views, routines, triggers, events): restored so,
/// each object's definer is the restoring user, and what it runs, it runs with that user's rights, never with a
/// definer's (root's) the restoring user could not have named itself. A drill restores this way, as a user without
/// SUPER, SET USER or FILE. Streamed line by line: a line of data (<c>INSERT INTO</c>), or one longer than
/// <see cref="MaxLine"/>, passes through untouched and unbuffered — a DEFINER hidden in such a line still meets a
/// server user that may not name another definer, and the restore fails instead of running it.
/// </summary>
internal sealed partial class DefinerStrippingStream(Stream inner) : Stream
{
    /// <summary>The longest line held to be rewritten (DDL lines are short; data lines are not read as DDL).</summary>
    public const int MaxLine = 1 << 20;

    private readonly byte[] _input = new byte[64 << 10];
    private int _inputStart;
    private int _inputEnd;
    private bool _eof;
    private readonly MemoryStream _line = new();
    private bool _passThrough;
    private byte[] _pending = [];
    private int _pendingAt;

    [GeneratedRegex(@"DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|''|\\.)*'|[A-Za-z0-9_$]+)\s*@\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|''|\\.)*'|[A-Za-z0-9_.%:$-]+)",
        RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex Definer();

    /// <summary>A line with its DEFINER clauses removed.</summary>
    internal static string Strip(string line) => Definer().Replace(line, "");

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_pendingAt < _pending.Length)
            {
                var n = Math.Min(buffer.Length, _pending.Length - _pendingAt);
                _pending.AsSpan(_pendingAt, n).CopyTo(buffer.Span);
                _pendingAt += n;
                return n;
            }

            if (_inputStart == _inputEnd)
            {
                if (_eof)
                {
                    if (_line.Length == 0)
                    {
                        return 0;
                    }

                    Rewrite(); // the last line, without a newline
                    continue;
                }

                _inputStart = 0;
                _inputEnd = await inner.ReadAsync(_input, cancellationToken).ConfigureAwait(false);
                _eof = _inputEnd == 0;
                continue;
            }

            var available = _input.AsSpan(_inputStart, _inputEnd - _inputStart);
            var newline = available.IndexOf((byte)'\n');
            var take = newline < 0 ? available.Length : newline + 1;
            if (_passThrough)
            {
                var n = Math.Min(buffer.Length, take);
                available[..n].CopyTo(buffer.Span);
                _inputStart += n;
                _passThrough = !(newline >= 0 && n == take);
                return n;
            }

            _line.Write(available[..take]);
            _inputStart += take;
            if (IsData() || _line.Length > MaxLine)
            {
                _passThrough = newline < 0;
                _pending = _line.ToArray(); // as it is
                _pendingAt = 0;
                _line.SetLength(0);
            }
            else if (newline >= 0)
            {
                Rewrite();
            }
        }
    }

    /// <summary>Whether the line held so far is a line of data (passed through as it is).</summary>
    private bool IsData()
    {
        const string Insert = "INSERT INTO ";
        if (_line.Length < Insert.Length)
        {
            return false;
        }

        var start = _line.GetBuffer().AsSpan(0, Insert.Length);
        return start.SequenceEqual(Encoding.ASCII.GetBytes(Insert));
    }

    /// <summary>Rewrites the line held (Latin-1: every byte round-trips) into the pending output.</summary>
    private void Rewrite()
    {
        var text = Encoding.Latin1.GetString(_line.GetBuffer(), 0, (int)_line.Length);
        _pending = text.Contains("DEFINER", StringComparison.OrdinalIgnoreCase) ? Encoding.Latin1.GetBytes(Strip(text)) : _line.ToArray();
        _pendingAt = 0;
        _line.SetLength(0);
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _line.Dispose();
        }

        base.Dispose(disposing);
    }
}
