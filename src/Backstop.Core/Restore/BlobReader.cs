using System.Security.Cryptography;
using Backstop.Core.Catalog;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing;
using Backstop.Core.Sealing.Age;
using Backstop.Core.Storage;

namespace Backstop.Core.Restore;

/// <summary>
/// The shared blobs of a snapshot as one target holds them (<see cref="IBlobSource"/>): each opened from
/// <c>&lt;source&gt;/blobs/sha256/</c>, decrypted and decompressed as its file name says, and checked against its
/// digest and size as it is read. The first fault is kept (<see cref="Fault"/>), with whether it proves the copy bad,
/// so the restore moves on to the next target and the catalog learns of it.
/// </summary>
internal sealed class BlobReader(ITarget target, string source, string snapshotId, IReadOnlyList<BlobInfo> blobs, IReadOnlyList<AgeIdentity> identities) : IBlobSource
{
    public BlobReader(ITarget target, SnapshotInfo snapshot, IReadOnlyList<AgeIdentity> identities)
        : this(target, snapshot.Source, snapshot.Id, snapshot.Blobs, identities)
    {
    }

    private readonly Dictionary<string, BlobInfo> _byDigest = blobs.GroupBy(b => Layout.DigestOf(b.FileName), StringComparer.Ordinal)
        .ToDictionary(g => g.Key, g => g.OrderBy(b => b.Copies.Any(c => c.Target == target.Name && c.State == CopyState.Verified) ? 0 : 1).First(), StringComparer.Ordinal);

    /// <summary>The first blob that failed: which, why, and whether that proves its copy here bad (corrupt, missing) or only unread.</summary>
    public (BlobInfo Blob, string Problem, CopyState? Proven)? Fault { get; private set; }

    /// <summary>Whether the first fault was the key's (none here, or one that does not open the blob), not the copy's.</summary>
    public bool KeyFault { get; private set; }

    public bool Has(string digest) => _byDigest.ContainsKey(digest);

    public async Task<Stream> OpenAsync(string digest, CancellationToken cancellationToken)
    {
        var blob = _byDigest.TryGetValue(digest, out var b) ? b : throw new BackupException($"snapshot {snapshotId} holds no shared blob {digest}");
        var key = Layout.BlobKey(source, blob.FileName);
        var (read, why) = await CopyRead.OpenAsync(target, key, cancellationToken).ConfigureAwait(false);
        if (read is null)
        {
            throw Failed(blob, why!.Problem, why.Missing ? CopyState.Missing : null);
        }

        if (Sealed.IsEncrypted(blob.FileName) && identities.Count == 0)
        {
            await read.DisposeAsync().ConfigureAwait(false);
            throw Failed(blob, $"{CopyRead.Where(target, key)} is sealed and no identity is configured here to open it", null, keyFault: true); // the key's, not the copy's
        }

        try
        {
            var content = Sealed.Open(read.Stored, blob.FileName, identities, Layout.IsCompressedBlob(blob.FileName));
            return new Checked(this, read, content, blob, digest, CopyRead.Where(target, key));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await read.DisposeAsync().ConfigureAwait(false);
            throw Failed(blob, $"{CopyRead.Where(target, key)}: {e.Message}", e is SealKeyException ? null : CopyState.Corrupt, keyFault: e is SealKeyException);
        }
    }

