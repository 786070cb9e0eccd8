using System.Collections.Concurrent;
using System.Security.Cryptography;
using Backstop.Core.Catalog;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing.Age;
using Backstop.Core.Sealing;
using Backstop.Core.Storage;
using Backstop.Core.Streams;
using Backstop.Core.Verify;

namespace Backstop.Core.Run;

/// <summary>A compressed block shared by the hashing stage and every copy; back to the pool when all are done.</summary>
internal sealed class Block(byte[] data, int length, int users)
{
    private int _users = users;

    public ReadOnlyMemory<byte> Memory => data.AsMemory(0, length);

    public void Release()
    {
        if (Interlocked.Decrement(ref _users) == 0)
        {
            BlockPool.Return(data);
        }
    }
}

/// <summary>One stage fed with blocks through a bounded queue on its own thread (hashing, or one target's copy).</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Its queue is completed when the stage ends, and a BlockingCollection holds no OS handle unless a wait handle is asked of it, which nothing here does.")]
internal abstract class BlockStage
{
    private const int QueueDepth = 4;
    private readonly BlockingCollection<Block> _queue = new(QueueDepth);
    private Task? _task;

    public void Start() =>
        _task = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    public void Add(Block block, CancellationToken cancellationToken) => _queue.Add(block, cancellationToken);

    /// <summary>No more blocks; waits for the stage to drain.</summary>
    public async Task CompleteAsync()
    {
        if (!_queue.IsAddingCompleted)
        {
            _queue.CompleteAdding();
        }

        if (_task is not null)
        {
            await _task.ConfigureAwait(false);
        }
    }

    protected abstract void Consume(ReadOnlyMemory<byte> block);

    private void Loop()
    {
        foreach (var block in _queue.GetConsumingEnumerable())
        {
            try
            {
                Consume(block.Memory);
            }
            finally
            {
                block.Release();
            }
        }
    }
}

/// <summary>
/// The stored bytes' hashes, in flight: SHA-256 (the manifest's, always of the bytes Backstop produced) and XXH3-128,
/// which is what each copy is read back and compared with (the same proof that the stored bytes are the produced
/// ones, at a small part of SHA-256's cost: a second SHA-256 pass per copy was most of what a run spent over tar | zstd).
/// </summary>
internal sealed class HashStage : BlockStage
{
    public IncrementalHash Hash { get; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public System.IO.Hashing.XxHash128 Fast { get; } = new();

    protected override void Consume(ReadOnlyMemory<byte> block)
    {
        Hash.AppendData(block.Span);
        Fast.Append(block.Span);
    }
}

/// <summary>One copy of the artifact going to one target. A failure is kept and fails this copy only.</summary>
internal sealed class CopyStage(ITarget target, string key, CancellationToken cancellationToken) : BlockStage
{
    public ITarget Target { get; } = target;

    public string Key { get; } = key;

    public ITargetUpload? Upload { get; set; }

    public Exception? Error { get; set; }

    public long Written { get; private set; }

    protected override void Consume(ReadOnlyMemory<byte> block)
    {
        if (Error is not null || Upload is null)
        {
            return;
        }

        try
        {
            Upload.WriteAsync(block, cancellationToken).AsTask().GetAwaiter().GetResult();
            Written += block.Length;
        }
        catch (Exception e)
        {
            Error = e;
        }
    }
}

/// <summary>The finished artifact: sizes, hash, facts, and the state of each copy after read-back.</summary>
internal sealed record ArtifactResult(
    string Name,
    string FileName,
    long RawBytes,
    long StoredBytes,
    string Sha256,
    IReadOnlyDictionary<string, long> Facts,
    IReadOnlyList<CopyInfo> Copies)
{
    /// <summary>Facts the format check did not re-derive from the content (the source's word alone).</summary>
    public IReadOnlyList<string> Reported { get; init; } = [];

    /// <summary>0: restores alone; N: only what changed since the parent's artifact of the same name.</summary>
    public int Level { get; init; }

    /// <summary>The shared blobs the artifact needs besides its own file.</summary>
    public IReadOnlyList<ManifestBlob> Blobs { get; init; } = [];
}

/// <summary>
/// The stream a source writes one artifact into: zstd (libzstd, with workers), then SHA-256 and every target's
/// upload on their own threads through bounded queues. Memory stays bounded whatever the size. On completion
/// each copy is committed, then read back and matched before it counts.
/// </summary>
internal sealed class ArtifactWriter : Stream, IArtifactWriter
{
    private readonly ZstdEncoder? _encoder;
    private readonly HashStage _hash = new();
    private readonly List<CopyStage> _copies;
    private readonly ArtifactProgress _progress;
    private readonly ValidationStage? _validation;
    private readonly CancellationToken _cancellation;
    private readonly AgeEncryptor? _age;
    private byte[]? _pending;
    private int _pendingLength;
    private bool _completed;
    private bool _disposed;

