using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing.Age;

namespace Backstop.Core.Sealing;

/// <summary>How stored artifacts are sealed and opened again: zstd, then optionally the age format.</summary>
public static class Sealed
{
    public const string AgeSuffix = ".age";

    public static bool IsEncrypted(string fileName) => fileName?.EndsWith(AgeSuffix, StringComparison.Ordinal) == true;

    /// <summary>The recipients of the configuration, ready to encrypt to; null without encryption.</summary>
    public static IReadOnlyList<AgeRecipient>? Recipients(EncryptionOptions? options)
    {
        if (options is null)
        {
            return null;
        }

        return options.Passphrase is { } p
            ? [new ScryptPassphrase(p.Resolve()).Recipient]
            : options.Recipients.Select(AgeRecipient.Parse).ToList();
    }

    /// <summary>The identities that can open what this configuration stored (identity files, or the passphrase).</summary>
    public static IReadOnlyList<AgeIdentity> Identities(EncryptionOptions? options, IEnumerable<string>? extraFiles = null)
    {
        var identities = new List<AgeIdentity>();
        foreach (var file in (options?.Identities.Select(i => i.Reference[5..]) ?? []).Concat(extraFiles ?? []))
        {
            string text;
            try
            {
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BackupException($"the identity file {file} cannot be read: {e.Message}");
            }

            try
            {
                identities.AddRange(AgeIdentity.ParseFile(text, file));
            }
            catch (AgeException e)
            {
                throw new BackupException(e.Message);
            }
        }

        if (options?.Passphrase is { } p)
        {
            identities.Add(new ScryptPassphrase(p.Resolve()));
        }

        return identities;
    }

    /// <summary>Refuses, with the fix, to open an encrypted artifact without an identity.</summary>
    public static void RequireIdentities(string fileName, IReadOnlyList<AgeIdentity> identities)
    {
        ArgumentNullException.ThrowIfNull(identities);
        if (IsEncrypted(fileName) && identities.Count == 0)
        {
            throw new BackupException(
                $"{fileName} is encrypted: give the identity file under encryption.identities in the configuration (or --identity FILE)");
        }
    }

    /// <summary>
    /// The raw content of a stored artifact: decrypted (when it is an age file) and decompressed while read. An
    /// encrypted artifact without an identity is refused with the fix.
    /// </summary>
    public static Stream Open(Stream stored, string fileName, IReadOnlyList<AgeIdentity> identities) => Open(stored, fileName, identities, compressed: true);

    /// <summary>As <see cref="Open(Stream, string, IReadOnlyList{AgeIdentity})"/>, for a file stored with or without zstd (a shared blob).</summary>
    public static Stream Open(Stream stored, string fileName, IReadOnlyList<AgeIdentity> identities, bool compressed)
    {
        ArgumentNullException.ThrowIfNull(stored);
        ArgumentNullException.ThrowIfNull(identities);
        if (!IsEncrypted(fileName))
        {
            return compressed ? new ZstdDecodeStream(stored, leaveOpen: true) : stored; // stored as it is: the stored bytes are the content
        }

        RequireIdentities(fileName, identities);
        try
        {
            var decrypted = new AgeDecryptStream(stored, identities, leaveOpen: true);
            return compressed ? new ZstdDecodeStream(decrypted, leaveOpen: false) : decrypted;
        }
        catch (AgeKeyException e)
        {
            throw new SealKeyException($"{fileName}: {e.Message}");
        }
        catch (AgeException e)
        {
            throw new BackupException($"{fileName}: {e.Message}");
        }
    }
}

/// <summary>An encrypted artifact that the configured identities do not open: a matter of keys, not of the copy.</summary>
public sealed class SealKeyException(string message) : BackupException(message);
