using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>
/// A registry's configs and layers stored once per target, content-addressed under <c>images/blobs/sha256/</c>, shared by
/// every snapshot (Debian's docker-registry and skopeo, real): a night with nothing new sends no blob, a new layer sends
/// only what is new, a bad blob is found once by verify and the other target serves, retention removes only blobs no
/// kept snapshot names, and an upload killed mid-blob never leaves a blob that counts as present.
/// </summary>
public sealed class RegistryBlobTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private void Config(RegistryServer registry, string extra = "", string retention = "") =>
        _box.WriteConfig(
            "catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\n" + retention +
            "targets:\n  - { name: nas, kind: local, path: ./nas }\n  - { name: usb, kind: local, path: ./usb }\n" +
            $"sources:\n  - {{ name: images, kind: registry, url: \"{registry.Url}\"{extra} }}\n");

    private string[] Blobs(string target) =>
        Directory.Exists(_box[$"{target}/images/blobs/sha256"])
            ? Directory.GetFiles(_box[$"{target}/images/blobs/sha256"]).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToArray()
            : [];

    private CliResult Run(params string[] args)
    {
        var r = _box.Run(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r;
    }

    private static string Sent(CliResult run) =>
        System.Text.RegularExpressions.Regex.Match(run.Stdout + run.Stderr, @"images: (\d+) shared blob\(s\) sent .*?, (\d+) already verified").Value;

    [Fact]
    public void A_second_night_sends_no_blob_and_a_tag_that_gains_a_layer_sends_only_what_is_new()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var v1 = images.Tag("v1", "api");
        var db = images.Tag("15", "db");
        source.Push(images.Dir, "v1", "app/api");
        source.Push(images.Dir, "15", "tools/db");
        Config(source);

        var first = Run("run");
        Assert.Contains("images: 6 shared blob(s) sent", Sent(first), StringComparison.Ordinal); // 2 configs + 4 layers, gzip layers stored as they are
        var stored = Blobs("nas");
        Assert.Equal(6, stored.Length);
        Assert.Equal(stored, Blobs("usb"));
        Assert.All(stored, f => Assert.Matches("^[0-9a-f]{64}(\\.zst)?$", f));
        var times = stored.ToDictionary(f => f, f => File.GetLastWriteTimeUtc(_box["nas/images/blobs/sha256/" + f]));

        // The repository's artifact holds its manifests and index.json only; the manifest lists the blobs each artifact needs.
        var snapshot = _box.Snapshots().Single();
        var folder = _box["nas/images/" + snapshot.GetProperty("snapshot").GetString()];
        var entries = _box.Shell($"zstd -dc '{folder}/app%2Fapi.oci.tar.zst' | tar -t").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["oci-layout", "blobs/", "blobs/sha256/", "blobs/sha256/" + v1[7..], "index.json"], entries);
        var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, "MANIFEST.json"))).RootElement;
        var needs = manifest.GetProperty("artifacts")[0].GetProperty("blobs").EnumerateArray().Select(b => b.GetProperty("file").GetString()).ToList();
        Assert.Equal(3, needs.Count); // api's config and two layers
        Assert.All(needs, n => Assert.Contains(n, stored));

        // Nothing new: no blob read from the registry or sent; every blob file untouched.
        var second = Run("run");
        Assert.Contains("images: 0 shared blob(s) sent (0 B stored), 6 already verified", Sent(second), StringComparison.Ordinal);
        Assert.All(stored, f => Assert.Equal(times[f], File.GetLastWriteTimeUtc(_box["nas/images/blobs/sha256/" + f])));

        // app/api:v2 is v1 plus one layer (an uncompressed tar layer, so Backstop's zstd shrinks it): that layer and the new config go.
        var layer = new byte[3 << 20];
        Array.Fill(layer, (byte)'x');
        var v2 = images.Tag("v2", "api", extra: layer);
        source.Push(images.Dir, "v2", "app/api");
        var third = Run("run");
        Assert.Contains("images: 2 shared blob(s) sent", Sent(third), StringComparison.Ordinal);
        var added = Blobs("nas").Except(stored).ToList();
        Assert.Equal(2, added.Count); // the layer, and v2's config (JSON, also through zstd)
        var zst = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(layer)) + ".zst";
        Assert.Contains(zst, added);
        Assert.True(new FileInfo(_box["nas/images/blobs/sha256/" + zst]).Length < 64 << 10, "an uncompressed layer is stored through zstd");

        // Every snapshot restores from the shared blobs: the newest into a fresh registry, digests unchanged.
        using var fresh = new RegistryServer();
        Run("restore", "--source", "images", "--to", fresh.Url);
        Assert.Equal(v1, fresh.Digest("app/api", "v1"));
        Assert.Equal(v2, fresh.Digest("app/api", "v2"));
        Assert.Equal(db, fresh.Digest("tools/db", "15"));
        using var older = new RegistryServer();
        Run("restore", "--source", "images", "--snapshot", snapshot.GetProperty("snapshot").GetString()!, "--to", older.Url);
        Assert.Equal(v1, older.Digest("app/api", "v1"));
    }

    [Fact]
    public void A_corrupt_blob_is_found_once_by_verify_deep_and_the_restore_reads_the_other_target_then_a_run_heals_it()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var v1 = images.Tag("v1", "api");
        source.Push(images.Dir, "v1", "app/api");
        Config(source);
        Run("run");
        Run("run"); // two snapshots naming the same blobs

        var manifest = JsonDocument.Parse(Sandbox.Exec("skopeo", "inspect", "--raw", "--tls-verify=false", $"docker://{source.HostPort}/app/api:v1").Stdout).RootElement;
        var layer = manifest.GetProperty("layers")[1].GetProperty("digest").GetString()![7..];
        var file = _box["nas/images/blobs/sha256/" + layer];
        var bytes = File.ReadAllBytes(file);
        bytes[^3] ^= 0x55; // same size: only a deep read finds it
        File.WriteAllBytes(file, bytes);

        Assert.Equal(0, _box.Run("verify").ExitCode); // the size is right: a quick verify cannot tell

        // The nas comes first and its blob is bad: found while restoring, recorded, and the usb's copy serves.
        using var fresh = new RegistryServer();
        var restore = _box.Run("restore", "--source", "images", "--to", fresh.Url);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal(v1, fresh.Digest("app/api", "v1"));
        Assert.Contains($"blob {layer}", restore.Stdout + restore.Stderr, StringComparison.Ordinal);
        Assert.Contains("'usb'", restore.Stdout + restore.Stderr, StringComparison.Ordinal);
        var status = JsonDocument.Parse(_box.Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];
        Assert.Equal(1, status.GetProperty("last_valid").GetProperty("verified_copies").GetInt32());

        var deep = _box.Run("verify", "--deep");
        Assert.NotEqual(0, deep.ExitCode);
        var said = (deep.Stdout + deep.Stderr).Split('\n').Where(l => l.Contains(layer, StringComparison.Ordinal) && l.StartsWith("corrupt", StringComparison.Ordinal)).ToList();
        Assert.Single(said); // one blob copy, checked once, however many snapshots name it

        // The next run needs that blob too: the nas holds no verified copy of it, so it is sent there again, and every
        // older snapshot that names it restores from the nas again; a deep verify is clean.
        var heal = Run("run");
        Assert.Contains("images: 1 shared blob(s) sent", Sent(heal), StringComparison.Ordinal);
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
        Assert.Equal(bytes.Length, new FileInfo(file).Length);
        Assert.NotEqual(bytes, File.ReadAllBytes(file));
    }

    [Fact]
    public void Prune_removes_the_blobs_no_kept_snapshot_names_and_keeps_the_shared_ones()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var layer = new byte[1 << 20];
        Array.Fill(layer, (byte)'y');
        images.Tag("v1", "api");
        var v2 = images.Tag("v2", "api", extra: layer);
        source.Push(images.Dir, "v1", "app/api");
        source.Push(images.Dir, "v2", "app/api");
        Config(source, ", tags: [v2]", "retention: { last: 1 }\n");
        Run("run");
        var withV2 = Blobs("nas");
        Assert.Equal(4, withV2.Length); // the config of v2, two shared layers, the extra layer

        Config(source, ", tags: [v1]", "retention: { last: 1 }\n");
        Run("run", "--no-prune");
        Assert.Equal(5, Blobs("nas").Length); // v1's own config joins

        var dry = Run("prune", "--dry-run");
        Assert.Contains("2 shared blob(s) no kept snapshot needs", dry.Stdout, StringComparison.Ordinal);
        Assert.Equal(5, Blobs("nas").Length);
        var prune = Run("prune");
        Assert.Contains("2 shared blob(s) no kept snapshot needs", prune.Stdout, StringComparison.Ordinal);
        var left = Blobs("nas");
        Assert.Equal(3, left.Length); // v1's config and the two layers it shares with v2
        Assert.Equal(left, Blobs("usb"));

        using var fresh = new RegistryServer();
        Run("restore", "--source", "images", "--to", fresh.Url);
        Assert.Equal(source.Digest("app/api", "v1"), fresh.Digest("app/api", "v1"));
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
        Assert.NotEqual(0, Sandbox.Exec("skopeo", "inspect", "--raw", "--tls-verify=false", $"docker://{fresh.HostPort}/app/api:{v2[..0]}v2").ExitCode);
    }

    [Fact]
    public void A_run_killed_mid_blob_leaves_no_blob_that_counts_and_the_next_run_sends_it_whole()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var big = System.Security.Cryptography.RandomNumberGenerator.GetBytes(200 << 20); // incompressible: a long upload
        var digest = images.Tag("v1", "api", extra: big);
        source.Push(images.Dir, "v1", "app/api");
        Config(source);
        var bigFile = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(big)) + ".zst";
        using (var victim = _box.Start("run"))
        {
            RunningCli.WaitUntil(() => Sandbox.FilesUnder(_box["nas/images/blobs/sha256"])
                .Any(f => Path.GetFileName(f).StartsWith("." + bigFile, StringComparison.Ordinal) && f.EndsWith(".partial", StringComparison.Ordinal)), "the big layer to be uploading");
            victim.KillHard();
        }

        Assert.DoesNotContain(bigFile, Blobs("nas")); // only a whole upload takes the blob's name

        var next = Run("run");
        Assert.Contains("was interrupted by a run that died; recorded as failed", next.Stdout + next.Stderr, StringComparison.Ordinal);
        Assert.True((next.Stdout + next.Stderr).Contains("a blob upload that never finished", StringComparison.Ordinal), next.ToString());
        Assert.Contains(bigFile, Blobs("nas"));
        Assert.DoesNotContain(Sandbox.FilesUnder(_box["nas"]), f => f.EndsWith(".partial", StringComparison.Ordinal));
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
        using var fresh = new RegistryServer();
        Run("restore", "--source", "images", "--to", fresh.Url);
        Assert.Equal(digest, fresh.Digest("app/api", "v1"));
    }

    [Fact]
    public void A_rebuilt_catalog_knows_the_shared_blobs_and_an_encrypted_snapshot_restores_by_its_recipe_literally()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var layer = new byte[1 << 20];
        Array.Fill(layer, (byte)'z');
        var v1 = images.Tag("v1", "api", extra: layer);
        source.Push(images.Dir, "v1", "app/api");
        Assert.Equal(0, Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-o", _box["key.txt"]).ExitCode);
        var recipient = Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-y", _box["key.txt"]).Stdout.Trim();
        _box.WriteConfig(Yaml.LocalTarget() + $"encryption: {{ recipients: [{recipient}], identities: [\"file:./key.txt\"] }}\n" +
                         $"sources:\n  - {{ name: images, kind: registry, url: \"{source.Url}\" }}\n");
        Run("run");
        var stored = Blobs("backups");
        Assert.Equal(4, stored.Length);
        Assert.All(stored, f => Assert.EndsWith(".age", f, StringComparison.Ordinal)); // sealed like every artifact
        Assert.Equal(2, stored.Count(f => f.EndsWith(".zst.age", StringComparison.Ordinal))); // the config and the uncompressed layer

        // The catalog lost: rebuilt from the manifests, it knows each blob's copy again (read whole and hashed).
        File.Delete(_box["state/catalog.db"]);
        Run("catalog", "rebuild");
        var second = Run("run");
        Assert.Contains("images: 0 shared blob(s) sent", Sent(second), StringComparison.Ordinal);

        using var fresh = new RegistryServer();
        var explain = Run("restore", "--source", "images", "--explain", "--to", fresh.Url);
        var lines = explain.Stdout.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Contains(lines, l => l.Contains("age -d -i", StringComparison.Ordinal) && l.Contains("blobs/sha256", StringComparison.Ordinal));
        var r = _box.Shell(string.Join("\n", lines.Select(l => l + " || exit 1")));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(v1, fresh.Digest("app/api", "v1"));
    }

    [Fact]
    public void A_target_added_later_is_healed_with_the_blobs_only_older_snapshots_need()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var layer = new byte[1 << 20];
        Array.Fill(layer, (byte)'w');
        images.Tag("v1", "api");
        var v2 = images.Tag("v2", "api", extra: layer);
        source.Push(images.Dir, "v1", "app/api");
        source.Push(images.Dir, "v2", "app/api");
        _box.WriteConfig("catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n  - { name: nas, kind: local, path: ./nas }\n" +
                         $"sources:\n  - {{ name: images, kind: registry, url: \"{source.Url}\", tags: [v2] }}\n");
        Run("run");
        var first = _box.Snapshots().Single().GetProperty("snapshot").GetString()!;

        // The usb joins, and the source now keeps v1 only: the new snapshot's blobs go to both by the run; the first
        // snapshot's (v2's config and extra layer) reach the usb by healing, copied from the nas, read back and hashed.
        Config(source, ", tags: [v1]");
        var run = Run("run");
        Assert.Contains($"healed snapshot {first} of 'images' onto 'usb'", run.Stdout + run.Stderr, StringComparison.Ordinal);
        Assert.Equal(5, Blobs("usb").Length);
        Assert.Equal(Blobs("nas"), Blobs("usb"));
        Directory.Delete(_box["nas"], recursive: true); // only the usb is left: the first snapshot restores from it
        using var fresh = new RegistryServer();
        Run("restore", "--source", "images", "--snapshot", first, "--to", fresh.Url);
        Assert.Equal(v2, fresh.Digest("app/api", "v2"));
    }

    [Fact]
    public void A_new_key_seals_every_blob_again_and_run_full_sends_every_blob_again()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var v1 = images.Tag("v1", "api");
        source.Push(images.Dir, "v1", "app/api");
        string Key(string file)
        {
            Assert.Equal(0, Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-o", _box[file]).ExitCode);
            return Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-y", _box[file]).Stdout.Trim();
        }

        void Sealed(string recipient, string identity) =>
            _box.WriteConfig(Yaml.LocalTarget() + $"encryption: {{ recipients: [{recipient}], identities: [\"file:./{identity}\"] }}\n" +
                             $"sources:\n  - {{ name: images, kind: registry, url: \"{source.Url}\" }}\n");
        Sealed(Key("old.txt"), "old.txt");
        Assert.Contains("images: 3 shared blob(s) sent", Sent(Run("run")), StringComparison.Ordinal);
        Assert.Contains("images: 3 shared blob(s) sent", Sent(Run("run", "--full")), StringComparison.Ordinal); // --full: nothing reused

        // The old key is retired (lost, or leaked): the next run seals each blob it needs to the new key again, so the
        // newest snapshot restores with the new key alone.
        Sealed(Key("new.txt"), "new.txt");
        Assert.Contains("images: 3 shared blob(s) sent", Sent(Run("run")), StringComparison.Ordinal);
        Assert.Contains("images: 0 shared blob(s) sent", Sent(Run("run")), StringComparison.Ordinal);
        File.Delete(_box["old.txt"]);
        using var fresh = new RegistryServer();
        Run("restore", "--source", "images", "--to", fresh.Url);
        Assert.Equal(v1, fresh.Digest("app/api", "v1"));
    }

    [Fact]
    public void A_deep_verify_on_a_host_without_the_key_never_calls_a_sealed_blob_corrupt()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        images.Tag("v1", "api");
        source.Push(images.Dir, "v1", "app/api");
        Assert.Equal(0, Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-o", _box["key.txt"]).ExitCode);
        var recipient = Sandbox.ExecEnv(_box.Root, null, "age-keygen", "-y", _box["key.txt"]).Stdout.Trim();
        File.Delete(_box["key.txt"]); // recipients only on this host: the key is kept elsewhere
        _box.WriteConfig(Yaml.LocalTarget() + $"encryption: {{ recipients: [{recipient}] }}\n" +
                         $"sources:\n  - {{ name: images, kind: registry, url: \"{source.Url}\" }}\n");
        Run("run");
        var deep = _box.Run("verify", "--deep");
        Assert.DoesNotContain("corrupt", deep.Stdout + deep.Stderr, StringComparison.Ordinal);
        // Nothing was proven bad: the snapshot stays valid (never unrestorable, which retention would remove).
        Assert.Equal("valid", Assert.Single(_box.Snapshots()).GetProperty("condition").GetString());
        var status = JsonDocument.Parse(_box.Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];
        Assert.Equal(1, status.GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
    }
}
