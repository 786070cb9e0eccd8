using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Restore;
using Backstop.Core.Run;
using Backstop.Targets.Local;
using Backstop.Tests.Support;

namespace Backstop.Tests.Conformance;

/// <summary>
/// The contract every source kind keeps, run in-process through Core (the run, the read-back, the restore) with only
/// that kind and a local folder registered: a kind that needs no server is picked up here by a subclass of a few lines,
/// the example kind of docs/architecture.md among them. What a kind says of itself (keys, facts, restore form) is
/// checked, a snapshot of its data is valid with the facts it counted, every artifact has a stock recipe, each one it
/// restores comes back with the facts recorded, and a misspelt key of its block is refused at its place. The real
/// servers' kinds run the same capture-and-restore in the integration suite's <c>SourceConformance</c>.
/// </summary>
public abstract class SourceKindConformance : IDisposable
{
    protected TempDir Dir { get; } = new();

    /// <summary>The kind under test.</summary>
    protected abstract ISourceKind Kind { get; }

    /// <summary>Puts data in <see cref="Dir"/>; returns the source's block (one list item named s).</summary>
    protected abstract string Fill();

    public void Dispose()
    {
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }

    private PluginRegistry Registry => new([Kind], [new LocalTargetKind()]);

    private string Yaml(string source) =>
        $"catalog: {Dir["state/catalog.db"]}\ntargets:\n  - {{ name: local, kind: local, path: {Dir["backups"]} }}\nsources:\n{source}";

    [Fact]
    public void The_kind_says_what_it_is_and_its_reference_example_parses()
    {
        Assert.Matches("^[a-z0-9]+$", Kind.Kind);
        Assert.False(string.IsNullOrWhiteSpace(Kind.Summary), $"{Kind.Kind}: no summary (the reference and the README show it)");
        Assert.False(string.IsNullOrWhiteSpace(Kind.RestoreTo), $"{Kind.Kind}: restore --to help needs RestoreTo");
        Assert.NotEmpty(Kind.Keys);
        Assert.All(Kind.CountFacts, f => Assert.Contains(f, Kind.Facts));
        var example = Cli.Docs.ConfigReferenceDocument.SourceExample(Registry, Kind.Kind);
        var config = ConfigLoader.Parse(example, "/etc/backstop/backstop.yaml", Registry);
        Assert.Equal(Kind.Kind, Assert.Single(config.Sources).Kind);
    }

    [Fact]
    public void A_misspelt_key_of_its_block_is_refused_at_its_place()
    {
        var block = Fill().TrimEnd('\n');
        var wrong = block.EndsWith('}') ? block[..^1].TrimEnd() + ", nonsense_key: 1 }\n" : block + "\n    nonsense_key: 1\n";
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Yaml(wrong), Dir["backstop.yaml"], Registry));
        Assert.Contains(e.Errors, x => x.UnknownKey && x.Location is { Line: > 0 } && x.Message.Contains("nonsense_key", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_snapshot_is_valid_with_its_facts_and_each_artifact_restores_with_the_facts_recorded()
    {
        var config = ConfigLoader.Parse(Yaml(Fill()), Dir["backstop.yaml"], Registry);
        using var catalog = CatalogStore.Open(config.CatalogPath);
        var snapshot = Assert.Single(await new BackupRunner(config, Registry, catalog, new RunObserver()).RunAsync([], CancellationToken.None));
        Assert.True(snapshot.State == SnapshotState.Committed, $"{Kind.Kind}: {snapshot.State} {snapshot.Error}");
        Assert.True(catalog.Snapshot(snapshot.Id)!.IsValid(1), $"{Kind.Kind}: the snapshot is not valid");
        Assert.NotEmpty(snapshot.Artifacts);

        var def = config.Sources[0];
        var source = Kind.Create(def);
        Assert.All(snapshot.Artifacts, a => Assert.False(string.IsNullOrWhiteSpace(source.RestoreRecipe(a.Name, a.FileName)), $"{a.Name}: no stock recipe"));
        if (source.Capability<IRestorable>() is not { } restorable)
        {
            return;
        }

        foreach (var artifact in snapshot.Artifacts.Where(a => restorable.Restores(a.Name)))
        {
            var into = Dir["restored/" + Guid.NewGuid().ToString("N")];
            var restored = Assert.Single(await new Restorer(config, Registry, catalog).RestoreAsync(def, catalog.Snapshot(snapshot.Id)!, artifact.Name, into, false,
                CancellationToken.None));
            Assert.Null(restored.Mismatch);
            foreach (var fact in Kind.CountFacts.Where(artifact.Facts.ContainsKey))
            {
                Assert.Equal(artifact.Facts[fact], restored.Found[fact]);
            }
        }
    }
}

/// <summary>The example kind (tests/Backstop.ExampleKind: the public contract only).</summary>
public sealed class LinesKindConformance : SourceKindConformance
{
    protected override ISourceKind Kind { get; } = new ExampleKind.LinesSourceKind();

    protected override string Fill()
    {
        Dir.Write("data/motd.txt", "one\ntwo\nthree, with no newline at its end");
        return $"  - {{ name: s, kind: lines, path: {Dir["data/motd.txt"]} }}\n";
    }
}

public sealed class FilesKindConformance : SourceKindConformance
{
    protected override ISourceKind Kind { get; } = new global::Backstop.Sources.Files.FilesSourceKind();

    protected override string Fill()
    {
        Dir.Write("data/a.txt", "a");
        Dir.Write("data/sub/b.txt", "bb");
        return $"  - {{ name: s, kind: files, paths: [{Dir["data"]}] }}\n";
    }
}

public sealed class SqliteKindConformance : SourceKindConformance
{
    protected override ISourceKind Kind { get; } = new global::Backstop.Sources.Sqlite.SqliteSourceKind();

    protected override string Fill()
    {
        var path = Dir["data/app.db"];
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);";
            cmd.ExecuteNonQuery();
        }

        return $"  - {{ name: s, kind: sqlite, path: {path} }}\n";
    }
}

public sealed class CommandKindConformance : SourceKindConformance
{
    protected override ISourceKind Kind { get; } = new global::Backstop.Sources.Command.CommandSourceKind();

    protected override string Fill() => "  - { name: s, kind: command, command: [/bin/sh, -c, 'printf hello'], artifact: out.txt }\n";
}
