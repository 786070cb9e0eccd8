using System.Buffers;

namespace Backstop.Core.Sealing;

/// <summary>A read-only stream that decompresses zstd frames from an inner stream; a truncated frame is an error.</summary>
public sealed class ZstdDecodeStream : Streams.ReadOnlyStream
{
    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private nint _dctx;
    private readonly byte[] _in = ArrayPool<byte>.Shared.Rent(1 << 17);
    private int _inPos;
    private int _inLen;
    private bool _innerEnded;
    private nuint _lastHint = 1;

    public ZstdDecodeStream(Stream inner, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _leaveOpen = leaveOpen;
        _dctx = ZstdNative.CreateDCtx();
        if (_dctx == 0)
        {
#pragma warning disable CA2201 // libzstd returns no context only when its allocation failed: that is an out-of-memory.
            throw new OutOfMemoryException("zstd: cannot create a decompression context");
#pragma warning restore CA2201
        }
    }

    public override unsafe int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_dctx == 0, this);
        if (buffer.IsEmpty)
        {
            return 0;
        }

        while (true)
        {
            if (_inPos == _inLen && !_innerEnded)
            {
                _inLen = _inner.Read(_in, 0, _in.Length);
                _inPos = 0;
                _innerEnded = _inLen == 0;
            }

            if (_inPos == _inLen && _innerEnded)
            {
                if (_lastHint != 0)
                {
                    throw new InvalidDataException("zstd: the compressed data ends in the middle of a frame (truncated)");
                }

                return 0;
            }

            int produced;
            fixed (byte* src = _in)
            fixed (byte* dst = buffer)
            {
                var input = new ZstdNative.Buffer { Data = src, Size = (nuint)_inLen, Pos = (nuint)_inPos };
                var output = new ZstdNative.Buffer { Data = dst, Size = (nuint)buffer.Length, Pos = 0 };
                _lastHint = ZstdNative.Check(ZstdNative.DecompressStream(_dctx, &output, &input), "decompress");
                _inPos = (int)input.Pos;
                produced = (int)output.Pos;
            }

            if (produced > 0)
            {
                return produced;
            }
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // Refill asynchronously, then decompress synchronously from memory.
        if (_inPos == _inLen && !_innerEnded)
        {
            _inLen = await _inner.ReadAsync(_in, cancellationToken).ConfigureAwait(false);
            _inPos = 0;
            _innerEnded = _inLen == 0;
        }

        return Read(buffer.Span);
    }


    protected override void Dispose(bool disposing)
    {
        if (_dctx != 0)
        {
            ZstdNative.FreeDCtx(_dctx);
            _dctx = 0;
            ArrayPool<byte>.Shared.Return(_in);
            if (disposing && !_leaveOpen)
            {
                _inner.Dispose();
            }
        }

        base.Dispose(disposing);
    }
}
