namespace Backstop.Core.Plugins;

/// <summary>
/// Where a capture puts blobs its source shares between snapshots (a registry's layers and configs): content-addressed
/// by their SHA-256 digest, stored once per target under <c>&lt;source&gt;/blobs/sha256/</c>. A blob a target already
/// holds verified is neither read from the source nor sent again; one it lacks is streamed, sealed, sent, read back
/// and matched like an artifact. A blob that a target did not take makes the snapshot's copy there fail.
/// </summary>
public interface IBlobStore
{
    /// <summary>
    /// Makes the blob present on every target of the snapshot, and records that <paramref name="artifact"/> needs it.
    /// <paramref name="open"/> is called only when some target lacks it; its stream must throw when the content does
    /// not hash to <paramref name="digest"/> (which fails the snapshot: a source never hands a wrong blob on).
    /// </summary>
    /// <param name="compress">Whether zstd may shrink it (false for layers that are compressed already).</param>
    Task PutAsync(string artifact, string digest, long size, bool compress, Func<CancellationToken, Task<Stream>> open, CancellationToken cancellationToken);
}

/// <summary>The shared blobs of the snapshot being restored, read from the copy being restored (one target at a time).</summary>
public interface IBlobSource
{
    /// <summary>Whether the snapshot has this blob stored apart (else the artifact holds it itself).</summary>
    bool Has(string digest);

    /// <summary>
    /// The blob's content (decrypted, decompressed), checked against its digest as it is read: a stream that ends early
    /// or hashes wrong throws. A failure here is the copy's: the restore goes on from the next target.
    /// </summary>
    Task<Stream> OpenAsync(string digest, CancellationToken cancellationToken);
}

/// <summary>A restorable kind whose artifacts may need shared blobs: the restore hands it the blobs of the copy it reads.</summary>
public interface IBlobRestorable : IRestorable
{
    /// <summary>Set by the restore before each <see cref="IRestorable.RestoreAsync"/> call; null when the snapshot has no shared blobs.</summary>
    IBlobSource? Blobs { get; set; }
}
