using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Catalog;

/// <summary>The catalog is never a single point of failure: it comes back from the manifests on the targets.</summary>
public sealed class CatalogRebuildTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static string Normalize(string json)
    {
        // checked_at is the time a copy was last checked: a rebuild checks again.
        using var doc = JsonDocument.Parse(json);
        return System.Text.RegularExpressions.Regex.Replace(doc.RootElement.ToString(), "\"checked_at\":\\s*\"[^\"]*\"", "");
    }

    [Fact]
    public void Catalog_deleted_then_rebuilt_gives_the_same_list_and_status()
    {
        _box.Write("data/a.txt", "alpha");
        _box.WriteConfig(
            "catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n" +
            "  - { name: local, kind: local, path: ./backups }\n  - { name: second, kind: local, path: ./second }\n" +
            "sources:\n  - { name: files, kind: files, paths: [./data] }\n" + Yaml.Command("app", "echo ledger"));
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(0, _box.Run("run").ExitCode);
            Thread.Sleep(1100);
        }

        var list = Normalize(_box.Run("list", "--json").Stdout);
        var status = _box.Run("status", "--json").Stdout;
        foreach (var f in Directory.GetFiles(_box["state"], "catalog.db*"))
        {
            File.Delete(f);
        }

        var lost = _box.Run("status");
        Assert.Equal(1, lost.ExitCode); // no catalog: nothing known, never "ok"
        Assert.Contains("does not exist, but target 'local' holds backups", lost.Stderr, StringComparison.Ordinal);
        Assert.Contains("'backstop catalog rebuild' recreates it", lost.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(_box["state/catalog.db"])); // not started empty, quietly
        var restore = _box.Run("restore", "--source", "files", "--to", _box["out"]);
        Assert.Equal(1, restore.ExitCode);
        Assert.Contains("holds no snapshot of 'files'; if the catalog was lost or replaced, 'backstop catalog rebuild' recreates it", restore.Stderr, StringComparison.Ordinal);
        var rebuild = _box.Run("catalog", "rebuild");
        Assert.True(rebuild.ExitCode == 0, rebuild.ToString());
        Assert.Contains("4 snapshot(s) of 2 source(s)", rebuild.Stdout, StringComparison.Ordinal);
        Assert.Equal(list, Normalize(_box.Run("list", "--json").Stdout));
        Assert.True(status == _box.Run("status", "--json").Stdout, status + "\n-----\n" + _box.Run("status", "--json").Stdout);
        Assert.Equal(0, _box.Run("verify", "--deep").ExitCode);
    }

    [Fact]
    public void A_damaged_catalog_points_to_rebuild_which_moves_it_aside_with_force()
    {
        _box.Write("data/a.txt", "alpha");
        _box.WriteConfig("catalog: ./state/catalog.db\nstaging: ./state/staging\ntargets:\n  - { name: local, kind: local, path: ./backups }\n" +
                         "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var list = Normalize(_box.Run("list", "--json").Stdout);
        foreach (var f in Directory.GetFiles(_box["state"], "catalog.db*"))
        {
            File.Delete(f);
        }

        File.WriteAllText(_box["state/catalog.db"], "this is not a database, a half-written file would look like this");
        var status = _box.Run("status");
        Assert.Equal(1, status.ExitCode);
        Assert.Contains("'backstop catalog rebuild --force' recreates it", status.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", status.All, StringComparison.Ordinal);

        var refused = _box.Run("catalog", "rebuild");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("add --force to move it aside", refused.Stderr, StringComparison.Ordinal);

        var rebuilt = _box.Run("catalog", "rebuild", "--force");
        Assert.True(rebuilt.ExitCode == 0, rebuilt.ToString());
        Assert.Contains("the old catalog is kept as", rebuilt.Stderr, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(_box["state"], "catalog.db.replaced-*"));
        Assert.Equal(list, Normalize(_box.Run("list", "--json").Stdout));

        // Damage past the header (the header opens, the tables do not): the same way out.
        var bytes = File.ReadAllBytes(_box["state/catalog.db"]);
        Assert.True(bytes.Length > 8192);
        new Random(7).NextBytes(bytes.AsSpan(4096, bytes.Length - 4096));
        File.WriteAllBytes(_box["state/catalog.db"], bytes);
        var again = _box.Run("catalog", "rebuild", "--force");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(list, Normalize(_box.Run("list", "--json").Stdout));
    }

    [Fact]
    public void A_catalog_with_snapshots_is_replaced_only_with_force_and_kept_beside()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo ledger"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        var refused = _box.Run("catalog", "rebuild");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("add --force", refused.Stderr, StringComparison.Ordinal);
        var forced = _box.Run("catalog", "rebuild", "--force");
        Assert.True(forced.ExitCode == 0, forced.ToString());
        Assert.Single(Directory.GetFiles(_box["state"], "catalog.db.replaced-*"), f => !f.EndsWith("-wal", StringComparison.Ordinal) && !f.EndsWith("-shm", StringComparison.Ordinal));
        Assert.Single(_box.Snapshots());
    }

    [Fact]
    public void A_copy_missing_on_a_target_is_rebuilt_as_missing_not_verified()
    {
        _box.WriteConfig(
            "catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n" +
            "  - { name: local, kind: local, path: ./backups }\n  - { name: second, kind: local, path: ./second }\n" +
            "sources:\n" + Yaml.Command("app", "echo ledger"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        File.Delete(Directory.GetFiles(_box["second"], "dump.out.zst", SearchOption.AllDirectories).Single());
        Assert.Equal(0, _box.Run("catalog", "rebuild", "--force").ExitCode);
        var status = JsonDocument.Parse(_box.Run("status", "--json").Stdout).RootElement.GetProperty("sources")[0];
        var second = status.GetProperty("last_valid").GetProperty("copies").GetProperty("second");
        Assert.Equal("missing", second.GetProperty("state").GetString());
        Assert.Contains("dump.out.zst is missing on 'second'", second.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("degraded", status.GetProperty("state").GetString());
    }
    [Fact]
    public void A_hostile_manifest_is_refused_by_rebuild_and_nothing_is_written_outside_the_destination()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo ledger"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        var manifestPath = Directory.GetFiles(_box["backups/app"], "MANIFEST.json", SearchOption.AllDirectories).Single();
        var folder = Path.GetDirectoryName(manifestPath)!;
        var json = File.ReadAllText(manifestPath);

        // The artifact renamed to climb out of --to, its stored file moved to match, as an attacker with write access to the NAS would.
        File.WriteAllText(manifestPath, json.Replace("\"dump.out\"", "\"../../../escaped\"", StringComparison.Ordinal)
            .Replace("\"dump.out.zst\"", "\"../../../escaped.zst\"", StringComparison.Ordinal));
        var rebuilt = _box.Run("catalog", "rebuild", "--force");
        Assert.Contains("is refused: artifact name '../../../escaped' is not a safe file name", rebuilt.All, StringComparison.Ordinal);
        Assert.Empty(_box.Snapshots());
        var restore = _box.Run("restore", "--source", "app", "--to", _box["out/deep/er"]);
        Assert.NotEqual(0, restore.ExitCode);
        Assert.False(File.Exists(_box["escaped"]) || File.Exists(_box["out/escaped"]));

        foreach (var (from, to, why) in new[]
                 {
                     ("\"format\": 1", "\"format\": 7", "format 7 is not one this backstop reads"),
                     ("\"raw_bytes\": ", "\"raw_bytes\": -", "a size is negative"),
                     ("\"sha256\": \"", "\"sha256\": \"zz", "has a malformed SHA-256"),
                 })
        {
            File.WriteAllText(manifestPath, json.Replace(from, to, StringComparison.Ordinal));
            var r = _box.Run("catalog", "rebuild", "--force");
            Assert.Contains(why, r.All, StringComparison.Ordinal);
            Assert.Contains(Path.GetRelativePath(_box["backups"], manifestPath), r.All, StringComparison.Ordinal);
        }

        File.WriteAllText(manifestPath, json);
        Assert.Equal(0, _box.Run("catalog", "rebuild", "--force").ExitCode);
        Assert.Single(_box.Snapshots());
        Assert.True(Directory.Exists(folder));
    }

    [Fact]
    public void A_rebuilt_copy_is_verified_only_when_its_bytes_read_back_with_the_recorded_hash()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo ledger"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        var stored = Directory.GetFiles(_box["backups/app"], "dump.out.zst", SearchOption.AllDirectories).Single();
        var bytes = File.ReadAllBytes(stored);
        bytes[^1] ^= 0xff; // same size, other bytes: a size check alone would call it verified
        File.WriteAllBytes(stored, bytes);
        _box.Run("catalog", "rebuild", "--force");
        var copy = _box.Json("status").GetProperty("sources")[0];
        Assert.Equal("failing", copy.GetProperty("state").GetString()); // its only copy is proven corrupt: unrestorable
        var show = _box.Run("show", _box.Snapshots().Single().GetProperty("snapshot").GetString()!);
        Assert.Contains("corrupt", show.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_manifest_larger_than_any_manifest_is_refused_without_being_read_whole()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + Yaml.Command("app", "echo ledger"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        // A tampered target: a second snapshot folder whose manifest is 1 GiB (sparse: it costs no disk).
        var folder = _box["backups/app/20200101T000000Z-abcd"];
        Directory.CreateDirectory(folder);
        using (var big = File.Create(Path.Combine(folder, "MANIFEST.json")))
        {
            big.SetLength(1L << 30);
        }

        var r = _box.Run("catalog", "rebuild", "--force");
        Assert.Contains("larger than 64 MiB, which no manifest is", r.All, StringComparison.Ordinal);
        Assert.Single(_box.Snapshots()); // the real one is rebuilt all the same
    }
}
