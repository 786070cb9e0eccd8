using System.Net;
using Backstop.Core.Plugins;

namespace Backstop.Sources.CouchDb;

/// <summary>
/// Checks a JSON-lines stream one byte at a time, never holding a line: each line must be one JSON object (strings
/// closed, escapes whole, brackets matched, nothing after it) with <c>_id</c> and <c>_rev</c> at its top level. A raw
/// newline cannot occur inside a JSON string, so every newline byte ends a line. Memory stays the same for a document
/// with a 200 MB attachment as for one of 200 bytes.
/// </summary>
internal sealed class JsonLineScanner
{
    private const int MaxDepth = 512;
    private readonly Stack<byte> _open = new();
    private readonly byte[] _key = new byte[8];
    private int _keyLength;
    private bool _inString;
    private bool _escape;
    private bool _capturing;
    private bool _started;
    private bool _ended;
    private bool _expectKey;
    private bool _hasId;
    private bool _hasRev;
    private long _line = 1;

    public long Documents { get; private set; }

    public void Feed(ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            Step(b);
        }
    }

    /// <summary>The end of the stream: a last line without its newline counts too.</summary>
    public void Finish()
    {
        if (_started || _inString)
        {
            EndLine();
        }
    }

    private void Step(byte b)
    {
        if (_inString)
        {
            if (b < 0x20)
            {
                throw Bad(b == '\n' ? "is cut short inside a string" : "holds a raw control character inside a string");
            }

            if (_escape)
            {
                _escape = false;
                if (b is not ((byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t' or (byte)'u'))
                {
                    throw Bad($"holds an invalid escape \\{(char)b} inside a string");
                }

                Capture(0); // an escaped character never matches _id or _rev
            }
            else if (b == '\\')
            {
                _escape = true;
            }
            else if (b == '"')
            {
                _inString = false;
                if (_capturing)
                {
                    _capturing = false;
                    var key = _key.AsSpan(0, Math.Min(_keyLength, _key.Length));
                    _hasId |= _keyLength == 3 && key.SequenceEqual("_id"u8);
                    _hasRev |= _keyLength == 4 && key.SequenceEqual("_rev"u8);
                }
            }
            else if (_capturing)
            {
                Capture(b);
            }

            return;
        }

        switch (b)
        {
            case (byte)'\n':
                EndLine();
                return;
            case (byte)' ' or (byte)'\t' or (byte)'\r':
                return;
        }

        if (_ended)
        {
            throw Bad("has more after its object");
        }

        if (!_started)
        {
            if (b != '{')
            {
                throw Bad("is not a JSON object");
            }

            _started = true;
        }

        switch (b)
        {
            case (byte)'{' or (byte)'[':
                if (_open.Count == MaxDepth)
                {
                    throw Bad($"nests deeper than {MaxDepth}");
                }

                _open.Push(b);
                _expectKey = b == '{' && _open.Count == 1;
                return;
            case (byte)'}' or (byte)']':
                if (_open.Count == 0 || _open.Pop() != (b == '}' ? (byte)'{' : (byte)'['))
                {
                    throw Bad("has a bracket that does not match");
                }

                _ended = _open.Count == 0;
                return;
            case (byte)'"':
                _inString = true;
                if (_expectKey && _open.Count == 1)
                {
                    _capturing = true;
                    _keyLength = 0;
                    _expectKey = false;
                }

                return;
            case (byte)',':
                _expectKey = _open.Count == 1;
                return;
            case (byte)':':
                return;
            default:
                if (!(b is (>= (byte)'0' and <= (byte)'9') or (byte)'-' or (byte)'+' or (byte)'.' or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z')))
                {
                    throw Bad($"holds an unexpected character 0x{b:x2}");
                }

                return;
        }
    }

    private void Capture(byte b)
    {
        if (_capturing)
        {
            if (_keyLength < _key.Length)
            {
                _key[_keyLength] = b;
            }

            _keyLength++;
        }
    }

    private void EndLine()
    {
        if (_started || _inString)
        {
            if (!_ended || _inString)
            {
                throw Bad("is cut short (an object or a string is not closed)");
            }

            if (!_hasId || !_hasRev)
            {
                throw Bad("is a JSON value without _id and _rev");
            }

            Documents++;
        }

        _line++;
        _open.Clear();
        (_started, _ended, _inString, _escape, _capturing, _expectKey, _hasId, _hasRev) = (false, false, false, false, false, false, false, false);
    }

    private BackupException Bad(string what) => new($"line {_line} {what}");
}

/// <summary>
/// Reads a JSON-lines stream line by line without holding a large line: a line up to a limit comes back whole; a
/// longer one comes back as its start, and the rest is copied on with <see cref="CopyRestOfLineAsync"/>.
/// </summary>
internal sealed class JsonLineReader(Stream source)
{
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _position;
    private int _length;
    private bool _eof;

    /// <summary>The next line (without its newline), whole when <c>Complete</c>; null at the end.</summary>
    public async Task<(byte[] Bytes, bool Complete)?> NextAsync(int limit, CancellationToken ct)
    {
        var line = new MemoryStream();
        while (true)
        {
            if (_position == _length && !await FillAsync(ct).ConfigureAwait(false))
            {
                return line.Length == 0 ? null : (line.ToArray(), true);
            }

            var span = _buffer.AsSpan(_position, _length - _position);
            var newline = span.IndexOf((byte)'\n');
            var take = newline < 0 ? span.Length : newline;
            line.Write(span[..take]);
            _position += newline < 0 ? take : take + 1;
            if (newline >= 0)
            {
                return (line.ToArray(), true);
            }

            if (line.Length > limit)
            {
                return (line.ToArray(), false);
            }
        }
    }

    /// <summary>Copies what is left of the current line (up to its newline, which is consumed) to <paramref name="destination"/>.</summary>
    public async Task CopyRestOfLineAsync(Stream destination, CancellationToken ct)
    {
        while (true)
        {
            if (_position == _length && !await FillAsync(ct).ConfigureAwait(false))
            {
                return;
            }

            var span = _buffer.AsMemory(_position, _length - _position);
            var newline = span.Span.IndexOf((byte)'\n');
            var take = newline < 0 ? span.Length : newline;
            await destination.WriteAsync(span[..take], ct).ConfigureAwait(false);
            _position += newline < 0 ? take : take + 1;
            if (newline >= 0)
            {
                return;
            }
        }
    }

    private async Task<bool> FillAsync(CancellationToken ct)
    {
        if (_eof)
        {
            return false;
        }

        _length = await source.ReadAsync(_buffer, ct).ConfigureAwait(false);
        _position = 0;
        _eof = _length == 0;
        return !_eof;
    }
}

/// <summary>A <c>_bulk_docs</c> body for one document whose line is streamed from the copy, chunked, never held whole.</summary>
internal sealed class StreamedDocumentContent(byte[] start, JsonLineReader rest) : HttpContent
{
    private static readonly byte[] Head = """{"new_edits":false,"docs":["""u8.ToArray();
    private static readonly byte[] Tail = "]}"u8.ToArray();

    public StreamedDocumentContent Json()
    {
        Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        return this;
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(Head, cancellationToken).ConfigureAwait(false);
        await stream.WriteAsync(start, cancellationToken).ConfigureAwait(false);
        await rest.CopyRestOfLineAsync(stream, cancellationToken).ConfigureAwait(false);
        await stream.WriteAsync(Tail, cancellationToken).ConfigureAwait(false);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
