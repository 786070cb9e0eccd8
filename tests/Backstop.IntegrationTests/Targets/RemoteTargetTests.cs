using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Targets;

/// <summary>
/// Copies on a NAS (sshd through rclone's SFTP), an S3-compatible server and a local folder, with real servers that
/// go down, hang, lose files and damage them (the first audit: an upload "completed", the file missing on the NAS).
/// </summary>
public sealed class RemoteTargetTests : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly SshServer _ssh = new();
    private readonly S3Server _s3 = new();

    public RemoteTargetTests()
    {
        var random = new byte[300_000];
        new Random(7).NextBytes(random);
        File.WriteAllBytes(_box.Write("data/photo.bin", ""), random);
        _box.Write("data/notes.txt", string.Concat(Enumerable.Repeat("ledger line\n", 5000)));
    }

    public void Dispose()
    {
        _ssh.Dispose();
        _s3.Dispose();
        _box.Dispose();
    }

    private string NasPath => _ssh["nas"];

    private void Config(string targets, int minCopies, string sourceExtra = "") =>
        _box.WriteConfig(
            $"catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: {{ min_copies: {minCopies}, rpo: 24h }}\ntargets:\n" +
            targets + $"sources:\n  - {{ name: files, kind: files, paths: [./data]{sourceExtra} }}\n");

    private static string LocalYaml => "  - { name: local, kind: local, path: ./backups }\n";

    private CliResult Run(params string[] args) => _box.Run(args, new Dictionary<string, string>(S3Server.Env) { ["BACKSTOP_DEBUG"] = "1" });

    private JsonElement Status() => JsonDocument.Parse(Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];

    private static string[] NasFiles(string root) =>
        Directory.Exists(root) ? Directory.GetFiles(root, "*", SearchOption.AllDirectories).Select(f => Path.GetFileName(f)).Order().ToArray() : [];

    [Fact]
    public void Three_verified_copies_then_a_dead_nas_degrades_with_two_and_the_next_run_heals()
    {
        Config(LocalYaml + _ssh.TargetYaml(NasPath) + _s3.TargetYaml(), minCopies: 2);
        var first = Run("run");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Equal(3, Status().GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
        Assert.Equal("ok", Status().GetProperty("state").GetString());
        Assert.Equal(["MANIFEST.json", "files.listing.zst", "files.tar.zst"], NasFiles(NasPath));

        _ssh.Stop();
        var degraded = Run("run");
        Assert.True(degraded.ExitCode == 3, degraded.ToString());
        Assert.Contains("files: DEGRADED: copy on 'nas' failed: target 'nas':", degraded.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, Status().GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
        Assert.Equal("failed", Status().GetProperty("last_valid").GetProperty("copies").GetProperty("nas").GetProperty("state").GetString());
        Assert.Equal("verified", Status().GetProperty("last_valid").GetProperty("copies").GetProperty("s3").GetProperty("state").GetString());
        Assert.Equal("degraded", Status().GetProperty("state").GetString());
        Assert.Equal(1, Run("status").ExitCode);

        _ssh.Restart();
        var healing = Run("run");
        Assert.True(healing.ExitCode == 0, healing.ToString());
        Assert.Contains("healed snapshot", healing.All, StringComparison.Ordinal);
        Assert.Contains("onto 'nas'", healing.All, StringComparison.Ordinal);
        Assert.Equal("ok", Status().GetProperty("state").GetString());
        Assert.Equal(9, NasFiles(NasPath).Length); // three snapshots (a full and two levels), each whole: tar, listing, manifest
        var deep = Run("verify", "--deep");
        Assert.True(deep.ExitCode == 0, deep.ToString());
    }

    [Fact]
    public void The_nas_incident_a_file_removed_after_upload_is_reported_missing_never_ok_and_healed()
    {
        Config(LocalYaml + _ssh.TargetYaml(NasPath), minCopies: 1);
        var first = Run("run");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.DoesNotContain("nas", first.Stderr, StringComparison.Ordinal);
        var stored = Directory.GetFiles(NasPath, "files.tar.zst", SearchOption.AllDirectories).Single();
        File.Delete(stored);

        var verify = Run("verify");
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains("missing", verify.Stdout, StringComparison.Ordinal);
        Assert.Contains("on 'nas'", verify.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(" ok", verify.Stdout.Split('\n').Single(l => l.Contains("'nas'", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Equal("degraded", Status().GetProperty("state").GetString());

        var heal = Run("run");
        Assert.True(heal.ExitCode == 0, heal.ToString());
        Assert.True(File.Exists(stored));
        Assert.Equal(0, Run("verify", "--deep").ExitCode);
        Assert.Equal("ok", Status().GetProperty("state").GetString());
    }

    [Fact]
    public void A_corrupted_s3_copy_is_found_by_verify_deep_and_healed_by_the_next_run()
    {
        Config(LocalYaml + _s3.TargetYaml(prefix: "team"), minCopies: 1);
        Assert.Equal(0, Run("run").ExitCode);
        var stored = Directory.GetFiles(Path.Combine(_s3.Root, _s3.Bucket), "files.tar.zst._S3rver_object", SearchOption.AllDirectories).Single();
        var bytes = File.ReadAllBytes(stored);
        bytes[bytes.Length / 3] ^= 0x40;
        File.WriteAllBytes(stored, bytes);

        var deep = Run("verify", "--deep");
        Assert.Equal(1, deep.ExitCode);
        Assert.Contains("corrupt", deep.Stdout, StringComparison.Ordinal);
        Assert.Contains("on 's3'", deep.Stdout, StringComparison.Ordinal);

        var heal = Run("run");
        Assert.True(heal.ExitCode == 0, heal.ToString());
        Assert.Contains("healed snapshot", heal.All, StringComparison.Ordinal);
        var again = Run("verify", "--deep");
        Assert.True(again.ExitCode == 0, again.ToString());
    }

    [Fact]
    public async Task An_s3_object_replaced_with_the_same_size_is_caught_by_a_plain_verify_through_its_metadata()
    {
        Config(LocalYaml + _s3.TargetYaml(), minCopies: 1);
        Assert.Equal(0, Run("run").ExitCode);
        var target = new Backstop.Targets.S3.S3Target("s3", new Backstop.Targets.S3.S3Options(new Uri(_s3.Endpoint), "us-east-1", _s3.Bucket, "",
            new Backstop.Core.Config.SecretRef(S3Server.AccessKey, new Backstop.Core.Config.ConfigLocation("t", 1, 1)),
            new Backstop.Core.Config.SecretRef(S3Server.SecretKey, new Backstop.Core.Config.ConfigLocation("t", 1, 1)), true, 5 << 20));
        var key = "";
        await foreach (var o in target.ListAsync("files/", CancellationToken.None))
        {
            key = o.Key.EndsWith(".zst", StringComparison.Ordinal) ? o.Key : key;
        }

        var size = (await target.StatAsync(key, CancellationToken.None))!.Size;
        await using (var upload = await target.BeginPutAsync(key, CancellationToken.None))
        {
            await upload.WriteAsync(new byte[size], CancellationToken.None); // another writer: same size, other bytes
            await upload.CommitAsync(CancellationToken.None);
        }

        var verify = Run("verify");
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains("was replaced: the target records SHA-256", verify.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_nas_that_fills_up_fails_its_copy_cleanly_and_the_local_copy_commits()
    {
        var full = _box.Tmpfs("nas-disk", "256k");
        Config(LocalYaml + _ssh.TargetYaml(full), minCopies: 1);
        var run = Run("run");
        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.Contains("files: DEGRADED: copy on 'nas' failed: target 'nas':", run.Stdout, StringComparison.Ordinal);
        Assert.Equal("failed", Status().GetProperty("last_valid").GetProperty("copies").GetProperty("nas").GetProperty("state").GetString());
        Assert.Empty(Directory.GetFiles(full, "*", SearchOption.AllDirectories)); // no partial left on the NAS
    }

    [Fact]
    public void An_rclone_remote_from_an_rclone_conf_file_round_trips_through_run_verify_and_restore()
    {
        // Any remote rclone knows (Google Drive, OneDrive, B2…); here an S3 one on s3rver, defined in rclone's own file.
        _box.Write("rclone.conf",
            $"[offsite]\ntype = s3\nprovider = Other\nendpoint = {_s3.Endpoint}\naccess_key_id = {S3Server.AccessKey}\nsecret_access_key = {S3Server.SecretKey}\n");
        Config("  - { name: drive, kind: rclone, remote: \"offsite:" + _s3.Bucket + "/rclone\", config: ./rclone.conf }\n", minCopies: 1);
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("verified on drive", run.Stdout, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(Path.Combine(_s3.Root, _s3.Bucket, "rclone"), "files.tar.zst._S3rver_object", SearchOption.AllDirectories));
        var deep = Run("verify", "--deep");
        Assert.True(deep.ExitCode == 0, deep.ToString());
        var restore = Run("restore", "--source", "files", "--to", _box["restored"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(File.ReadAllBytes(_box["data/photo.bin"]), File.ReadAllBytes(Path.Combine(_box["restored"], _box["data/photo.bin"].TrimStart('/')))); // absolute paths kept under --to
    }

    [Fact]
    public void Without_rclone_in_path_the_copy_fails_saying_what_to_install()
    {
        Config("  - { name: drive, kind: rclone, remote: \"gdrive:backups\" }\n", minCopies: 1);
        var run = _box.Run(["run"], new Dictionary<string, string> { ["PATH"] = "/nonexistent" });
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("target 'drive': the rclone program is needed and was not found in PATH (/nonexistent); install it (apt-get install rclone)", run.All,
            StringComparison.Ordinal);
    }

    [Fact]
    public void A_wrong_host_key_is_refused_naming_the_fingerprint_the_server_presented()
    {
        var other = _box["other_key"];
        Assert.Equal(0, Sandbox.ExecEnv(_box.Root, null, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).ExitCode);
        var wrong = File.ReadAllText(other + ".pub").Split(' ');
        var seen = Sandbox.ExecEnv(_box.Root, null, "ssh-keygen", "-l", "-f", _ssh["host_ed25519.pub"]).Stdout.Split(' ')[1];
        Config(_ssh.TargetYaml(NasPath, hostKey: $"{wrong[0]} {wrong[1]}"), minCopies: 1);
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("is not the one in host_key: the server presented " + seen, run.All, StringComparison.Ordinal);
        Assert.Empty(NasFiles(NasPath));
    }

    [Fact]
    public void A_target_that_hangs_fails_its_copy_at_the_timeout_and_the_other_copy_commits()
    {
        using var proxy = new FaultProxy(_s3.Port, budget: 32 * 1024, FaultProxy.Direction.Up, ProxyFault.Hang);
        var hung = $"  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{proxy.Port}\", bucket: {_s3.Bucket}, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\", timeout: 3s, retries: 0 }}\n";
        Config(LocalYaml + hung, minCopies: 1);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var run = Run("run");
        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.True(proxy.Tripped);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"took {watch.Elapsed}");
        Assert.Contains("target 's3':", run.All, StringComparison.Ordinal);
        Assert.Contains("did not finish within 3s", run.All, StringComparison.Ordinal);
        Assert.Equal("degraded", Status().GetProperty("state").GetString());
    }

    [Fact]
    public void An_s3_server_that_dies_mid_upload_fails_only_its_copy_and_the_only_target_fails_the_snapshot()
    {
        using (var proxy = new FaultProxy(_s3.Port, budget: 64 * 1024, FaultProxy.Direction.Up))
        {
            var dying = $"  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{proxy.Port}\", bucket: {_s3.Bucket}, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\", retries: 0 }}\n";
            Config(LocalYaml + dying, minCopies: 1);
            var run = Run("run");
            Assert.True(run.ExitCode == 3, run.ToString());
            Assert.True(proxy.Tripped);
            Assert.Equal("degraded", Status().GetProperty("state").GetString());
        }

        using var alone = new FaultProxy(_s3.Port, budget: 64 * 1024, FaultProxy.Direction.Up);
        Config($"  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{alone.Port}\", bucket: {_s3.Bucket}, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\", retries: 0 }}\n", minCopies: 1);
        var fail = Run("run");
        Assert.Equal(1, fail.ExitCode);
        Assert.Contains("0 of 1 target(s) hold a verified copy", fail.All, StringComparison.Ordinal);
        Assert.Equal("failed", _box.Snapshots().First(s => s.GetProperty("snapshot").GetString() == Snapshot(fail)).GetProperty("state").GetString());

        // The server went away before the run could remove what it had half-received (s3rver keeps a cut-off body);
        // the next run, with the server reachable, removes the failed snapshot's leftovers.
        Config(_s3.TargetYaml(), minCopies: 1);
        var next = Run("run");
        Assert.True(next.ExitCode == 0, next.ToString());
        Assert.DoesNotContain(Directory.GetFiles(Path.Combine(_s3.Root, _s3.Bucket), "*", SearchOption.AllDirectories),
            f => f.Contains(Snapshot(fail), StringComparison.Ordinal));
    }

    [Fact]
    public void An_s3_copy_that_breaks_off_mid_restore_is_discarded_and_the_local_copy_restores()
    {
        Config(_s3.TargetYaml() + LocalYaml, minCopies: 2);
        Assert.Equal(0, Run("run").ExitCode);
        using var proxy = new FaultProxy(_s3.Port, budget: 64 * 1024, FaultProxy.Direction.Down);
        Config($"  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{proxy.Port}\", bucket: {_s3.Bucket}, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\", retries: 0 }}\n" +
               LocalYaml, minCopies: 2);
        var restore = Run("restore", "--source", "files", "--to", _box["restored"]);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.True(proxy.Tripped);
        Assert.Contains("skipped copy on target 's3'", restore.Stdout, StringComparison.Ordinal);
        Assert.Contains("could not be read", restore.Stdout, StringComparison.Ordinal);
        Assert.Contains("from 'local'", restore.Stdout, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(_box["data/photo.bin"]), File.ReadAllBytes(Path.Combine(_box["restored"], _box["data/photo.bin"].TrimStart('/'))));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_box["restored"]), e => Path.GetFileName(e).StartsWith(".backstop-restore-", StringComparison.Ordinal));
    }

    private static string Snapshot(CliResult run) =>
        System.Text.RegularExpressions.Regex.Match(run.All, @"snapshot (\d{8}T\d{6}Z-[0-9a-f]{4}) started").Groups[1].Value;
}
