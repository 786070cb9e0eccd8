using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Backstop.Core.Sealing.Age;

/// <summary>A recipient stanza of an age header: its type, arguments and body.</summary>
public sealed record AgeStanza(string Type, IReadOnlyList<string> Args, byte[] Body);

/// <summary>
/// Anything wrong with an age file or key: a clear message, never a partial result. Bad data: an altered or
/// truncated file reads as corrupt wherever stored bytes are checked.
/// </summary>
public class AgeException(string message) : IOException(message);

/// <summary>The file is sound as far as can be told, but none of the given identities opens it (another key, a wrong passphrase).</summary>
public sealed class AgeKeyException(string message) : AgeException(message);

/// <summary>Someone who can read what is encrypted: an X25519 public key (age1…) or a passphrase.</summary>
public abstract class AgeRecipient
{
    public abstract AgeStanza Wrap(ReadOnlySpan<byte> fileKey);

    /// <summary>What the manifest records about the recipient (never a secret).</summary>
    public abstract string Describe { get; }

    /// <summary>"age1…" (X25519); anything else is refused with the reason.</summary>
    public static AgeRecipient Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        if (trimmed.StartsWith("AGE-SECRET-KEY-", StringComparison.OrdinalIgnoreCase))
        {
            // Never echoed: it would land in a terminal, a CI log or the journal.
            throw new AgeException("this is a secret key (AGE-SECRET-KEY-…), not a recipient: put the key in an identity file (0600) under " +
                                   "encryption.identities, and give its recipient (age1…, printed by 'backstop keygen' or 'age-keygen -y FILE') here");
        }

        (string Hrp, byte[] Data) decoded;
        try
        {
            decoded = Bech32.Decode(trimmed);
        }
        catch (FormatException e)
        {
            throw new AgeException($"'{Shown(trimmed)}' is not an age recipient: {e.Message}");
        }

        if (decoded.Hrp != "age" || decoded.Data.Length != 32)
        {
            throw new AgeException($"'{Shown(trimmed)}' is not an X25519 age recipient (age1… with 32 bytes)");
        }

        return new X25519Recipient(decoded.Data);
    }

    /// <summary>A recipient is public, but a mistyped value may be anything: only its start is shown.</summary>
    private static string Shown(string text) => text.Length <= 12 ? text : text[..12] + "…";
}

/// <summary>Something that can unwrap a file key: an X25519 identity (AGE-SECRET-KEY-1…) or a passphrase.</summary>
public abstract class AgeIdentity
{
    /// <summary>The file key, or null when no stanza is for this identity.</summary>
    public abstract byte[]? Unwrap(IReadOnlyList<AgeStanza> stanzas);

    /// <summary>Every AGE-SECRET-KEY-1… line of an identity file (comments and blank lines ignored).</summary>
    public static IReadOnlyList<AgeIdentity> ParseFile(string text, string where)
    {
        ArgumentNullException.ThrowIfNull(text);
        var identities = new List<AgeIdentity>();
        var n = 0;
        foreach (var raw in text.Split('\n'))
        {
            n++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            try
            {
                var (hrp, data) = Bech32.Decode(line);
                if (hrp != "age-secret-key-" || data.Length != 32)
                {
                    throw new FormatException("not an AGE-SECRET-KEY-1… line");
                }

                identities.Add(new X25519Identity(data));
            }
            catch (FormatException e)
            {
                throw new AgeException($"{where}:{n}: {e.Message}");
            }
        }

        return identities.Count > 0 ? identities : throw new AgeException($"{where}: no AGE-SECRET-KEY-1… line in the identity file");
    }
}

public sealed class X25519Recipient : AgeRecipient
{
    private const string Info = "age-encryption.org/v1/X25519";
    private readonly byte[] _publicKey;

    public X25519Recipient(byte[] publicKey) => _publicKey = publicKey;

    public override string Describe => Bech32.Encode("age", _publicKey);

