using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Run;
using Backstop.Core.Sealing;
using Backstop.Core.Storage;
using Backstop.Core.FileSystem;

namespace Backstop.Core.Verify;

/// <summary>Checks one copy: it exists with the right size, and (deep) its bytes hash to the recorded SHA-256 and pass the format check.</summary>
public static class CopyVerifier
{
    /// <summary>For artifacts without a format check: decompress to the end, so zstd's frame checksum is proven.</summary>
    public static IArtifactValidator DecodeOnly { get; } = new DecodeOnlyValidator();

    private sealed class DecodeOnlyValidator : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            await content.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
            return new Dictionary<string, long>();
        }
    }

    /// <summary>
    /// One copy. An encrypted copy's content is checked only with <paramref name="identities"/>; without them its
    /// stored bytes are still read back and hashed.
    /// </summary>
    public static async Task<CopyInfo> VerifyAsync(ITarget target, string key, long size, string sha256, bool deep,
        IArtifactValidator? validator, IReadOnlyDictionary<string, long> facts, CancellationToken cancellationToken,
        IReadOnlyList<Sealing.Age.AgeIdentity>? identities = null)
    {
        if (Sealed.IsEncrypted(key) && (identities is null || identities.Count == 0))
        {
            validator = null;
        }

        ArgumentNullException.ThrowIfNull(target);
        var now = DateTimeOffset.UtcNow;
        try
        {
            if (!deep)
            {
                var info = await target.StatAsync(key, cancellationToken).ConfigureAwait(false);
                if (info is null)
                {
                    return new CopyInfo(target.Name, CopyState.Missing, now, $"{Where(target, key)} is missing");
                }

                if (info.Size != size)
                {
                    return new CopyInfo(target.Name, CopyState.Corrupt, now, $"{Where(target, key)} has {info.Size} bytes, {size} were stored");
                }

                return info.Sha256 is { } recorded && !string.Equals(recorded, sha256, StringComparison.OrdinalIgnoreCase)
                    ? new CopyInfo(target.Name, CopyState.Corrupt, now,
                        $"{Where(target, key)} was replaced: the target records SHA-256 {recorded[..16]}…, {sha256[..16]}… was stored")
                    : new CopyInfo(target.Name, CopyState.Verified, now, null);
            }

            var (read, unavailable) = await CopyRead.OpenAsync(target, key, cancellationToken).ConfigureAwait(false);
            if (read is null)
            {
                return new CopyInfo(target.Name, unavailable!.Missing ? CopyState.Missing : CopyState.Failed, now, unavailable.Problem);
            }

            await using var hashing = read;
            string? formatError = null;
            string? keyError = null;
            string? toolError = null;
            if (validator is not null)
            {
                try
                {
                    await using var content = Sealed.Open(hashing.Stored, key, identities ?? []);
                    var found = await validator.ReadFactsAsync(content, cancellationToken).ConfigureAwait(false);
                    if (!ReferenceEquals(validator, DecodeOnly))
                    {
                        await DecodeOnly.ReadFactsAsync(content, cancellationToken).ConfigureAwait(false); // to the frame's end and checksum
                    }

                    formatError = ValidationStage.Mismatch(found, facts);
                }
                catch (SealKeyException e)
                {
                    keyError = e.Message; // said only if the bytes prove good: then the key is the problem, not the copy
                }
                catch (CheckToolException e)
                {
                    toolError = e.Message; // the checker failed, not the copy: said only if the bytes prove good
                }
                catch (Exception e) when (e is InvalidDataException or BackupException or FormatException or EndOfStreamException or Sealing.Age.AgeException)
                {
                    formatError = e.Message;
                }
            }

            var actual = await hashing.FinishAsync(cancellationToken).ConfigureAwait(false);
            if (hashing.BytesRead != size)
            {
                return new CopyInfo(target.Name, CopyState.Corrupt, now, $"{Where(target, key)} has {hashing.BytesRead} bytes, {size} were stored");
            }

            if (!string.Equals(actual, sha256, StringComparison.Ordinal))
            {
                return new CopyInfo(target.Name, CopyState.Corrupt, now,
                    $"{Where(target, key)} does not match: SHA-256 {actual[..16]}…, {sha256[..16]}… was stored");
            }

            if (toolError is not null)
            {
                return new CopyInfo(target.Name, CopyState.Failed, now,
                    $"{Where(target, key)} matches its SHA-256, but its format check could not run: {toolError}; fix the tool, then verify --deep again");
            }

            if (keyError is not null)
            {
                // The key's fault, never the copy's: the bytes are the stored ones (healing cannot help), so the copy stays
                // verified (restorable with the right key, 'latest' unchanged), and the key problem is kept with it and said.
                return new CopyInfo(target.Name, CopyState.Verified, now,
                    $"{Where(target, key)} matches its SHA-256, but {KeyFailure} ({keyError}): " +
                    "check encryption.identities (a rotated key must stay listed while backups made for it are kept)");
            }

            return formatError is not null
                ? new CopyInfo(target.Name, CopyState.Corrupt, now, $"{Where(target, key)} fails its format check: {formatError}")
                : new CopyInfo(target.Name, CopyState.Verified, now, null);
        }
        catch (Exception e) when (e is InvalidDataException or Sealing.Age.AgeException)
        {
            return new CopyInfo(target.Name, CopyState.Corrupt, now, $"{Where(target, key)}: {e.Message}");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new CopyInfo(target.Name, CopyState.Failed, now, Describe(target, key, e, null));
        }
    }

    /// <summary>
    /// A run's read-back of the copy it just wrote: every stored byte read from the target (a local target drops its
    /// cached pages first, so the disk answers) and compared, size and XXH3-128, with what was produced in flight.
    /// </summary>
    public static async Task<CopyInfo> ReadBackAsync(ITarget target, string key, long size, UInt128 produced, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(target);
        var now = DateTimeOffset.UtcNow;
        try
        {
            await using var stored = await target.OpenReadAsync(key, cancellationToken).ConfigureAwait(false);
            var hash = new System.IO.Hashing.XxHash128();
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 20);
            long read = 0;
            try
            {
                int n;
                while ((n = await stored.ReadAsync(buffer.AsMemory(0, buffer.Length), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    hash.Append(buffer.AsSpan(0, n));
                    read += n;
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }

            if (read != size)
            {
                return new CopyInfo(target.Name, CopyState.Corrupt, now, $"{Where(target, key)} has {read} bytes, {size} were stored");
            }

            return hash.GetCurrentHashAsUInt128() == produced
                ? new CopyInfo(target.Name, CopyState.Verified, now, null)
                : new CopyInfo(target.Name, CopyState.Corrupt, now, $"{Where(target, key)} read back differs from the bytes written (XXH3-128)");
        }
        catch (ObjectNotFoundException)
        {
            return new CopyInfo(target.Name, CopyState.Missing, now, $"{Where(target, key)} is missing");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new CopyInfo(target.Name, CopyState.Failed, now, Describe(target, key, e, null));
        }
    }

    private const string KeyFailure = "the configured key does not open it";

    /// <summary>
    /// A copy whose bytes are the stored ones but which the configured identities do not open: still verified (the
    /// copy is good, the key is not), reported by every deep verify until the key is fixed, kept by a plain one (a size
    /// proves nothing about a key), never healed (the same bytes would come back), and a reason for status to say degraded.
    /// </summary>
    public static bool IsKeyFailure(CopyInfo? copy) =>
        copy is { Error: { } error } && error.Contains(KeyFailure, StringComparison.Ordinal);

    internal static string Where(ITarget target, string key) => CopyRead.Where(target, key);

    /// <summary>The reason a copy failed, for a person: disk full gets the numbers.</summary>
    internal static string Describe(ITarget target, string key, Exception e, long? written)
    {
        if (DiskSpace.IsDiskFull(e))
        {
            var free = target.FreeBytesAsync(CancellationToken.None).GetAwaiter().GetResult();
            return $"target '{target.Name}' is full: no space left on device at {target.Where} while writing {key}" +
                   (written is { } w ? $" after {Quantities.FormatSize(w)}" : "") +
                   (free is { } f ? $" ({Quantities.FormatSize(f)} free)" : "") + "; free space there or move the target";
        }

        return e is BackupException or ObjectNotFoundException
            ? e.Message
            : $"{Where(target, key)}: {e.Message}";
    }
}
