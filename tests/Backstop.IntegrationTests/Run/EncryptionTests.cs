using System.Security.Cryptography;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Run;

/// <summary>
/// Encrypted snapshots in the age format: restored by Backstop, and by <c>age -d | zstd -d | tar -x</c> alone (the
/// promise: restorable with stock tools even if Backstop is gone).
/// </summary>
public sealed class EncryptionTests : IDisposable
{
    private readonly Sandbox _box = new();

    public EncryptionTests()
    {
        var random = new byte[400_000];
        new Random(11).NextBytes(random);
        File.WriteAllBytes(_box.Write("data/scan.bin", ""), random);
        _box.Write("data/sub/notes.txt", string.Concat(Enumerable.Repeat("secret ledger line\n", 3000)));
    }

    public void Dispose() => _box.Dispose();

    private static Dictionary<string, string> Hashes(string root) =>
        Directory.GetFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    private string Restored(string dest) => Path.Combine(dest, _box["data"].TrimStart('/'));

    private string Keygen(string file = "key.txt")
    {
        var r = _box.Run("keygen", "-o", _box[file]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout.Trim();
    }

    private void Config(string encryption) =>
        _box.WriteConfig(Yaml.LocalTarget() + encryption + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");

    private string Stored => Directory.GetFiles(_box["backups/files"], "files.tar.zst.age", SearchOption.AllDirectories).Single();

    [Fact]
    public void An_encrypted_snapshot_restores_by_backstop_and_by_age_zstd_tar_alone_with_identical_hashes()
    {
        var recipient = Keygen();
        Assert.StartsWith("age1", recipient, StringComparison.Ordinal);
        Config($"encryption: {{ recipients: [{recipient}], identities: [\"file:./key.txt\"] }}\n");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.StartsWith("age-encryption.org/v1\n", File.ReadAllText(Stored)[..22], StringComparison.Ordinal);
        Assert.DoesNotContain("secret ledger line", File.ReadAllText(Stored), StringComparison.Ordinal);

        var restore = _box.Run("restore", "--source", "files", "--to", _box["by-backstop"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["by-backstop"])));

        Directory.CreateDirectory(_box["by-stock-tools"]);
        var stock = _box.Shell($"age -d -i key.txt '{Stored}' | zstd -d | tar -xf - -C by-stock-tools");
        Assert.True(stock.ExitCode == 0, stock.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["by-stock-tools"])));