    public override AgeStanza Wrap(ReadOnlySpan<byte> fileKey)
    {
        var ephemeral = RandomNumberGenerator.GetBytes(32);
        var share = LibCrypto.X25519PublicKey(ephemeral);
        var shared = LibCrypto.X25519(ephemeral, _publicKey);
        var key = HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, [.. share, .. _publicKey], Encoding.ASCII.GetBytes(Info));
        return new AgeStanza("X25519", [AgeFormat.B64(share)], AgeFormat.Seal(key, fileKey));
    }

    internal static byte[]? Open(byte[] privateKey, byte[] publicKey, IReadOnlyList<AgeStanza> stanzas)
    {
        foreach (var s in stanzas.Where(s => s.Type == "X25519"))
        {
            if (s.Args.Count != 1)
            {
                throw new AgeException("an X25519 stanza must have exactly one argument");
            }

            var share = AgeFormat.UnB64(s.Args[0]);
            if (share.Length != 32 || s.Body.Length != 32)
            {
                throw new AgeException("an X25519 stanza with a share or body of the wrong length");
            }

            byte[] shared;
            try
            {
                shared = LibCrypto.X25519(privateKey, share);
            }
            catch (CryptographicException)
            {
                throw new AgeException("an X25519 stanza with a low-order share");
            }

            var key = HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, [.. share, .. publicKey], Encoding.ASCII.GetBytes(Info));
            if (AgeFormat.TryOpen(key, s.Body) is { } fileKey)
            {
                return fileKey;
            }
        }

        return null;
    }
}

public sealed class X25519Identity : AgeIdentity
{
    private readonly byte[] _privateKey;
    private readonly byte[] _publicKey;

    public X25519Identity(byte[] privateKey)
    {
        _privateKey = privateKey;
        _publicKey = LibCrypto.X25519PublicKey(privateKey);
    }

    public static X25519Identity Generate() => new(RandomNumberGenerator.GetBytes(32));

    public AgeRecipient Recipient => new X25519Recipient(_publicKey);

    public string PublicKey => Bech32.Encode("age", _publicKey);

    /// <summary>The identity file age-keygen writes: a created line, the public key, the secret key.</summary>
    public string ToFileText(DateTimeOffset created) =>
        $"# created: {created.ToString("yyyy-MM-ddTHH:mm:ssK", CultureInfo.InvariantCulture)}\n# public key: {PublicKey}\n{Bech32.Encode("AGE-SECRET-KEY-", _privateKey)}\n";

    public override byte[]? Unwrap(IReadOnlyList<AgeStanza> stanzas) => X25519Recipient.Open(_privateKey, _publicKey, stanzas);
}

/// <summary>The scrypt (passphrase) recipient and identity; it must be the only stanza of a file.</summary>
public sealed class ScryptPassphrase(string passphrase, int logN = ScryptPassphrase.DefaultLogN, int maxLogN = 22) : AgeIdentity
{
    public const int DefaultLogN = 18;
    private const string Label = "age-encryption.org/v1/scrypt";

    public AgeRecipient Recipient => new ScryptRecipient(passphrase, logN);

    private sealed class ScryptRecipient(string passphrase, int logN) : AgeRecipient
    {
        public override string Describe => "scrypt passphrase";

        public override AgeStanza Wrap(ReadOnlySpan<byte> fileKey)
        {
            var salt = RandomNumberGenerator.GetBytes(16);
            var key = LibCrypto.Scrypt(Encoding.UTF8.GetBytes(passphrase), [.. Encoding.ASCII.GetBytes(Label), .. salt], logN);
            return new AgeStanza("scrypt", [AgeFormat.B64(salt), logN.ToString(CultureInfo.InvariantCulture)], AgeFormat.Seal(key, fileKey));
        }
    }

