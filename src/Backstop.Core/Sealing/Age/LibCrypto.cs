using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Backstop.Core.Sealing.Age;

/// <summary>
/// X25519 and scrypt from OpenSSL's libcrypto (the library .NET itself uses on Linux): no curve arithmetic of ours.
/// </summary>
internal static partial class LibCrypto
{
    private const string Lib = "libcrypto.so.3";
    private const int EvpPkeyX25519 = 1034;

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_new_raw_private_key")]
    private static partial nint NewRawPrivateKey(int type, nint engine, ReadOnlySpan<byte> key, nuint length);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_new_raw_public_key")]
    private static partial nint NewRawPublicKey(int type, nint engine, ReadOnlySpan<byte> key, nuint length);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_get_raw_public_key")]
    private static partial int GetRawPublicKey(nint pkey, Span<byte> output, ref nuint length);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_free")]
    private static partial void FreeKey(nint pkey);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_CTX_new")]
    private static partial nint NewContext(nint pkey, nint engine);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_CTX_free")]
    private static partial void FreeContext(nint ctx);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_derive_init")]
    private static partial int DeriveInit(nint ctx);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_derive_set_peer")]
    private static partial int DeriveSetPeer(nint ctx, nint peer);

    [LibraryImport(Lib, EntryPoint = "EVP_PKEY_derive")]
    private static partial int Derive(nint ctx, Span<byte> output, ref nuint length);

    [LibraryImport(Lib, EntryPoint = "EVP_PBE_scrypt")]
    private static partial int PbeScrypt(ReadOnlySpan<byte> pass, nuint passLength, ReadOnlySpan<byte> salt, nuint saltLength,
        ulong n, ulong r, ulong p, ulong maxMemory, Span<byte> key, nuint keyLength);

    /// <summary>X25519(scalar, basepoint): the public key of a private one.</summary>
    public static byte[] X25519PublicKey(ReadOnlySpan<byte> privateKey)
    {
        var pkey = NewRawPrivateKey(EvpPkeyX25519, 0, privateKey, 32);
        Check(pkey != 0, "X25519 private key");
        try
        {
            var output = new byte[32];
            nuint length = 32;
            Check(GetRawPublicKey(pkey, output, ref length) == 1 && length == 32, "X25519 public key");
            return output;
        }
        finally
        {
            FreeKey(pkey);
        }
    }

    /// <summary>X25519(scalar, point): the shared secret.</summary>
    public static byte[] X25519(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey)
    {
        var own = NewRawPrivateKey(EvpPkeyX25519, 0, privateKey, 32);
        var peer = NewRawPublicKey(EvpPkeyX25519, 0, publicKey, 32);
        var ctx = own == 0 ? 0 : NewContext(own, 0);
        try
        {
            Check(own != 0 && peer != 0 && ctx != 0, "X25519 keys");
            Check(DeriveInit(ctx) == 1 && DeriveSetPeer(ctx, peer) == 1, "X25519 key agreement");
            var output = new byte[32];
            nuint length = 32;
            // OpenSSL refuses an all-zero result (a low-order point) itself; age requires that abort too.
            Check(Derive(ctx, output, ref length) == 1 && length == 32, "X25519 key agreement (low-order point?)");
            return output;
        }
        finally
        {
            if (ctx != 0)
            {
                FreeContext(ctx);
            }

            if (own != 0)
            {
                FreeKey(own);
            }

            if (peer != 0)
            {
                FreeKey(peer);
            }
        }
    }

    /// <summary>scrypt(N = 2^logN, r = 8, p = 1) of RFC 7914, 32 bytes.</summary>
    public static byte[] Scrypt(ReadOnlySpan<byte> passphrase, ReadOnlySpan<byte> salt, int logN)
    {
        var output = new byte[32];
        var n = 1UL << logN;
        var maxMemory = (128UL * 8 * n) + (1UL << 24);
        Check(PbeScrypt(passphrase, (nuint)passphrase.Length, salt, (nuint)salt.Length, n, 8, 1, maxMemory, output, 32) == 1, "scrypt");
        return output;
    }

    private static void Check(bool ok, string what)
    {
        if (!ok)
        {
            throw new CryptographicException($"libcrypto: {what} failed");
        }
    }
}