    private ArtifactWriter(string name, string fileName, List<CopyStage> copies, int level, int workers, IReadOnlyList<AgeRecipient>? recipients,
        ArtifactProgress progress, IArtifactValidator? validator, bool compress, CancellationToken cancellationToken)
    {
        Name = name;
        FileName = fileName;
        _copies = copies;
        _progress = progress;
        _cancellation = cancellationToken;
        _encoder = compress ? new ZstdEncoder(level, workers, recipients is null ? Emit : EncryptThenEmit) : null; // null: stored as it comes (sealed when encrypted)
        _validation = validator is null ? null : new ValidationStage(validator, cancellationToken);
        _hash.Start();
        foreach (var c in _copies)
        {
            c.Start();
        }

        _age = recipients is null ? null : new AgeEncryptor(recipients, sealedBytes => Accumulate(sealedBytes.Span)); // the header goes out first
    }

    /// <summary>zstd's output, sealed in the age format; the sealed chunks are gathered into pool blocks.</summary>
    private void EncryptThenEmit(byte[] data, int length)
    {
        try
        {
            _age!.Write(data.AsSpan(0, length));
        }
        finally
        {
            BlockPool.Return(data);
        }
    }

    private void Accumulate(ReadOnlySpan<byte> sealedBytes)
    {
        while (sealedBytes.Length > 0)
        {
            _pending ??= BlockPool.Rent();
            var n = Math.Min(sealedBytes.Length, _pending.Length - _pendingLength);
            sealedBytes[..n].CopyTo(_pending.AsSpan(_pendingLength));
            _pendingLength += n;
            sealedBytes = sealedBytes[n..];
            if (_pendingLength == _pending.Length)
            {
                FlushPending();
            }
        }
    }

    private void FlushPending()
    {
        if (_pending is null)
        {
            return;
        }

        var block = _pending;
        var length = _pendingLength;
        _pending = null;
        _pendingLength = 0;
        if (length == 0)
        {
            BlockPool.Return(block);
            return;
        }

        Emit(block, length);
    }

    public string Name { get; }

    public string FileName { get; }

    public ArtifactResult? Result { get; private set; }

    public Stream Content => this;

    public static Task<ArtifactWriter> StartAsync(string source, string snapshot, string name, IReadOnlyList<ITarget> targets,
        Config.CompressionOptions compression, IReadOnlyList<AgeRecipient>? recipients, ArtifactProgress progress, IArtifactValidator? validator,
        CancellationToken cancellationToken)
    {
        var fileName = name + ".zst" + (recipients is null ? "" : Sealed.AgeSuffix);
        return StartAsync(name, fileName, Layout.Key(source, snapshot, fileName), targets, compression, recipients, progress, validator, compress: true, cancellationToken);
    }

    /// <summary>A file stored at a key of its own (an archive file: <see cref="Layout.ArchiveKey"/>), through zstd, sealed when encrypted.</summary>
    public static Task<ArtifactWriter> StartAtAsync(string key, string fileName, IReadOnlyList<ITarget> targets, Config.CompressionOptions compression,
        IReadOnlyList<AgeRecipient>? recipients, ArtifactProgress progress, CancellationToken cancellationToken) =>
        StartAsync(fileName, fileName, key, targets, compression, recipients, progress, null, compress: true, cancellationToken);

    /// <summary>A shared blob (<see cref="Layout.BlobKey"/>): zstd only when its name says so (<see cref="Layout.IsCompressedBlob"/>), sealed when encrypted; no format check.</summary>
    public static Task<ArtifactWriter> StartBlobAsync(string source, string file, IReadOnlyList<ITarget> targets, Config.CompressionOptions compression,
        IReadOnlyList<AgeRecipient>? recipients, ArtifactProgress progress, CancellationToken cancellationToken) =>
        StartAsync(file, file, Layout.BlobKey(source, file), targets, compression, recipients, progress, null, Layout.IsCompressedBlob(file), cancellationToken);