    public override byte[]? Unwrap(IReadOnlyList<AgeStanza> stanzas)
    {
        ArgumentNullException.ThrowIfNull(stanzas);
        var scrypt = stanzas.Where(s => s.Type == "scrypt").ToList();
        if (scrypt.Count == 0)
        {
            return null;
        }

        if (stanzas.Count != 1)
        {
            throw new AgeException("an scrypt stanza must be the only stanza of the header");
        }

        var s = scrypt[0];
        if (s.Args.Count != 2 || !System.Text.RegularExpressions.Regex.IsMatch(s.Args[1], "^[1-9][0-9]*$"))
        {
            throw new AgeException("an scrypt stanza must have a salt and a decimal work factor");
        }

        var salt = AgeFormat.UnB64(s.Args[0]);
        var work = int.TryParse(s.Args[1], NumberStyles.None, CultureInfo.InvariantCulture, out var w) ? w : int.MaxValue;
        if (salt.Length != 16 || s.Body.Length != 32)
        {
            throw new AgeException("an scrypt stanza with a salt or body of the wrong length");
        }

        if (work > maxLogN)
        {
            throw new AgeException($"the scrypt work factor 2^{work} is above the limit 2^{maxLogN}");
        }

        var key = LibCrypto.Scrypt(Encoding.UTF8.GetBytes(passphrase), [.. Encoding.ASCII.GetBytes(Label), .. salt], work);
        return AgeFormat.TryOpen(key, s.Body) ?? throw new AgeKeyException("wrong passphrase");
    }
}

/// <summary>The age v1 header and payload (spec: C2SP age.md).</summary>
public static class AgeFormat
{
    public const int ChunkSize = 64 * 1024;
    public const int TagSize = 16;
    private const string Version = "age-encryption.org/v1";

    internal static string B64(ReadOnlySpan<byte> data) => Convert.ToBase64String(data).TrimEnd('=');

    /// <summary>Unpadded, canonical base64 only.</summary>
    internal static byte[] UnB64(string text)
    {
        if (text.Contains('=', StringComparison.Ordinal))
        {
            throw new AgeException("base64 with padding in the header");
        }

        byte[] data;
        try
        {
            data = Convert.FromBase64String(text + new string('=', (4 - (text.Length % 4)) % 4));
        }
        catch (FormatException)
        {
            throw new AgeException("invalid base64 in the header");
        }

        return B64(data) == text ? data : throw new AgeException("non-canonical base64 in the header");
    }

    internal static byte[] Seal(byte[] key, ReadOnlySpan<byte> plaintext)
    {
        using var aead = new ChaCha20Poly1305(key);
        var output = new byte[plaintext.Length + TagSize];
        aead.Encrypt(new byte[12], plaintext, output.AsSpan(0, plaintext.Length), output.AsSpan(plaintext.Length));
        return output;
    }

