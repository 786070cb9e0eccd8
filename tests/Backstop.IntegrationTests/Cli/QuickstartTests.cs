using System.Security.Cryptography;
using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Microsoft.Data.Sqlite;

namespace Backstop.IntegrationTests.Cli;

/// <summary>The README's first command, and the promise that stock tools alone restore what it stored.</summary>
public sealed class QuickstartTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "Backstop.slnx")))
            {
                d = d.Parent;
            }

            return d?.FullName ?? throw new InvalidOperationException("repository root not found");
        }
    }

    private void CopyQuickstart()
    {
        var src = Path.Combine(RepoRoot, "examples", "quickstart");
        File.Copy(Path.Combine(src, "backstop.yaml"), _box.Config);
        var r = Sandbox.Exec("cp", "-a", Path.Combine(src, "sample"), _box["sample"]);
        Assert.Equal(0, r.ExitCode);
    }

    [Fact]
    public void Quickstart_runs_and_reports_ok()
    {
        CopyQuickstart();
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("sample-files: snapshot", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("committed", run.Stdout, StringComparison.Ordinal);

        var status = _box.Run("status");
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("sample-db", status.Stdout, StringComparison.Ordinal);

        var json = _box.Run("status", "--json");
        using var doc = JsonDocument.Parse(json.Stdout);
        var sources = doc.RootElement.GetProperty("sources").EnumerateArray().ToList();
        Assert.Equal(2, sources.Count);
        Assert.All(sources, s => Assert.Equal("ok", s.GetProperty("state").GetString()));
        // Exactly the DESIGN contract.
        Assert.Equal(["name", "kind", "state", "last_valid", "last_run", "rpo_seconds", "rpo_met", "last_drill"],
            sources[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal(["snapshot", "finished_at", "stored_bytes", "verified_copies", "copies"],
            sources[0].GetProperty("last_valid").EnumerateObject().Select(p => p.Name));
        Assert.Equal(["snapshot", "state", "error"], sources[0].GetProperty("last_run").EnumerateObject().Select(p => p.Name));
        Assert.Equal(1, sources[0].GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
        Assert.Equal(86400, sources[0].GetProperty("rpo_seconds").GetInt64());
        Assert.EndsWith("Z", sources[0].GetProperty("last_valid").GetProperty("finished_at").GetString(), StringComparison.Ordinal);

        var verify = _box.Run("verify", "--deep");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Contains("3 copies read back and hashed: all verified", verify.Stdout, StringComparison.Ordinal); // files.tar, its listing, app.db
    }

    [Fact]
    public void Stock_zstd_and_tar_alone_restore_the_files_identically()
    {
        CopyQuickstart();
        Assert.Equal(0, _box.Run("run", "--source", "sample-files").ExitCode);
        var stored = Directory.GetFiles(_box["backups/sample-files"], "files.tar.zst", SearchOption.AllDirectories).Single();
        var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(stored)!, "MANIFEST.json")));
        var recipe = manifest.RootElement.GetProperty("artifacts")[0].GetProperty("restore").GetString()!;
        Assert.Equal("mkdir -p DEST && zstd -dc files.tar.zst | tar -x --incremental --xattrs --xattrs-include='*' --acls -pf - -C DEST", recipe);

        // The recipe, run literally with the stored file and a destination.
        var dest = _box["restored"];
        var r = _box.Shell(recipe.Replace("files.tar.zst", $"'{stored}'", StringComparison.Ordinal).Replace("DEST", $"'{dest}'", StringComparison.Ordinal));
        Assert.True(r.ExitCode == 0, r.ToString());
        var original = _box["sample/files"];
        var restored = Path.Combine(dest, original.TrimStart('/'));
        Assert.Equal(Hashes(original), Hashes(restored));
        Assert.Equal("../config/app.yaml", new FileInfo(Path.Combine(restored, "docs/app-config-link.yaml")).LinkTarget);
    }

    [Fact]
    public void Stock_zstd_alone_restores_the_sqlite_database_with_the_same_rows()
    {
        CopyQuickstart();
        Assert.Equal(0, _box.Run("run", "--source", "sample-db").ExitCode);
        var stored = Directory.GetFiles(_box["backups/sample-db"], "app.db.zst", SearchOption.AllDirectories).Single();
        var r = _box.Shell($"zstd -d < '{stored}' > restored.db");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(Rows(_box["sample/app.db"]), Rows(_box["restored.db"]));
    }

    private static Dictionary<string, string> Hashes(string root) =>
        Directory.GetFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => new FileInfo(f).LinkTarget is null)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    private static string Rows(string db)
    {
        SQLitePCL.Batteries_V2.Init();
        using var c = new SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT (SELECT COUNT(*) FROM customers) || '/' || (SELECT COUNT(*) FROM orders) || '/' || (SELECT SUM(total_cents) FROM orders)";
        return (string)cmd.ExecuteScalar()!;
    }
}
