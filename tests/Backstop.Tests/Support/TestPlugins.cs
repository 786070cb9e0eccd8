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
        [new FilesSourceKind(), new SqliteSourceKind(), new CommandSourceKind()],
        [new LocalTargetKind(), new TestTargetKind(Targets)]);

    private sealed record TestOptions;

    private sealed class TestTargetKind(Dictionary<string, ITarget> targets) : TargetKind<TestOptions>
    {
        public override string Kind => "test";

        public override TestOptions Parse(ConfigMap map) => new();

        public override ITarget Create(TargetDefinition definition, TestOptions options) => targets[definition.Name];
    }
}