    internal static byte[]? TryOpen(byte[] key, byte[] sealedData)
    {
        using var aead = new ChaCha20Poly1305(key);
        var output = new byte[sealedData.Length - TagSize];
        try
        {
            aead.Decrypt(new byte[12], sealedData.AsSpan(0, output.Length), sealedData.AsSpan(output.Length), output);
            return output;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }

    /// <summary>The header for a new file key, MAC included.</summary>
    public static byte[] WriteHeader(ReadOnlySpan<byte> fileKey, IReadOnlyList<AgeRecipient> recipients)
    {
        ArgumentNullException.ThrowIfNull(recipients);
        var sb = new StringBuilder(Version).Append('\n');
        foreach (var r in recipients)
        {
            var stanza = r.Wrap(fileKey);
            sb.Append("-> ").Append(stanza.Type);
            foreach (var a in stanza.Args)
            {
                sb.Append(' ').Append(a);
            }

            sb.Append('\n');
            var body = B64(stanza.Body);
            for (var i = 0; i <= body.Length; i += 64)
            {
                sb.Append(body.AsSpan(i, Math.Min(64, body.Length - i))).Append('\n'); // ends with a line shorter than 64
            }
        }

        sb.Append("---");
        var mac = Mac(fileKey, Encoding.ASCII.GetBytes(sb.ToString()));
        sb.Append(' ').Append(B64(mac)).Append('\n');
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    private static byte[] Mac(ReadOnlySpan<byte> fileKey, byte[] header)
    {
        var key = HKDF.DeriveKey(HashAlgorithmName.SHA256, fileKey.ToArray(), 32, [], Encoding.ASCII.GetBytes("header"));
        return HMACSHA256.HashData(key, header);
    }

    /// <summary>Reads and checks a header; returns the file key unwrapped by one of the identities.</summary>
    public static byte[] ReadHeader(Stream input, IReadOnlyList<AgeIdentity> identities)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(identities);
        var raw = new List<byte>();
        string Line()
        {
            var start = raw.Count;
            while (true)
            {
                var b = input.ReadByte();
                if (b < 0)
                {
                    throw new AgeException("the file ends inside the age header (truncated, or not an age file)");
                }

                raw.Add((byte)b);
                if (b == '\n')
                {
                    return Encoding.ASCII.GetString(raw.GetRange(start, raw.Count - start - 1).ToArray());
                }

                if (raw.Count > 1 << 20)
                {
                    throw new AgeException("an age header longer than 1 MiB");
                }
            }
        }

        if (Line() != Version)
        {
            throw new AgeException("not an age v1 file (the first line is not age-encryption.org/v1)");
        }

        var stanzas = new List<AgeStanza>();
        string line;
        while ((line = Line()).StartsWith("-> ", StringComparison.Ordinal))
        {
            var args = line[3..].Split(' ');
            if (args.Any(a => a.Length == 0))
            {
                throw new AgeException("an empty stanza argument");
            }

            var body = new StringBuilder();
            string part;
            do
            {
                part = Line();
                if (part.Length > 64)
                {
                    throw new AgeException("a stanza body line longer than 64 columns");
                }

                body.Append(part);
            }
            while (part.Length == 64);

            stanzas.Add(new AgeStanza(args[0], args[1..], UnB64(body.ToString())));
        }

        if (!line.StartsWith("--- ", StringComparison.Ordinal) || stanzas.Count == 0)
        {
            throw new AgeException("a malformed age header (no stanza, or no --- line)");
        }

        if (stanzas.Count > 1 && stanzas.Any(st => st.Type == "scrypt"))
        {
            throw new AgeException("an scrypt stanza must be the only stanza of the header"); // whatever key opens the others, as age refuses it
        }

        var macText = line[4..];
        var covered = raw.GetRange(0, raw.Count - 1 - macText.Length - 1).ToArray(); // up to and including "---"
        byte[]? fileKey = null;
        foreach (var identity in identities)
        {
            fileKey = identity.Unwrap(stanzas);
            if (fileKey is not null)
            {
                break;
            }
        }

        if (fileKey is null)
        {
            throw new AgeKeyException(
                $"no identity matches: the file is for {string.Join(", ", stanzas.Select(s => s.Type).Distinct())} recipient(s) that the given key(s) are not");
        }

        if (fileKey.Length != 16)
        {
            throw new AgeException("the file key has the wrong length");
        }

        if (!CryptographicOperations.FixedTimeEquals(Mac(fileKey, covered), UnB64(macText)))
        {
            throw new AgeException("the header's MAC does not match: the header was altered");
        }

        return fileKey;
    }

    internal static byte[] PayloadKey(ReadOnlySpan<byte> fileKey, ReadOnlySpan<byte> nonce) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, fileKey.ToArray(), 32, nonce.ToArray(), Encoding.ASCII.GetBytes("payload"));

    internal static void ChunkNonce(Span<byte> nonce, ulong counter, bool last)
    {
        nonce.Clear();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(nonce[3..11], counter);
        nonce[11] = last ? (byte)1 : (byte)0;
    }
}

/// <summary>
/// Encrypts a stream of bytes into the age format, pushed in and handed out through <c>emit</c> one sealed chunk at
/// a time (header first). Memory: one 64 KiB chunk.
/// </summary>
public sealed class AgeEncryptor : IDisposable
{
    private readonly Action<ReadOnlyMemory<byte>> _emit;
    private readonly ChaCha20Poly1305 _aead;
    private readonly byte[] _plain = new byte[AgeFormat.ChunkSize];
    private readonly byte[] _sealed = new byte[AgeFormat.ChunkSize + AgeFormat.TagSize];
    private readonly byte[] _nonce = new byte[12];
    private int _filled;
    private ulong _counter;
    private bool _finished;

    public AgeEncryptor(IReadOnlyList<AgeRecipient> recipients, Action<ReadOnlyMemory<byte>> emit)
    {
        ArgumentNullException.ThrowIfNull(recipients);
        if (recipients.Count == 0)
        {
            throw new AgeException("no recipient to encrypt to");
        }

        _emit = emit;
        var fileKey = RandomNumberGenerator.GetBytes(16);
        var nonce = RandomNumberGenerator.GetBytes(16);
        emit(AgeFormat.WriteHeader(fileKey, recipients));
        emit(nonce);
        _aead = new ChaCha20Poly1305(AgeFormat.PayloadKey(fileKey, nonce));
        CryptographicOperations.ZeroMemory(fileKey);
    }

