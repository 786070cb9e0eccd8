using System.Diagnostics;

namespace Backstop.Core.Restore;

/// <summary>
/// Where a restore's time went, per stage of its pipeline: reading and hashing the copy, decrypting and
/// decompressing, and the kind's load (writing files, a server taking the dump). The stages run at once on their
/// own threads, so each is its busy time (the time it spent working, not waiting for the stage before it); their
/// sum can exceed the wall-clock time, never the other way round. A drill reports these as its phases.
/// </summary>
public sealed class RestoreTimings
{
    private long _fetch;
    private long _decodeOut;
    private long _decodeIn;
    private long _loadWall;
    private long _loadWaiting;

    /// <summary>Reading the stored copy from its target and hashing it (a spool counts here whole).</summary>
    public TimeSpan FetchAndHash => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _fetch));

    /// <summary>Decrypting and decompressing, without the time spent waiting for stored bytes.</summary>
    public TimeSpan DecryptAndDecompress => Stopwatch.GetElapsedTime(0, Math.Max(0, Interlocked.Read(ref _decodeOut) - Interlocked.Read(ref _decodeIn)));

    /// <summary>The kind's restore (files written, a server loading), without the time spent waiting for content.</summary>
    public TimeSpan Load => Stopwatch.GetElapsedTime(0, Math.Max(0, Interlocked.Read(ref _loadWall) - Interlocked.Read(ref _loadWaiting)));

    internal Stream Fetching(Stream stored) => new TimedReadStream(stored, t => Interlocked.Add(ref _fetch, t));

    internal Stream DecodeInput(Stream hashed) => new TimedReadStream(hashed, t => Interlocked.Add(ref _decodeIn, t), leaveOpen: true);

    internal Stream DecodeOutput(Stream decoded) => new TimedReadStream(decoded, t => Interlocked.Add(ref _decodeOut, t));

    internal Stream LoadInput(Stream content) => new TimedReadStream(content, t => Interlocked.Add(ref _loadWaiting, t), leaveOpen: true);

    internal void AddFetch(long ticks) => Interlocked.Add(ref _fetch, ticks);

    internal void AddLoad(long ticks) => Interlocked.Add(ref _loadWall, ticks);

    /// <summary>A read-only pass-through that adds the time spent in each read to a counter (Stopwatch ticks).</summary>
    private sealed class TimedReadStream(Stream inner, Action<long> add, bool leaveOpen = false) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var start = Stopwatch.GetTimestamp();
            try
            {
                return inner.Read(buffer);
            }
            finally
            {
                add(Stopwatch.GetTimestamp() - start);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var start = Stopwatch.GetTimestamp();
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                add(Stopwatch.GetTimestamp() - start);
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing && !leaveOpen)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            if (!leaveOpen)
            {
                await inner.DisposeAsync().ConfigureAwait(false);
            }

            await base.DisposeAsync().ConfigureAwait(false);
        }
    }
}
