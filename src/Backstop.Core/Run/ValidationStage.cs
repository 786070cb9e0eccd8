using System.Collections.Concurrent;
using Backstop.Core.Plugins;
using Backstop.Core.Streams;

namespace Backstop.Core.Run;

/// <summary>
/// Runs a source's format check on the artifact's raw bytes while they are produced, on its own thread, through
/// a bounded queue: the check costs no extra pass over the data.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Its queue is completed when the stage ends, and a BlockingCollection holds no OS handle unless a wait handle is asked of it, which nothing here does.")]
internal sealed class ValidationStage
{
    private readonly BlockingCollection<(byte[] Data, int Length)> _queue = new(4);
    private readonly Task<IReadOnlyDictionary<string, long>> _task;
    private readonly CancellationToken _cancellation;
    private byte[] _block = BlockPool.Rent();
    private int _used;

    public ValidationStage(IArtifactValidator validator, CancellationToken cancellationToken)
    {
        _cancellation = cancellationToken;
        _task = Task.Factory.StartNew(() => Run(validator), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            var n = Math.Min(data.Length, _block.Length - _used);
            data[..n].CopyTo(_block.AsSpan(_used));
            _used += n;
            data = data[n..];
            if (_used == _block.Length)
            {
                Flush();
            }
        }
    }

    /// <summary>Ends the input and returns the facts the check found.</summary>
    public Task<IReadOnlyDictionary<string, long>> FinishAsync()
    {
        if (!_queue.IsAddingCompleted)
        {
            if (_used > 0)
            {
                Flush();
            }

            _queue.CompleteAdding();
        }

        return _task;
    }

    /// <summary>Stops the check without waiting for it (the artifact was abandoned).</summary>
    public void Abort()
    {
        if (!_queue.IsAddingCompleted)
        {
            _queue.CompleteAdding();
        }
    }

    /// <summary>The facts found in the content against the facts the source reported: null when they agree.</summary>
    public static string? Mismatch(IReadOnlyDictionary<string, long> found, IReadOnlyDictionary<string, long> reported)
    {
        // Facts on both sides must agree; a fact only the content gives (the source left it to the check) is not a mismatch.
        var wrong = found.Where(f => reported.TryGetValue(f.Key, out var r) && r != f.Value)
            .Select(f => $"{f.Key}: {f.Value} in the content, {reported[f.Key].ToString(System.Globalization.CultureInfo.InvariantCulture)} reported by the source")
            .ToList();
        return wrong.Count == 0 ? null : string.Join("; ", wrong);
    }

    private void Flush()
    {
        _queue.Add((_block, _used), _cancellation);
        _block = BlockPool.Rent();
        _used = 0;
    }

    private async Task<IReadOnlyDictionary<string, long>> Run(IArtifactValidator validator)
    {
        await using var stream = new QueueReadStream(_queue);
        try
        {
            return await validator.ReadFactsAsync(stream, _cancellation).ConfigureAwait(false);
        }
        finally
        {
            stream.Drain(); // the check may stop before the end: never leave the producer blocked
        }
    }

    /// <summary>
    /// A read-only stream over the queued blocks. It can "seek" forward without copying, so a check that only needs
    /// headers (a tar's) skips the data for free.
    /// </summary>
    private sealed class QueueReadStream(BlockingCollection<(byte[] Data, int Length)> queue) : Stream
    {
        private (byte[] Data, int Length) _current;
        private int _offset;
        private bool _ended;
        private long _position;

        private bool NextBlock()
        {
            Release();
            if (_ended || !queue.TryTake(out _current, Timeout.Infinite))
            {
                _ended = true;
                return false;
            }

            _offset = 0;
            return true;
        }

        private void Skip(long count)
        {
            while (count > 0)
            {
                if ((_current.Data is null || _offset == _current.Length) && !NextBlock())
                {
                    return;
                }

                var n = (int)Math.Min(count, _current.Length - _offset);
                _offset += n;
                _position += n;
                count -= n;
            }
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            while (_current.Data is null || _offset == _current.Length)
            {
                if (!NextBlock())
                {
                    return 0;
                }
            }

            var n = Math.Min(buffer.Length, _current.Length - _offset);
            _current.Data.AsSpan(_offset, n).CopyTo(buffer);
            _offset += n;
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public void Drain()
        {
            Release();
            foreach (var (data, _) in queue.GetConsumingEnumerable())
            {
                BlockPool.Return(data);
            }

            _ended = true;
        }

        private void Release()
        {
            if (_current.Data is not null)
            {
                BlockPool.Return(_current.Data);
                _current = default;
            }
        }

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;

        // Unknown while the content is being produced; readers use it only to tell an empty stream (TarReader).
        public override long Length => long.MaxValue;

        public override long Position
        {
            get => _position;
            set => Seek(value, SeekOrigin.Begin);
        }

        public override void Flush() { }

        public override long Seek(long offset, SeekOrigin origin)
        {
            var target = origin switch
            {
                SeekOrigin.Begin => offset,
                SeekOrigin.Current => _position + offset,
                _ => throw new NotSupportedException("the end of a stream being produced is not known"),
            };
            if (target < _position)
            {
                throw new NotSupportedException("this stream only moves forward");
            }

            Skip(target - _position);
            return _position;
        }

        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
