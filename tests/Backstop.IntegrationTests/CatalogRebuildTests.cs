using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests;

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

        Assert.Equal(1, _box.Run("status").ExitCode); // no catalog: nothing known, never "ok"
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
        Assert.Equal("missing", status.GetProperty("last_valid").GetProperty("copies").GetProperty("second").GetString());
        Assert.Equal("degraded", status.GetProperty("state").GetString());
    }
}
