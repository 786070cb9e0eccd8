namespace Backstop.Core.Streams;

/// <summary>
/// Reads an inner stream on its own thread, up to four 1 MiB blocks ahead, so that what produces the bytes (reading
/// a copy, hashing it, decompressing) runs while the consumer (a tar extraction, a database client) works. An error
/// of the producer is thrown to the reader at the point it happened. Memory: four blocks, allocated once and reused.
/// The two sides wait on a monitor, never spin: on a small machine a spinning waiter takes the core the other side
/// needs.
/// </summary>
public sealed class ReadAheadStream : ReadOnlyStream
{
    private const int BlockSize = 1 << 20;
    private const int Blocks = 4;
    private readonly object _gate = new();
    private readonly Queue<(byte[] Data, int Length)> _filled = new(Blocks);
    private readonly Stack<byte[]> _free = new(Blocks);
    private readonly Thread _producer;
    private Exception? _error;
    private bool _producerDone;
    private bool _stopping;
    private byte[]? _current;
    private int _offset;
    private int _length;
    private bool _ended;

    private readonly bool _asyncReads;

    /// <param name="inner">What is read ahead.</param>
    /// <param name="asyncReads">
    /// Read the inner stream through ReadAsync into the blocks (waited on this stream's own thread): for streams whose
    /// asynchronous path is their real one (a target's guarded read), so that no read goes through a copy.
    /// </param>
    public ReadAheadStream(Stream inner, bool asyncReads = false)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _asyncReads = asyncReads;
        for (var i = 0; i < Blocks; i++)
        {
            _free.Push(GC.AllocateUninitializedArray<byte>(BlockSize));
        }

        _producer = new Thread(() => Produce(inner)) { IsBackground = true, Name = "backstop read-ahead" };
        _producer.Start();
    }

    private void Produce(Stream inner)
    {
        try
        {
            while (true)
            {
                byte[] block;
                lock (_gate)
                {
                    while (_free.Count == 0 && !_stopping)
                    {
                        Monitor.Wait(_gate);
                    }

                    if (_stopping)
                    {
                        return;
                    }

                    block = _free.Pop();
                }

                var filled = 0;
                int n;
                while (filled < block.Length && (n = ReadInto(inner, block, filled)) > 0)
                {
                    filled += n;
                }

                lock (_gate)
                {
                    if (filled > 0)
                    {
                        _filled.Enqueue((block, filled));
                    }

                    if (filled < block.Length)
                    {
                        _producerDone = true;
                    }

                    Monitor.PulseAll(_gate);
                    if (_producerDone)
                    {
                        return;
                    }
                }
            }
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                _error = e;
                _producerDone = true;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private int ReadInto(Stream inner, byte[] block, int filled)
    {
        if (!_asyncReads)
        {
            return inner.Read(block, filled, block.Length - filled);
        }

        var read = inner.ReadAsync(block.AsMemory(filled));
        return read.IsCompletedSuccessfully ? read.Result : read.AsTask().GetAwaiter().GetResult();
    }

    public override int Read(Span<byte> buffer)
    {
        if (_current is null || _offset == _length)
        {
            if (!NextBlock())
            {
                return 0;
            }
        }

        var count = Math.Min(buffer.Length, _length - _offset);
        _current.AsSpan(_offset, count).CopyTo(buffer);
        _offset += count;
        return count;
    }

    /// <summary>Hands the finished block back to the producer and takes the next one; false at the end.</summary>
    private bool NextBlock()
    {
        if (_ended)
        {
            // A failed read fails every read after it too: a caller that swallowed the first must not see a clean end.
            if (_error is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(_error).Throw();
            }

            return false;
        }

        lock (_gate)
        {
            if (_current is not null)
            {
                _free.Push(_current);
                _current = null;
                Monitor.PulseAll(_gate);
            }

            while (_filled.Count == 0 && !_producerDone)
            {
                Monitor.Wait(_gate);
            }

            if (_filled.Count > 0)
            {
                (_current, _length) = _filled.Dequeue();
                _offset = 0;
                return true;
            }

            _ended = true;
            if (_error is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(_error).Throw();
            }

            return false;
        }
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(buffer.Span));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            lock (_gate)
            {
                _stopping = true;
                Monitor.PulseAll(_gate);
            }

            _producer.Join();
        }

        base.Dispose(disposing);
    }
}