    private static async Task<ArtifactWriter> StartAsync(string name, string fileName, string key, IReadOnlyList<ITarget> targets,
        Config.CompressionOptions compression, IReadOnlyList<AgeRecipient>? recipients, ArtifactProgress progress, IArtifactValidator? validator, bool compress,
        CancellationToken cancellationToken)
    {
        var copies = new List<CopyStage>();
        foreach (var t in targets)
        {
            var stage = new CopyStage(t, key, cancellationToken);
            try
            {
                stage.Upload = await t.BeginPutAsync(stage.Key, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                stage.Error = e;
            }

            copies.Add(stage);
        }

        try
        {
            return new ArtifactWriter(name, fileName, copies, compression.Level, compression.Workers, recipients, progress, validator, compress, cancellationToken);
        }
        catch
        {
            foreach (var c in copies.Where(c => c.Upload is not null))
            {
                await c.Upload!.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    private void Emit(byte[] data, int length)
    {
        var block = new Block(data, length, 1 + _copies.Count);
        _progress.AddStored(length);
        _hash.Add(block, _cancellation);
        foreach (var c in _copies)
        {
            c.Add(block, _cancellation);
        }
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed)
        {
            throw new InvalidOperationException($"artifact {Name} is already complete");
        }

        if (_encoder is not null)
        {
            _encoder.Write(buffer);
        }
        else if (_age is not null)
        {
            _age.Write(buffer);
        }
        else
        {
            Accumulate(buffer);
        }

        _validation?.Append(buffer);
        _progress.AddRaw(buffer.Length);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public async Task CompleteAsync(IReadOnlyDictionary<string, long> facts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(facts);
        _encoder?.Finish();
        _age?.Finish();
        FlushPending();

        _completed = true;
        await DrainAsync().ConfigureAwait(false);
        IReadOnlyCollection<string> rederived = [];
        if (_validation is not null)
        {
            IReadOnlyDictionary<string, long> found;
            try
            {
                found = await _validation.FinishAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is BackupException or InvalidDataException or FormatException or EndOfStreamException)
            {
                throw new BackupException($"artifact {Name} fails its format check: {e.Message}", e);
            }

            if (ValidationStage.Mismatch(found, facts) is { } mismatch)
            {
                throw new BackupException($"artifact {Name} does not hold what the source reported: {mismatch}");
            }

            rederived = found.Keys.ToList();

            // What only the content says (a source that leaves a count to its format check) is recorded as found.
            if (found.Keys.Any(k => !facts.ContainsKey(k)))
            {
                var merged = new Dictionary<string, long>(facts, StringComparer.Ordinal);
                foreach (var (k, v) in found.Where(f => !facts.ContainsKey(f.Key)))
                {
                    merged[k] = v;
                }

                facts = merged;
            }
        }

        var sha = Convert.ToHexStringLower(_hash.Hash.GetHashAndReset());
        var fast = _hash.Fast.GetCurrentHashAsUInt128();
        var stored = _progress.StoredBytes;

        _progress.Enter("committing");
        await Task.WhenAll(_copies.Select(c => CommitCopyAsync(c, cancellationToken))).ConfigureAwait(false);
        _progress.Enter("verifying");
        var copies = await Task.WhenAll(_copies.Select(c => VerifyCopyAsync(c, stored, fast, cancellationToken))).ConfigureAwait(false);
        _progress.Enter("done");
        _progress.Stop();
        Result = new ArtifactResult(Name, FileName, _progress.RawBytes, stored, sha, facts, copies)
        {
            Reported = facts.Keys.Where(k => !rederived.Contains(k)).Order(StringComparer.Ordinal).ToList(),
        };
    }

    private static async Task CommitCopyAsync(CopyStage c, CancellationToken ct)
    {
        if (c.Error is null && c.Upload is not null)
        {
            try
            {
                await c.Upload.CommitAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                c.Error = e;
            }
        }
    }

    private static async Task<CopyInfo> VerifyCopyAsync(CopyStage c, long size, UInt128 fast, CancellationToken ct)
    {
        if (c.Error is not null)
        {
            return new CopyInfo(c.Target.Name, CopyState.Failed, DateTimeOffset.UtcNow, CopyVerifier.Describe(c.Target, c.Key, c.Error, c.Written));
        }

        // Read back whole and compared with the XXH3-128 of what was produced: the stored bytes are the bytes the encoder
        // produced. The format check ran on the raw bytes on the way in; decoding the stored copy again, and its
        // SHA-256 against the manifest, are 'verify --deep''s, which costs a full pass.
        return await CopyVerifier.ReadBackAsync(c.Target, c.Key, size, fast, ct).ConfigureAwait(false);
    }

    private async Task DrainAsync()
    {
        await _hash.CompleteAsync().ConfigureAwait(false);
        foreach (var c in _copies)
        {
            await c.CompleteAsync().ConfigureAwait(false);
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _validation?.Abort();
        await DrainAsync().ConfigureAwait(false);
        foreach (var c in _copies)
        {
            if (c.Upload is not null)
            {
                await c.Upload.DisposeAsync().ConfigureAwait(false);
            }
        }

        _encoder?.Dispose();
        _age?.Dispose();
        if (_pending is not null)
        {
            BlockPool.Return(_pending);
            _pending = null;
        }

        _hash.Hash.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _progress.RawBytes; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