    public void Write(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        while (data.Length > 0)
        {
            if (_filled == _plain.Length)
            {
                Seal(last: false); // a full chunk is sealed only once more bytes show it is not the last
            }

            var n = Math.Min(data.Length, _plain.Length - _filled);
            data[..n].CopyTo(_plain.AsSpan(_filled));
            _filled += n;
            data = data[n..];
        }
    }

    /// <summary>Seals the final chunk (empty only when the whole payload is).</summary>
    public void Finish()
    {
        if (!_finished)
        {
            Seal(last: true);
            _finished = true;
        }
    }

    private void Seal(bool last)
    {
        AgeFormat.ChunkNonce(_nonce, _counter++, last);
        _aead.Encrypt(_nonce, _plain.AsSpan(0, _filled), _sealed.AsSpan(0, _filled), _sealed.AsSpan(_filled, AgeFormat.TagSize));
        _emit(_sealed.AsMemory(0, _filled + AgeFormat.TagSize));
        _filled = 0;
    }

    public void Dispose()
    {
        _aead.Dispose();
        CryptographicOperations.ZeroMemory(_plain);
    }
}

/// <summary>Decrypts an age stream while it is read; any truncation or alteration is an error, never a short read.</summary>
public sealed class AgeDecryptStream : Streams.ReadOnlyStream
{
    private const int SealedChunk = AgeFormat.ChunkSize + AgeFormat.TagSize;
    private readonly Stream _input;
    private readonly bool _leaveOpen;
    private readonly ChaCha20Poly1305 _aead;
    private readonly byte[] _in = new byte[SealedChunk + 1];
    private readonly byte[] _out = new byte[AgeFormat.ChunkSize];
    private readonly byte[] _nonce = new byte[12];
    private int _inLength;
    private int _outStart;
    private int _outLength;
    private ulong _counter;
    private bool _done;

    public AgeDecryptStream(Stream input, IReadOnlyList<AgeIdentity> identities, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(input);
        _input = input;
        _leaveOpen = leaveOpen;
        var fileKey = AgeFormat.ReadHeader(input, identities);
        var nonce = new byte[16];
        if (ReadFully(nonce) != 16)
        {
            throw new AgeException("the file ends before the payload nonce (truncated)");
        }

        _aead = new ChaCha20Poly1305(AgeFormat.PayloadKey(fileKey, nonce));
    }

    private int ReadFully(Span<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = _input.Read(buffer[total..]);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }

    private bool NextChunk()
    {
        if (_done)
        {
            return false;
        }

        _inLength += ReadFully(_in.AsSpan(_inLength));
        var last = _inLength <= SealedChunk;
        var take = last ? _inLength : SealedChunk;
        if (take < AgeFormat.TagSize || (last && take == AgeFormat.TagSize && _counter > 0))
        {
            throw new AgeException("the age payload is truncated");
        }

        AgeFormat.ChunkNonce(_nonce, _counter++, last);
        var plain = take - AgeFormat.TagSize;
        try
        {
            _aead.Decrypt(_nonce, _in.AsSpan(0, plain), _in.AsSpan(plain, AgeFormat.TagSize), _out.AsSpan(0, plain));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new AgeException($"chunk {_counter - 1} of the age payload does not authenticate: the file is truncated or altered");
        }

        _outStart = 0;
        _outLength = plain;
        if (last)
        {
            _done = true;
            _inLength = 0;
        }
        else
        {
            _in[0] = _in[SealedChunk];
            _inLength = 1;
        }

        return true;
    }

    public override int Read(Span<byte> buffer)
    {
        while (_outLength == 0)
        {
            if (!NextChunk())
            {
                return 0;
            }
        }

        var n = Math.Min(buffer.Length, _outLength);
        _out.AsSpan(_outStart, n).CopyTo(buffer);
        _outStart += n;
        _outLength -= n;
        return n;
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
            _aead.Dispose();
            if (!_leaveOpen)
            {
                _input.Dispose();
            }
        }

        base.Dispose(disposing);
    }

}
