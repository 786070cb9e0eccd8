using Backstop.Core.Streams;

namespace Backstop.Core.Sealing;

/// <summary>
/// Streaming zstd compression into fixed-size output blocks. Each full block is handed to a callback, so memory
/// stays bounded whatever the input size. With workers, libzstd compresses on its own threads.
/// </summary>
internal sealed unsafe class ZstdEncoder : IDisposable
{
    private readonly Action<byte[], int> _emit;
    private nint _cctx;
    private byte[] _out;
    private int _outPos;

    /// <param name="emit">Receives a block from <see cref="BlockPool"/> and its length; it owns the block and returns it.</param>
    public ZstdEncoder(int level, int workers, Action<byte[], int> emit)
    {
        _emit = emit;
        _cctx = ZstdNative.CreateCCtx();
        if (_cctx == 0)
        {
#pragma warning disable CA2201 // libzstd returns no context only when its allocation failed: that is an out-of-memory.
            throw new OutOfMemoryException("zstd: cannot create a compression context");
#pragma warning restore CA2201
        }

        try
        {
            Configure(level, workers);
        }
        catch
        {
            ZstdNative.FreeCCtx(_cctx);
            _cctx = 0;
            throw;
        }

        _out = BlockPool.Rent();
    }

    private void Configure(int level, int workers)
    {
        ZstdNative.Check(ZstdNative.SetParameter(_cctx, ZstdNative.CompressionLevel, level), "level");
        ZstdNative.Check(ZstdNative.SetParameter(_cctx, ZstdNative.ChecksumFlag, 1), "checksum flag");
        if (workers > 0)
        {
            ZstdNative.Check(ZstdNative.SetParameter(_cctx, ZstdNative.NbWorkers, workers), "workers");
            // 2 MiB jobs instead of the default 8 MiB: a third less memory for the same ratio and speed (bench/).
            ZstdNative.Check(ZstdNative.SetParameter(_cctx, ZstdNative.JobSize, 2 << 20), "job size");
        }
    }

    public void Write(ReadOnlySpan<byte> data) => Run(data, ZstdNative.EndContinue);

    /// <summary>Ends the frame and emits the last block.</summary>
    public void Finish()
    {
        Run(ReadOnlySpan<byte>.Empty, ZstdNative.EndEnd);
        if (_outPos > 0)
        {
            EmitBlock();
        }
    }

    private void Run(ReadOnlySpan<byte> data, int mode)
    {
        ObjectDisposedException.ThrowIf(_cctx == 0, this);
        fixed (byte* src = data)
        {
            var input = new ZstdNative.Buffer { Data = src, Size = (nuint)data.Length, Pos = 0 };
            while (true)
            {
                nuint remaining;
                fixed (byte* dst = _out)
                {
                    var output = new ZstdNative.Buffer { Data = dst, Size = (nuint)_out.Length, Pos = (nuint)_outPos };
                    remaining = ZstdNative.Check(ZstdNative.CompressStream2(_cctx, &output, &input, mode), "compress");
                    _outPos = (int)output.Pos;
                }

                if (_outPos == _out.Length)
                {
                    EmitBlock();
                }

                var done = mode == ZstdNative.EndContinue ? input.Pos == input.Size : remaining == 0;
                if (done)
                {
                    return;
                }
            }
        }
    }

    private void EmitBlock()
    {
        var block = _out;
        var length = _outPos;
        _out = BlockPool.Rent();
        _outPos = 0;
        _emit(block, length);
    }

    public void Dispose()
    {
        if (_cctx != 0)
        {
            ZstdNative.FreeCCtx(_cctx);
            _cctx = 0;
            BlockPool.Return(_out);
        }
    }
}
