using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Command;
using Backstop.Sources.Files;
using Backstop.Sources.Sqlite;
using Backstop.Targets.Local;

namespace Backstop.Tests.Support;

/// <summary>The real kinds, plus a "test" target kind that hands out targets made by the test.</summary>
public sealed class TestPlugins
{
    public Dictionary<string, ITarget> Targets { get; } = new(StringComparer.Ordinal);

    public PluginRegistry Registry => new(
        [new FilesSourceKind(), new SqliteSourceKind(), new CommandSourceKind(), new TestSourceKind(this)],
        [new LocalTargetKind(), new TestTargetKind(Targets)]);

    private sealed record TestOptions;

    /// <summary>What the "test" source writes, the facts it reports, and what its format check finds or throws.</summary>
    public byte[] Content { get; set; } = "test content"u8.ToArray();

    public Dictionary<string, long> Reported { get; set; } = new() { ["items"] = 1 };

    public Func<IReadOnlyDictionary<string, long>>? Found { get; set; }

    private sealed class TestSourceKind(TestPlugins plugins) : SourceKind<TestOptions>
    {
        public override string Kind => "test";

        public override IReadOnlyList<string> Facts { get; } = ["items"];

        public override IReadOnlyList<string> CountFacts { get; } = ["items"];

        public override TestOptions Parse(ConfigMap map) => new();

        public override IReadOnlyList<KeyDoc> Keys => [];

        public override ISource Create(SourceDefinition definition, TestOptions options) => new TestSource(plugins);
    }

    private sealed class TestSource(TestPlugins plugins) : ISource, IArtifactValidator
    {
        public Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken) => Task.FromResult(SourcePreflight.None);

        public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
        {
            await using var a = await sink.BeginArtifactAsync("test.bin", cancellationToken);
            await a.Content.WriteAsync(plugins.Content, cancellationToken);
            await a.CompleteAsync(plugins.Reported, cancellationToken);
        }

        public IArtifactValidator? ValidatorFor(string artifactName) => plugins.Found is null ? null : this;

        public string RestoreRecipe(string artifactName, string storedFile) => $"zstd -d < {storedFile} > DEST/{artifactName}";

        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            var buffer = new MemoryStream();
            await content.CopyToAsync(buffer, cancellationToken);
            Assert.Equal(plugins.Content, buffer.ToArray()); // the check sees exactly the raw bytes
            return plugins.Found!();
        }
    }

    private sealed class TestTargetKind(Dictionary<string, ITarget> targets) : TargetKind<TestOptions>
    {
        public override string Kind => "test";

        public override TestOptions Parse(ConfigMap map) => new();

        public override IReadOnlyList<KeyDoc> Keys => [];

        public override ITarget Create(TargetDefinition definition, TestOptions options) => targets[definition.Name];
    }
}
