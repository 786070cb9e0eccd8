namespace Backstop.Core.Plugins;

/// <summary>The explicit lists of source and target kinds the program knows (no reflection).</summary>
public sealed class PluginRegistry
{
    private readonly Dictionary<string, ISourceKind> _sources = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ITargetKind> _targets = new(StringComparer.Ordinal);

    public PluginRegistry(IEnumerable<ISourceKind> sources, IEnumerable<ITargetKind> targets)
    {
        foreach (var s in sources)
        {
            _sources.Add(s.Kind, s);
        }

        foreach (var t in targets)
        {
            _targets.Add(t.Kind, t);
        }
    }

    public IEnumerable<string> SourceKinds => _sources.Keys.Order(StringComparer.Ordinal);

    public IEnumerable<string> TargetKinds => _targets.Keys.Order(StringComparer.Ordinal);

    public ISourceKind? Source(string kind) => _sources.GetValueOrDefault(kind);

    public ITargetKind? Target(string kind) => _targets.GetValueOrDefault(kind);
}
