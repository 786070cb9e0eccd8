using Backstop.Core.Plugins;

namespace Backstop.Core.Config;

/// <summary>The targets read, their names in the file's order, and whether any could not be read (later checks then hold back).</summary>
internal sealed record TargetSettings(IReadOnlyList<TargetDefinition> Targets, IReadOnlyList<string> Names, bool HadErrors);

/// <summary><c>targets:</c> where copies go; the keys every target has, then its kind's (the kind parses those).</summary>
internal static class TargetsBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("name", "nas", "The target's name (letters, digits, '.', '_', '-'); it becomes a folder name"),
        new("kind", "sftp", "The kind of target (see below)"),
        new("timeout", "10m", "Bound of each operation on the target; a hung target fails its copy"),
        new("retries", "3", "Retries of idempotent operations (reads, lists, deletes); writes are never replayed"),
        new("machine", "nas", "The machine its copies live on (what a disaster scenario loses)") { Default = "the configuration's machine for a local folder, else a machine of its own named after the target" },
    ];

    public static TargetSettings Parse(ConfigMap top, PluginRegistry plugins, CatalogSettings catalog, string machine)
    {
        var document = top.Document;
        var targets = new List<TargetDefinition>();
        var names = new List<string>();
        var list = ConfigLoader.Block(document, () => top.MapList("targets"));
        var errors = list is null;
        foreach (var t in list ?? [])
        {
            errors |= ConfigLoader.Block<bool?>(document, () =>
            {
                var name = ConfigLoader.CheckName(t, "target");
                if (names.Contains(name))
                {
                    throw t.Error("name", $"a target named '{name}' is already defined; target names must be unique");
                }

                names.Add(name);
                targets.Add(One(t, name, plugins, catalog, machine));
                return true;
            }) is null;
        }

        if (names.Count == 0 && !errors)
        {
            document.Report(new ConfigException(top.LocationOf("targets"), "targets: at least one target is needed (for example {name: local, kind: local, path: ./backups})"));
        }

        return new TargetSettings(targets, names, errors);
    }

    private static TargetDefinition One(ConfigMap t, string name, PluginRegistry plugins, CatalogSettings catalog, string machine)
    {
        var kindName = t.RequireString("kind");
        var kind = plugins.Target(kindName)
                   ?? throw t.Error("kind", $"unknown target kind '{kindName}'; known kinds: {string.Join(", ", plugins.TargetKinds)}");
        var timeout = t.Timeout("timeout", TargetDefinition.DefaultTimeout);
        var retries = t.IntOr("retries", TargetDefinition.DefaultRetries, 0, 10);
        var options = kind.ParseOptions(t);
        var explicitMachine = MachineBlock.NameOf(t);
        if (catalog.Server is not null && kind.LivesWithRunner && explicitMachine is null)
        {
            // Each machine's folder is its own, and the shared catalog knows copies by target name.
            throw t.Error("kind", $"with a shared catalog (catalog.url), a '{kindName}' target names the machine whose folder it is (machine: NAME): " +
                                  "the same name on two machines would be two places the catalog takes for one; give each machine's its own name");
        }

        t.EnsureAllKeysKnown();
        return new TargetDefinition(name, kindName, options, t.Location, timeout, retries)
        {
            StateDirectory = Path.Combine(Path.GetDirectoryName(catalog.Path)!, "private", name),
            Machine = explicitMachine ?? (kind.LivesWithRunner ? machine : name),
        };
    }
}
