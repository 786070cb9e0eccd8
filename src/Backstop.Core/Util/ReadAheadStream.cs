using System.Collections.Concurrent;

namespace Backstop.Core.Util;

/// <summary>
/// Reads an inner stream on its own thread, up to four 1 MiB blocks ahead, so that what produces the bytes (reading
/// a copy, hashing it, decompressing) runs while the consumer (a tar extraction, a database client) works. An error
/// of the producer is thrown to the reader at the point it happened. Memory: at most four blocks.
/// </summary>
public sealed class ReadAheadStream : ReadOnlyStream
{
    private const int BlockSize = 1 << 20;
    private readonly BlockingCollection<(byte[]? Data, int Length, Exception? Error)> _queue = new(4);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _producer;
    private byte[]? _current;
    private int _offset;
    private int _length;
    private bool _ended;

    public ReadAheadStream(Stream inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _producer = Task.Factory.StartNew(() => Produce(inner), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private void Produce(Stream inner)
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var block = new byte[BlockSize];
                var filled = 0;
                int n;
                while (filled < block.Length && (n = inner.Read(block, filled, block.Length - filled)) > 0)
                {
                    filled += n;
                }

                if (filled > 0)
                {
                    _queue.Add((block, filled, null), _stop.Token);
                }

                if (filled < block.Length)
                {
                    break;
                }
            }

            _queue.Add((null, 0, null), _stop.Token);
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            try
            {
                _queue.Add((null, 0, e), _stop.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    public override int Read(Span<byte> buffer)
    {
        while (_current is null || _offset == _length)
        {
            if (_ended)
            {
                return 0;
            }

            var (data, length, error) = _queue.Take();
            if (error is not null)
            {
                _ended = true;
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
            }

            if (data is null)
            {
                _ended = true;
                return 0;
            }

            (_current, _offset, _length) = (data, 0, length);
        }

        var count = Math.Min(buffer.Length, _length - _offset);
        _current.AsSpan(_offset, count).CopyTo(buffer);
        _offset += count;
        return count;
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
            _stop.Cancel();
            try
            {
                _producer.Wait();
            }
            catch (AggregateException)
            {
            }

            _stop.Dispose();
            _queue.Dispose();
        }

        base.Dispose(disposing);
    }

}
