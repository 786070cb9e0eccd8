using Backstop.Core.Plugins;
using Backstop.Core.Streams;

namespace Backstop.Core.Storage;

/// <summary>
/// One read of a stored copy, the one way restore, verify and heal read copies back: opened (or why not: missing,
/// refused), hashed as it is read, with the first fault of the target's transport remembered, so that a failure
/// downstream can be told apart: the copy's (a read broke, the bytes hash wrong) or the destination's (a write failed
/// while every read was clean).
/// </summary>
public sealed class CopyRead : IAsyncDisposable
{
    private readonly Faults _faults = new();
    private readonly HashingReadStream _hashing;

    private CopyRead(Stream opened) => _hashing = new HashingReadStream(new Faults.Watch(opened, _faults));

    /// <summary>The stored bytes: read through this, and they are hashed and their faults kept.</summary>
    public Stream Stored => _hashing;

    public long BytesRead => _hashing.BytesRead;

    /// <summary>The first error the target's stream threw, if any: then a failure is the copy's, whatever followed.</summary>
    public Exception? ReadFault => _faults.First;

    /// <summary>Reads what is left (to the end of the copy) and returns the SHA-256 of all its bytes.</summary>
    public Task<string> FinishAsync(CancellationToken cancellationToken) => _hashing.FinishAsync(cancellationToken);

    public ValueTask DisposeAsync() => _hashing.DisposeAsync();

    /// <summary>Opens a copy, or says why not (always the copy's side, never a destination's).</summary>
    public static async Task<(CopyRead? Read, CopyUnavailable? Why)> OpenAsync(ITarget target, string key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        try
        {
            return (new CopyRead(await target.OpenReadAsync(key, cancellationToken).ConfigureAwait(false)), null);
        }
        catch (ObjectNotFoundException)
        {
            return (null, new CopyUnavailable(true, $"{Where(target, key)} is missing"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or BackupException)
        {
            return (null, new CopyUnavailable(false, $"{Where(target, key)} could not be opened: {e.Message}"));
        }
    }

    /// <summary>
    /// A write that failed (a full disk, permissions) rather than content that did not decode: EndOfStreamException and
    /// AgeException are IOExceptions too, but they speak of the content.
    /// </summary>
    public static bool IsDestinationFault(Exception e) =>
        e is IOException or UnauthorizedAccessException && e is not (EndOfStreamException or Sealing.Age.AgeException or InvalidDataException);

    /// <summary>A copy named for a person: "copy on target 'nas' (src/id/file.zst)".</summary>
    public static string Where(ITarget target, string key)
    {
        ArgumentNullException.ThrowIfNull(target);
        return $"copy on target '{target.Name}' ({key})";
    }

    /// <summary>The first error a read of the copy threw.</summary>
    private sealed class Faults
    {
        public Exception? First { get; private set; }

        public sealed class Watch(Stream inner, Faults faults) : ReadOnlyStream
        {
            public override int Read(Span<byte> buffer)
            {
                try
                {
                    return inner.Read(buffer);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    faults.First ??= e;
                    throw;
                }
            }

            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                try
                {
                    return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    faults.First ??= e;
                    throw;
                }
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    inner.Dispose();
                }

                base.Dispose(disposing);
            }
        }
    }
}

/// <summary>Why a copy could not be opened: missing, or refused, in words for a person.</summary>
public sealed record CopyUnavailable(bool Missing, string Problem);
