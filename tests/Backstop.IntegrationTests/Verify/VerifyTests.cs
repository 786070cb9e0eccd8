using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Verify;

/// <summary>The NAS incident: a copy that is gone or damaged after upload is found, named, and never "ok".</summary>
public sealed class VerifyTests : IDisposable
{
    private readonly Sandbox _box = new();

    public VerifyTests()
    {
        _box.Write("data/a.txt", string.Concat(Enumerable.Repeat("backstop ", 20000)));
        _box.Write("data/b.bin", Convert.ToBase64String(new byte[50000]));
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
    }

    public void Dispose() => _box.Dispose();

    private string Stored => Directory.GetFiles(_box["backups/files"], "files.tar.zst", SearchOption.AllDirectories).Single();

    private string State()
    {
        var status = _box.Run("status", "--json");
        return JsonDocument.Parse(status.Stdout).RootElement.GetProperty("sources")[0].GetProperty("state").GetString()!;
    }

    [Fact]
    public void A_flipped_byte_is_found_by_verify_deep_naming_the_copy()
    {
        Assert.Equal("ok", State());
        var bytes = File.ReadAllBytes(Stored);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(Stored, bytes);

        Assert.Equal(0, _box.Run("verify").ExitCode); // same size: only a deep verify can tell
        var deep = _box.Run("verify", "--deep");
        Assert.Equal(1, deep.ExitCode);
        Assert.Contains("corrupt", deep.Stdout, StringComparison.Ordinal);
        Assert.Contains("on 'local'", deep.Stdout, StringComparison.Ordinal);
        Assert.Contains("files.tar.zst", deep.Stdout, StringComparison.Ordinal);
        Assert.Contains("does not match: SHA-256", deep.Stdout, StringComparison.Ordinal);
        Assert.NotEqual("ok", State());
        Assert.Equal(1, _box.Run("status").ExitCode);

        // A later size-only verify cannot clear what the deep one found.
        var plain = _box.Run("verify");
        Assert.Equal(1, plain.ExitCode);
        Assert.Contains("found by a deep verify", plain.Stdout, StringComparison.Ordinal);
        Assert.NotEqual("ok", State());
    }

    [Fact]
    public void A_deleted_copy_is_reported_missing_and_status_is_no_longer_ok()
    {
        File.Delete(Stored);
        var verify = _box.Run("verify");
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains("missing", verify.Stdout, StringComparison.Ordinal);
        Assert.Contains("files.tar.zst) is missing", verify.Stdout, StringComparison.Ordinal);
        Assert.Equal("failing", State()); // a backup was made, and its only copy is gone: not "never"
        var status = _box.Run("status");
        Assert.Equal(1, status.ExitCode);
        Assert.Contains("is unrestorable", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("no older snapshot has a good copy either", status.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_deleted_manifest_makes_the_copies_not_a_backup()
    {
        File.Delete(Path.Combine(Path.GetDirectoryName(Stored)!, "MANIFEST.json"));
        var verify = _box.Run("verify", "--json");
        Assert.Equal(1, verify.ExitCode);
        var copy = JsonDocument.Parse(verify.Stdout).RootElement.GetProperty("copies")[0];
        Assert.Equal("missing", copy.GetProperty("state").GetString());
        Assert.Contains("MANIFEST.json", copy.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_truncated_copy_is_found_by_a_plain_verify()
    {
        using (var f = new FileStream(Stored, FileMode.Open))
        {
            f.SetLength(f.Length - 100);
        }

        var verify = _box.Run("verify");
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains("were stored", verify.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_copy_restored_after_corruption_verifies_again()
    {
        var stored = Stored;
        var original = File.ReadAllBytes(stored);
        File.Delete(stored);
        Assert.Equal(1, _box.Run("verify").ExitCode);
        File.WriteAllBytes(stored, original);
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
        Assert.Equal("ok", State());
    }
}
