using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Backstop.IntegrationTests.Drill;

namespace Backstop.IntegrationTests.Sources;

/// <summary>
/// The registry source against Debian's docker-registry (2.8) on loopback, with test images written as OCI layouts and
/// pushed by skopeo (the audit: 35 GB of private images with no backup; "if the private registry fails, services
/// cannot be redeployed"). Digests must come back byte-exact, through Backstop's restore and through skopeo alone.
/// </summary>
public sealed class RegistrySourceTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>Two repositories: app/api with a single-platform tag, a two-platform index and a cosign signature; tools/db with one tag.</summary>
    private (string V1, string Multi, string SigTag) Populate(RegistryServer registry, string? creds = null)
    {
        var images = new OciImages(_box["images"]);
        var v1 = images.Tag("v1", "api");
        var multi = images.TagIndex("multi", "web");
        var sig = images.Sign(v1);
        var db = images.Tag("15", "db");
        registry.Push(images.Dir, "v1", "app/api", creds);
        registry.Push(images.Dir, "multi", "app/api", creds);
        registry.Push(images.Dir, sig, "app/api", creds);
        registry.Push(images.Dir, "15", "tools/db", creds);
        Assert.Equal(v1, registry.Digest("app/api", "v1"));
        Assert.Equal(multi, registry.Digest("app/api", "multi"));
        Assert.Equal(db, registry.Digest("tools/db", "15"));
        return (v1, multi, sig);
    }

    private void Config(RegistryServer registry, string extra = "") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + $"  - {{ name: images, kind: registry, url: \"{registry.Url}\"{extra} }}\n");

    private static JsonElement Artifacts(Sandbox box) =>
        JsonDocument.Parse(box.Run("list", "--json").Stdout).RootElement.GetProperty("snapshots")[0].GetProperty("artifacts");

    [Fact]
    public void Images_with_an_index_and_a_signature_round_trip_into_a_fresh_registry_with_every_digest_unchanged()
    {
        using var source = new RegistryServer();
        var (v1, multi, sig) = Populate(source);
        Config(source);
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());

        var artifacts = Artifacts(_box);
        Assert.Equal(["app%2Fapi.oci.tar", "tools%2Fdb.oci.tar"], artifacts.EnumerateArray().Select(a => a.GetProperty("name").GetString()));
        var api = artifacts[0].GetProperty("facts");
        Assert.Equal(3, api.GetProperty("tags").GetInt64());      // v1, multi, and the signature's tag
        Assert.Equal(5, api.GetProperty("manifests").GetInt64()); // v1, the index and its two platforms, the signature
        Assert.Equal(1, artifacts[1].GetProperty("facts").GetProperty("tags").GetInt64());

        using var fresh = new RegistryServer();
        var restore = _box.Run("restore", "--source", "images", "--to", fresh.Url);
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Contains("as recorded", restore.Stdout, StringComparison.Ordinal);
        Assert.Equal(v1, fresh.Digest("app/api", "v1"));
        Assert.Equal(multi, fresh.Digest("app/api", "multi"));
        Assert.Equal(source.Digest("app/api", sig), fresh.Digest("app/api", sig));
        Assert.Equal(source.Digest("tools/db", "15"), fresh.Digest("tools/db", "15"));

        // Both platforms came back: skopeo pulls the arm64 image of the index.
        var arm = Sandbox.Exec("skopeo", "inspect", "--tls-verify=false", "--override-arch", "arm64", $"docker://{fresh.HostPort}/app/api:multi");
        Assert.True(arm.ExitCode == 0, arm.ToString());
        Assert.Equal("arm64", JsonDocument.Parse(arm.Stdout).RootElement.GetProperty("Architecture").GetString());

        // Under a prefix, and a second time: what is there already is kept (same digests), nothing refused.
        var prefixed = _box.Run("restore", "--source", "images", "--to", fresh.Url + "/mirror");
        Assert.True(prefixed.ExitCode == 0, prefixed.ToString());
        Assert.Equal(v1, fresh.Digest("mirror/app/api", "v1"));
        Assert.Equal(0, _box.Run("restore", "--source", "images", "--to", fresh.Url).ExitCode);
    }

    [Fact]
    public void The_explain_recipe_run_literally_restores_the_images_with_skopeo_and_the_same_digests()
    {
        using var source = new RegistryServer();
        var (v1, multi, _) = Populate(source);
        Config(source);
        Assert.Equal(0, _box.Run("run").ExitCode);
        using var fresh = new RegistryServer();
        var explain = _box.Run("restore", "--source", "images", "--explain", "--to", fresh.Url);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var lines = explain.Stdout.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Contains(lines, l => l.Contains("skopeo copy --all --preserve-digests", StringComparison.Ordinal));

        Assert.Contains(lines, l => l.Contains("--dest-tls-verify='false'", StringComparison.Ordinal)); // a plain-http registry on loopback
        var script = string.Join("\n", lines.Select(l => l + " || exit 1"));
        var r = _box.Shell(script);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(v1, fresh.Digest("app/api", "v1"));
        Assert.Equal(multi, fresh.Digest("app/api", "multi"));
        Assert.Equal(source.Digest("tools/db", "15"), fresh.Digest("tools/db", "15"));
    }

    [Fact]
    public void A_blob_that_fails_its_digest_fails_the_snapshot_naming_it_and_nothing_counts()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        images.Tag("v1", "api");
        source.Push(images.Dir, "v1", "app/api");
        var manifest = JsonDocument.Parse(Sandbox.Exec("skopeo", "inspect", "--raw", "--tls-verify=false", $"docker://{source.HostPort}/app/api:v1").Stdout).RootElement;
        var layer = manifest.GetProperty("layers")[1].GetProperty("digest").GetString()!;
        var file = source.BlobFile(layer);
        var bytes = File.ReadAllBytes(file);
        bytes[^1] ^= 0xFF; // one bit of the stored layer flipped on the registry's disk
        File.WriteAllBytes(file, bytes);

        Config(source);
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(layer, run.Stderr + run.Stdout, StringComparison.Ordinal);
        Assert.Contains("not to its digest", run.Stderr + run.Stdout, StringComparison.Ordinal);
        var status = JsonDocument.Parse(_box.Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];
        Assert.Equal("never", status.GetProperty("state").GetString());
    }

    [Fact]
    public void A_registry_that_requires_a_token_is_read_with_one_and_wrong_credentials_are_named()
    {
        using var tokens = new TokenService("backup", "s3cret-token-pass");
        using var source = new RegistryServer(tokens);
        var images = new OciImages(_box["images"]);
        var v1 = images.Tag("v1", "api");
        source.Push(images.Dir, "v1", "app/api", "backup:s3cret-token-pass");

        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: images, kind: registry, url: \"{source.Url}\", user: backup, password: \"env:REG_PASSWORD\", repositories: [app/api] }}\n");
        var run = _box.Run(["run"], new Dictionary<string, string> { ["REG_PASSWORD"] = "s3cret-token-pass" });
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains(tokens.Requests, q => q.Contains("scope=repository%3Aapp%2Fapi%3Apull", StringComparison.Ordinal));
        Assert.Equal(1, Artifacts(_box)[0].GetProperty("facts").GetProperty("tags").GetInt64());

        var wrong = _box.Run(["run"], new Dictionary<string, string> { ["REG_PASSWORD"] = "not-it" });
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("refused the credentials of 'backup'", wrong.Stderr + wrong.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("not-it", wrong.Stderr + wrong.Stdout, StringComparison.Ordinal); // a secret never printed

        // Restore into the same token-protected registry under a prefix: pushes need push scopes, granted by the same service.
        var restore = _box.Run(["restore", "--source", "images", "--to", source.Url + "/copy"], new Dictionary<string, string> { ["REG_PASSWORD"] = "s3cret-token-pass" });
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Contains(tokens.Requests, q => q.Contains("repository%3Acopy%2Fapp%2Fapi%3A", StringComparison.Ordinal) && q.Contains("push", StringComparison.Ordinal));
        var digest = Sandbox.Exec("skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", "backup:s3cret-token-pass", $"docker://{source.HostPort}/copy/app/api:v1");
        Assert.True(digest.ExitCode == 0, digest.ToString());
        Assert.Equal(v1, "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(digest.Stdout))));
    }

    [Fact]
    public void A_catalog_of_more_than_one_page_is_followed_by_its_link_header()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        images.Tag("v1", "tiny");
        source.Push(images.Dir, "v1", "page/r000");
        // 120 more repositories on the registry's disk (the same image): _catalog pages them 100 at a time.
        var repositories = Path.Combine(source.Storage, "docker", "registry", "v2", "repositories", "page");
        for (var i = 1; i <= 120; i++)
        {
            Assert.Equal(0, Sandbox.Exec("cp", "-a", Path.Combine(repositories, "r000"), Path.Combine(repositories, $"r{i:000}")).ExitCode);
        }

        Config(source);
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(121, Artifacts(_box).GetArrayLength());
    }

    [Fact]
    public void Restore_never_moves_a_tag_that_names_another_image_without_force()
    {
        using var source = new RegistryServer();
        var images = new OciImages(_box["images"]);
        var v1 = images.Tag("v1", "api");
        var other = images.Tag("other", "web");
        source.Push(images.Dir, "v1", "app/api");
        Config(source, ", repositories: [app/api]");
        Assert.Equal(0, _box.Run("run").ExitCode);

        using var target = new RegistryServer();
        Assert.Equal(0, Sandbox.Exec("skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", "--quiet", $"oci:{images.Dir}:other", $"docker://{target.HostPort}/app/api:v1").ExitCode);
        var refused = _box.Run("restore", "--source", "images", "--to", target.Url);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"app/api:v1 on {target.HostPort} already names {other}", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("--force", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(other, target.Digest("app/api", "v1"));

        var forced = _box.Run("restore", "--source", "images", "--to", target.Url, "--force");
        Assert.True(forced.ExitCode == 0, forced.ToString());
        Assert.Equal(v1, target.Digest("app/api", "v1"));
    }

    [Fact]
    public void A_drill_pushes_into_a_throwaway_registry_pulls_every_byte_back_and_stops_it()
    {
        using var source = new RegistryServer();
        Populate(source);
        Config(source, ", rto: 10m");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var drill = _box.Run("drill", "--source", "images");
        Assert.True(drill.ExitCode == 0, drill.ToString());
        var evidence = File.ReadAllText(Directory.GetFiles(_box["state/drills"], "*.md").Single());
        Assert.Contains("throwaway docker-registry", evidence, StringComparison.Ordinal);
        Assert.Contains("app/api pulled back: manifests", evidence, StringComparison.Ordinal);
        Assert.Empty(Sandbox.Exec("pgrep", "-f", "backstop-drill.*registry.yml").Stdout.Trim()); // the throwaway registry is gone
        var record = JsonDocument.Parse(File.ReadAllText(Directory.GetFiles(_box["state/drills"], "*.json").Single())).RootElement;
        DrillTests.AssertScratchRanUnprivileged(record, "docker-registry");
        // It answered /v2/ with 401 before the drill used it: no local user pulls the restored private images meanwhile.
        Assert.Contains(record.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("asks every client for credentials", StringComparison.Ordinal));
        var status = JsonDocument.Parse(_box.Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];
        Assert.True(status.GetProperty("last_drill").GetProperty("passed").GetBoolean());
    }

    [Fact]
    public void Config_errors_name_the_key_and_a_password_without_a_user_is_refused()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: images, kind: registry, url: \"http://127.0.0.1:5000/v2\" }\n");
        var path = _box.Run("config", "check");
        Assert.Equal(2, path.ExitCode);
        Assert.Contains("url", path.Stderr, StringComparison.Ordinal);

        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: images, kind: registry, url: \"http://127.0.0.1:5000\", password: \"env:X\" }\n");
        var password = _box.Run("config", "check");
        Assert.Equal(2, password.ExitCode);
        Assert.Contains("a password needs a user", password.Stderr, StringComparison.Ordinal);

        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: images, kind: registry, url: \"http://127.0.0.1:5000\", repositories: [\"../etc\"] }\n");
        var name = _box.Run("config", "check");
        Assert.Equal(2, name.ExitCode);
        Assert.Contains("not a repository name", name.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Doctor_names_the_repositories_no_source_covers()
    {
        using var source = new RegistryServer();
        Populate(source);
        Config(source, ", repositories: [app/api]");
        var doctor = _box.Run("doctor");
        Assert.Contains("1 repository no source backs up: tools/db", doctor.Stdout + doctor.Stderr, StringComparison.Ordinal);
        Assert.Contains("add it to the repositories of 'images', or use repositories: all", doctor.Stdout + doctor.Stderr, StringComparison.Ordinal);
    }
}
