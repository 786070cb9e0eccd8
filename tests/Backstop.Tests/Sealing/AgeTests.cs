using System.Diagnostics;
using System.Security.Cryptography;
using Backstop.Core.Sealing.Age;
using Backstop.Tests.Support;

namespace Backstop.Tests.Sealing;

/// <summary>The age v1 format, checked against the spec's examples, RFC 7748, and Debian's age program both ways.</summary>
public sealed class AgeTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Encrypt(byte[] plain, params AgeRecipient[] recipients)
    {
        var output = new MemoryStream();
        using var age = new AgeEncryptor(recipients, b => output.Write(b.Span));
        for (var i = 0; i < plain.Length; i += 10_000)
        {
            age.Write(plain.AsSpan(i, Math.Min(10_000, plain.Length - i)));
        }

        age.Finish();
        return output.ToArray();
    }

    private static byte[] Decrypt(byte[] cipher, params AgeIdentity[] identities)
    {
        using var s = new AgeDecryptStream(new MemoryStream(cipher), identities);
        var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    /// <summary>Runs a program; stdin from a file when given.</summary>
    private (int Code, string Stdout, string Stderr) Exec(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false, WorkingDirectory = _dir.Path,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{program} is needed: run ./test.sh, which installs it", e);
        }

        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(60_000))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in 60s");
            }

            return (p.ExitCode, stdout.Result, stderr.Result);
        }
    }

    [Fact]
    public void X25519_matches_rfc_7748_section_6_1()
    {
        var alice = Convert.FromHexString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        var bob = Convert.FromHexString("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        Assert.Equal("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", Convert.ToHexStringLower(LibCrypto.X25519PublicKey(alice)));
        Assert.Equal("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", Convert.ToHexStringLower(LibCrypto.X25519PublicKey(bob)));
        Assert.Equal("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
            Convert.ToHexStringLower(LibCrypto.X25519(alice, LibCrypto.X25519PublicKey(bob))));
    }

    [Fact]
    public void The_specs_example_identity_has_the_specs_example_recipient()
    {
        var identity = (X25519Identity)AgeIdentity.ParseFile("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n", "spec")[0];
        Assert.Equal("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj", identity.PublicKey);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(65536)]
    [InlineData(65537)]
    [InlineData(3 * 65536)]
    [InlineData(1_000_003)]
    public void Round_trips_at_every_chunk_boundary(int size)
    {
        var identity = X25519Identity.Generate();
        var plain = RandomNumberGenerator.GetBytes(size);
        Assert.Equal(plain, Decrypt(Encrypt(plain, identity.Recipient), identity));
    }

    [Fact]
    public void Encrypted_by_backstop_age_decrypts_it()
    {
        var identity = X25519Identity.Generate();
        File.WriteAllText(_dir["key.txt"], identity.ToFileText(DateTimeOffset.UtcNow));
        var plain = RandomNumberGenerator.GetBytes(200_000);
        File.WriteAllBytes(_dir["data.age"], Encrypt(plain, identity.Recipient));
        var r = Exec("age", "-d", "-i", _dir["key.txt"], "-o", _dir["out"], _dir["data.age"]);
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Equal(plain, File.ReadAllBytes(_dir["out"]));
    }

    [Fact]
    public void Encrypted_by_age_to_a_recipient_backstop_decrypts_it_and_a_wrong_key_is_refused()
    {
        Assert.Equal(0, Exec("age-keygen", "-o", _dir["key.txt"]).Code);
        var identities = AgeIdentity.ParseFile(File.ReadAllText(_dir["key.txt"]), "key.txt");
        var recipient = ((X25519Identity)identities[0]).PublicKey;
        Assert.Equal(0, Exec("age-keygen", "-y", "-o", _dir["pub.txt"], _dir["key.txt"]).Code);
        Assert.Equal(File.ReadAllText(_dir["pub.txt"]).Trim(), recipient);
        var plain = RandomNumberGenerator.GetBytes(150_000);
        File.WriteAllBytes(_dir["plain"], plain);
        Assert.Equal(0, Exec("age", "-r", recipient, "-o", _dir["data.age"], _dir["plain"]).Code);
        Assert.Equal(plain, Decrypt(File.ReadAllBytes(_dir["data.age"]), [.. identities]));

        var wrong = Assert.Throws<AgeKeyException>(() => Decrypt(File.ReadAllBytes(_dir["data.age"]), X25519Identity.Generate()));
        Assert.Contains("no identity matches", wrong.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Encrypted_by_age_with_a_passphrase_backstop_decrypts_it_and_age_reads_backstops()
    {
        File.WriteAllBytes(_dir["plain"], "ledger\n"u8.ToArray());
        // age reads a passphrase from the terminal only: script(1) gives it one and types what it gets on stdin.
        var r = Exec("bash", "-c", $"printf 'Pass-Phrase-9\\nPass-Phrase-9\\n' | script -qec \"age -p -o '{_dir["p.age"]}' '{_dir["plain"]}'\" /dev/null");

        Assert.True(File.Exists(_dir["p.age"]), r.Stderr + r.Stdout);
        Assert.Equal("ledger\n"u8.ToArray(), Decrypt(File.ReadAllBytes(_dir["p.age"]), new ScryptPassphrase("Pass-Phrase-9")));
        Assert.Contains("wrong passphrase", Assert.Throws<AgeKeyException>(() => Decrypt(File.ReadAllBytes(_dir["p.age"]), new ScryptPassphrase("nope"))).Message,
            StringComparison.Ordinal);

        File.WriteAllBytes(_dir["mine.age"], Encrypt("from backstop"u8.ToArray(), new ScryptPassphrase("Pass-Phrase-9", logN: 15).Recipient));
        var d = Exec("bash", "-c", $"printf 'Pass-Phrase-9\\n' | script -qec \"age -d -o '{_dir["mine.out"]}' '{_dir["mine.age"]}'\" /dev/null");
        Assert.True(File.Exists(_dir["mine.out"]), d.Stderr + d.Stdout);
        Assert.Equal("from backstop", File.ReadAllText(_dir["mine.out"]));
    }

    [Fact]
    public void Truncated_or_altered_ciphertext_is_refused_never_a_short_read()
    {
        var identity = X25519Identity.Generate();
        var cipher = Encrypt(RandomNumberGenerator.GetBytes(200_000), identity.Recipient);
        var headerEnd = cipher.AsSpan().IndexOf("\n---"u8) + 1;

        // Cut at a chunk boundary (a whole number of chunks left), in a chunk, and before the payload.
        var payloadStart = cipher.AsSpan(headerEnd).IndexOf((byte)'\n') + headerEnd + 1 + 16;
        foreach (var cut in new[] { payloadStart + (65536 + 16), payloadStart + (2 * (65536 + 16)), cipher.Length - 1, payloadStart + 5, headerEnd + 3 })
        {
            Assert.Throws<AgeException>(() => Decrypt(cipher[..cut], identity));
        }

        foreach (var at in new[] { 30, headerEnd + 10, payloadStart + 100, cipher.Length - 3 })
        {
            var altered = (byte[])cipher.Clone();
            altered[at] ^= 0x01;
            Assert.ThrowsAny<Exception>(() => Decrypt(altered, identity));
        }

        var trailing = cipher.Concat(new byte[] { 0 }).ToArray();
        Assert.Throws<AgeException>(() => Decrypt(trailing, identity));
    }

    [Fact]
    public void Several_recipients_each_decrypt_and_the_header_mac_protects_the_stanzas()
    {
        var a = X25519Identity.Generate();
        var b = X25519Identity.Generate();
        var cipher = Encrypt("shared"u8.ToArray(), a.Recipient, b.Recipient);
        Assert.Equal("shared"u8.ToArray(), Decrypt(cipher, a));
        Assert.Equal("shared"u8.ToArray(), Decrypt(cipher, b));
    }

    [Fact]
    public void A_header_mixing_an_scrypt_stanza_with_others_is_refused_whatever_key_is_given()
    {
        var x = X25519Identity.Generate();
        var pass = new ScryptPassphrase("pw", logN: 10);
        var cipher = Encrypt("mixed"u8.ToArray(), x.Recipient, pass.Recipient);
        Assert.Contains("only stanza", Assert.ThrowsAny<AgeException>(() => Decrypt(cipher, x)).Message, StringComparison.Ordinal);
        Assert.Contains("only stanza", Assert.ThrowsAny<AgeException>(() => Decrypt(cipher, pass)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_keys_are_refused_with_the_reason()
    {
        Assert.Contains("checksum", Assert.Throws<AgeException>(() => AgeRecipient.Parse("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwq")).Message,
            StringComparison.Ordinal);
        Assert.Throws<AgeException>(() => AgeRecipient.Parse("ssh-ed25519 AAAA"));
        Assert.Contains("key.txt:2", Assert.Throws<AgeException>(() => AgeIdentity.ParseFile("# c\nAGE-SECRET-KEY-1XYZ\n", "key.txt")).Message,
            StringComparison.Ordinal);
        Assert.Throws<AgeException>(() => AgeIdentity.ParseFile("# only comments\n", "key.txt"));
    }
}