        var deep = _box.Run("verify", "--deep");
        Assert.True(deep.ExitCode == 0, deep.ToString());
    }

    [Fact]
    public void The_explain_recipe_run_literally_reproduces_the_data()
    {
        var recipient = Keygen();
        Config($"encryption: {{ recipients: [{recipient}], identities: [\"file:./key.txt\"] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var dest = _box["explained it's; DEST $(x)"]; // a quote, a space, a ';', a placeholder's name: one shell word all the same
        var explain = _box.Run("restore", "--source", "files", "--explain", "--to", dest);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var recipe = explain.Stdout.Split('\n').Single(l => l.Contains("age -d", StringComparison.Ordinal) && !l.StartsWith('#'));
        Assert.Contains(_box["key.txt"], recipe, StringComparison.Ordinal);
        var check = explain.Stdout.Split('\n').Single(l => l.Contains("sha256sum -c", StringComparison.Ordinal));
        Directory.CreateDirectory(_box["work"]);
        var r = Sandbox.ExecEnv(_box["work"], null, "/bin/sh", "-c", $"set -e; {check}; {recipe}");
        Assert.True(r.ExitCode == 0, r.ToString() + "\n" + recipe);
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(dest)));
        Assert.Contains("| zstd -dc", recipe, StringComparison.Ordinal); // decrypted into the pipe
        Assert.Empty(Directory.EnumerateFileSystemEntries(_box["work"])); // no decrypted copy left where the recipe ran
    }

    [Fact]
    public void An_encrypted_chain_restores_by_its_explained_age_zstd_tar_commands_and_its_listing_comes_back_from_the_target()
    {
        var recipient = Keygen();
        Config($"encryption: {{ recipients: [{recipient}], identities: [\"file:./key.txt\"] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        _box.Write("data/later.txt", "added at the level");
        Directory.Delete(_box["state/private/source-files/listings"], recursive: true); // a new machine: the listing is read from the target
        var level = _box.Run("run");
        Assert.True(level.ExitCode == 0, level.ToString());
        Assert.Contains("the listing of", level.All, StringComparison.Ordinal);
        Assert.Contains("was read from 'local'", level.All, StringComparison.Ordinal);
        Assert.Equal(1, _box.Snapshots().Last().GetProperty("level").GetInt32());

        var explain = _box.Run("restore", "--source", "files", "--explain", "--to", _box["stock"]);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var commands = explain.Stdout.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Equal(2, commands.Count(c => c.Contains("age -d -i", StringComparison.Ordinal) && c.Contains("tar -x --incremental", StringComparison.Ordinal)));
        var r = Sandbox.ExecEnv(_box.Root, null, "/bin/sh", "-c", "set -e\n" + string.Join("\n", commands));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["stock"])));

        var restore = _box.Run("restore", "--source", "files", "--to", _box["by-backstop"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["by-backstop"])));
    }

    [Fact]
    public void Without_the_identity_restore_refuses_naming_the_fix_and_a_wrong_one_is_refused()
    {
        var recipient = Keygen();
        Config($"encryption: {{ recipients: [{recipient}] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode); // the stored bytes are still read back and hashed

        var none = _box.Run("restore", "--source", "files", "--to", _box["out"]);
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("is encrypted: give the identity file under encryption.identities", none.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["out"]) && Directory.EnumerateFileSystemEntries(_box["out"]).Any());

        Keygen("other.txt");
        var wrong = _box.Run("restore", "--source", "files", "--to", _box["out"], "--identity", _box["other.txt"]);
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("no identity matches", wrong.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("matches its SHA-256", wrong.Stderr, StringComparison.Ordinal); // the key is wrong, not the copy
        Assert.False(Directory.Exists(_box["out"]) && Directory.EnumerateFileSystemEntries(_box["out"]).Any());

        var right = _box.Run("restore", "--source", "files", "--to", _box["out"], "--identity", _box["key.txt"]);
        Assert.True(right.ExitCode == 0, right.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["out"])));
    }

    [Fact]
    public void A_deep_verify_with_a_key_that_does_not_open_the_copies_says_so_and_never_calls_them_corrupt()
    {
        var recipient = Keygen();
        Keygen("other.txt");
        Config($"encryption: {{ recipients: [{recipient}], identities: [\"file:./key.txt\"] }}\n");
        Assert.Equal(0, _box.Run("run").ExitCode);

        Config($"encryption: {{ recipients: [{recipient}], identities: [\"file:./other.txt\"] }}\n"); // the key rotated, the old one dropped
        var deep = _box.Run("verify", "--deep");
        Assert.Equal(1, deep.ExitCode);
        var said = System.Text.RegularExpressions.Regex.Replace(deep.All, @"\s+", " "); // the table wraps long lines
        Assert.Contains("matches its SHA-256, but the configured key does not open it", said, StringComparison.Ordinal);
        Assert.Contains("files.tar.zst.age: no identity matches", said, StringComparison.Ordinal);
        Assert.DoesNotContain("corrupt", deep.All, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(1, _box.Run("verify", "--deep").ExitCode); // said again every time, never "not news"
        var plain = _box.Run("verify");
        Assert.Equal(1, plain.ExitCode); // a size proves nothing about a key
        Assert.Contains("run 'backstop verify --deep' to check it again", System.Text.RegularExpressions.Regex.Replace(plain.All, @"\s+", " "), StringComparison.Ordinal);

        // The key's fault, never the copy's: still a valid backup (degraded, saying why), 'latest' restores with the right
        // key, and the stock recipe is still printed.
        var status = _box.Json("status").GetProperty("sources")[0];
        Assert.Equal("degraded", status.GetProperty("state").GetString());
        Assert.Equal(1, status.GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
        var restored = _box.Run("restore", "--source", "files", "--to", _box["out-right-key"], "--identity", _box["key.txt"]);
        Assert.True(restored.ExitCode == 0, restored.ToString());
        var explain = _box.Run("restore", "--source", "files", "--explain");
        Assert.Contains("# Fill in (or give --to, which fills them): DEST = the folder to restore into", explain.Stdout, StringComparison.Ordinal);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        Assert.Contains("age -d", explain.Stdout, StringComparison.Ordinal);

        Config($"encryption: {{ recipients: [{recipient}], identities: [\"file:./key.txt\"] }}\n");
        var again = _box.Run("verify", "--deep");
        Assert.True(again.ExitCode == 0, again.ToString());
    }

    [Fact]
    public void A_passphrase_encrypts_for_age_p_and_restores()
    {
        Config("encryption: { passphrase: \"env:BACKUP_PASSPHRASE\" }\n");
        var env = new Dictionary<string, string> { ["BACKUP_PASSPHRASE"] = "Correct-Horse-7" };
        var run = _box.Run(["run"], env);
        Assert.True(run.ExitCode == 0, run.ToString());
        var restore = _box.Run(["restore", "--source", "files", "--to", _box["out"]], env);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["out"])));
        var header = File.ReadAllText(Stored).Split('\n')[1];
        Assert.StartsWith("-> scrypt ", header, StringComparison.Ordinal);
        Assert.DoesNotContain("Correct-Horse-7", run.All + File.ReadAllText(Directory.GetFiles(_box["backups"], "MANIFEST.json", SearchOption.AllDirectories)[0]),
            StringComparison.Ordinal);

        // The stock recipe lets age ask for the passphrase (no -i); typed at a terminal (script gives age one).
        var explain = _box.Run(["restore", "--source", "files", "--explain", "--to", _box["by-age"]], env);
        var recipe = explain.Stdout.Split('\n').Single(l => l.Contains("age -d", StringComparison.Ordinal) && !l.StartsWith('#'));
        Assert.Contains("age -d ", recipe, StringComparison.Ordinal);
        Assert.Contains("| zstd -dc", recipe, StringComparison.Ordinal); // into the pipe, no clear file
        Assert.Contains("age -d files.tar.zst.age | zstd -dc", File.ReadAllText(Directory.GetFiles(_box["backups"], "MANIFEST.json", SearchOption.AllDirectories)[0]), StringComparison.Ordinal);
        Directory.CreateDirectory(_box["work"]);
        var typed = Sandbox.ExecIn(_box["work"], "/bin/sh", "-c", $"printf 'Correct-Horse-7\\n' | script -qec {Quote(recipe)} /dev/null");
        Assert.True(typed.ExitCode == 0, typed.ToString() + "\n" + recipe);
        Assert.Equal(Hashes(_box["data"]), Hashes(Restored(_box["by-age"])));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_box["work"]));
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    [Fact]
    public void Keygen_writes_a_0600_file_that_age_reads_and_never_overwrites_it()
    {
        var recipient = Keygen();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_box["key.txt"]));
        var fromAge = Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-y", _box["key.txt"]);
        Assert.Equal(recipient, fromAge.Stdout.Trim());
        var before = File.ReadAllText(_box["key.txt"]);
        var again = _box.Run("keygen", "-o", _box["key.txt"]);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("never overwrites a key", again.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllText(_box["key.txt"]));
    }

    [Fact]
    public void Keygen_onto_a_full_disk_fails_and_leaves_no_half_key()
    {
        var tiny = _box.Tmpfs("tiny", "64k");
        _box.Shell($"head -c 1000000 /dev/zero > '{tiny}/fill'"); // fails when the disk is full, as intended
        var r = _box.Run("keygen", "-o", Path.Combine(tiny, "key.txt"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot write the key to", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("No space left on device", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(tiny, "key.txt")));
        Assert.Equal("", r.Stdout); // no recipient printed for a key that does not exist
    }

    [Fact]
    public void A_bad_recipient_or_a_passphrase_with_recipients_is_a_configuration_error_with_its_place()
    {
        Config("encryption: { recipients: [age1notakey] }\n");
        var bad = _box.Run("run");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("backstop.yaml:", bad.Stderr, StringComparison.Ordinal);
        Assert.Contains("is not an age recipient", bad.Stderr, StringComparison.Ordinal);

        var recipient = Keygen();
        // A secret key pasted where the recipient goes (a common slip) is refused without ever being printed.
        var secret = File.ReadAllLines(_box["key.txt"]).Single(l => l.StartsWith("AGE-SECRET-KEY-", StringComparison.Ordinal));
        Config($"encryption: {{ recipients: [{secret}] }}\n");
        var pasted = _box.Run("run");
        Assert.Equal(2, pasted.ExitCode);
        Assert.Contains("this is a secret key (AGE-SECRET-KEY-…), not a recipient", pasted.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(secret[15..], pasted.All, StringComparison.Ordinal);
        Config($"encryption: {{ recipients: [{recipient}], identities: [\"{secret}\"] }}\n");
        var inline = _box.Run("run");
        Assert.Equal(2, inline.ExitCode);
        Assert.Contains("never inline keys", inline.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(secret[15..], inline.All, StringComparison.Ordinal);

        Config($"encryption: {{ recipients: [{recipient}], passphrase: \"env:X\" }}\n");
        var both = _box.Run("run");
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("a passphrase cannot be combined with recipients", both.Stderr, StringComparison.Ordinal);
    }
}