    /// <summary>
    /// <c>verify</c> of one blob's copy: quick, its stored size; deep, its content read whole, decrypted, decompressed
    /// and hashed against its digest.
    /// </summary>
    public static async Task<CopyInfo> VerifyAsync(ITarget target, string source, BlobInfo blob, bool deep, IReadOnlyList<AgeIdentity> identities,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(blob);
        var key = Layout.BlobKey(source, blob.FileName);
        if (!deep)
        {
            ObjectInfo? info;
            try
            {
                info = await target.StatAsync(key, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or BackupException)
            {
                return new CopyInfo(target.Name, CopyState.Failed, DateTimeOffset.UtcNow, $"{CopyRead.Where(target, key)} could not be checked: {e.Message}");
            }

            var stored = blob.StoredBytes.GetValueOrDefault(target.Name, -1);
            return info is null ? new CopyInfo(target.Name, CopyState.Missing, DateTimeOffset.UtcNow, $"{CopyRead.Where(target, key)} is missing")
                : stored >= 0 && info.Size != stored ? new CopyInfo(target.Name, CopyState.Corrupt, DateTimeOffset.UtcNow, $"{CopyRead.Where(target, key)} is {info.Size} bytes, {stored} were stored")
                : new CopyInfo(target.Name, CopyState.Verified, DateTimeOffset.UtcNow, null);
        }

        // A sealed blob with no key here (or a key that does not open it) is checked as far as this host can: its size.
        // A key's problem never makes a copy corrupt (that would let retention remove good snapshots).
        if (Sealed.IsEncrypted(blob.FileName) && identities.Count == 0)
        {
            return await VerifyAsync(target, source, blob, deep: false, identities, cancellationToken).ConfigureAwait(false);
        }

        var reader = new BlobReader(target, source, "-", [blob], identities);
        try
        {
            await using var content = await reader.OpenAsync(Layout.DigestOf(blob.FileName), cancellationToken).ConfigureAwait(false);
            await content.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
            return new CopyInfo(target.Name, CopyState.Verified, DateTimeOffset.UtcNow, null);
        }
        catch (BackupException) when (reader.KeyFault)
        {
            return await VerifyAsync(target, source, blob, deep: false, identities, cancellationToken).ConfigureAwait(false);
        }
        catch (BackupException) when (reader.Fault is { } fault)
        {
            return new CopyInfo(target.Name, fault.Proven ?? CopyState.Failed, DateTimeOffset.UtcNow, fault.Problem);
        }
    }

    private BlobCopyException Failed(BlobInfo blob, string problem, CopyState? proven, bool keyFault = false)
    {
        if (Fault is null)
        {
            Fault = (blob, problem, proven);
            KeyFault = keyFault;
        }

        return new BlobCopyException(problem);
    }

    /// <summary>The content, hashed as it passes: at its end the size and the SHA-256 must be the digest's.</summary>
    private sealed class Checked(BlobReader owner, CopyRead read, Stream content, BlobInfo blob, string digest, string where) : Streams.ReadOnlyStream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _read;
        private bool _ended;

        public override int Read(Span<byte> buffer)
        {
            int n;
            try
            {
                n = content.Read(buffer);
            }
            catch (Exception e) when (e is not (OperationCanceledException or BlobCopyException))
            {
                throw owner.Failed(blob, $"{where} could not be read: {e.Message}", read.ReadFault is null ? CopyState.Corrupt : null);
            }

            return Account(buffer[..n], n == 0 && buffer.Length > 0);
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n;
            try
            {
                n = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not (OperationCanceledException or BlobCopyException))
            {
                throw owner.Failed(blob, $"{where} could not be read: {e.Message}", read.ReadFault is null ? CopyState.Corrupt : null);
            }

            return Account(buffer.Span[..n], n == 0 && buffer.Length > 0);
        }

        private int Account(ReadOnlySpan<byte> data, bool end)
        {
            _read += data.Length;
            if (_read > blob.RawBytes)
            {
                throw owner.Failed(blob, $"{where} holds more than the {blob.RawBytes} bytes of {digest}: corrupt or replaced", CopyState.Corrupt);
            }

            _hash.AppendData(data);
            if (end && !_ended)
            {
                _ended = true;
                var actual = "sha256:" + Convert.ToHexStringLower(_hash.GetHashAndReset());
                if (_read != blob.RawBytes || actual != digest)
                {
                    throw owner.Failed(blob, $"{where} is corrupt: it holds {_read} bytes hashing to {actual}, not the {blob.RawBytes} bytes of {digest}", CopyState.Corrupt);
                }
            }

            return data.Length;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hash.Dispose();
                if (!ReferenceEquals(content, read.Stored))
                {
                    content.Dispose();
                }

                read.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>A shared blob of the copy being restored failed (missing, unreadable, corrupt): the copy's fault, not the destination's.</summary>
public sealed class BlobCopyException(string message) : BackupException(message);
