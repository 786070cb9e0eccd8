namespace Backstop.Core.Config;

/// <summary><c>machine:</c> (this configuration's machine; <c>BACKSTOP_MACHINE</c> over it) and <c>group:</c>.</summary>
internal static class MachineBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("group", "backup", "A group that shares the catalog and its folder (0660, 2770) with a second user (postgres running wal-push)")
            { Default = "none: every file Backstop writes is 0600, every folder 0700" },
        new("machine", "vps1", "The machine this configuration runs on: its sources and local targets live there unless they say otherwise") { Default = "this host's name" },
    ];

    /// <summary>
    /// BACKSTOP_MACHINE over <c>machine:</c> (one configuration for a fleet, each agent its own name: a DaemonSet's node
    /// name), else this host's name.
    /// </summary>
    public static string Machine(ConfigMap top) => FromEnvironment(top) ?? NameOf(top) ?? BackstopConfig.ThisHost;

    public static string? Group(ConfigMap top) =>
        top.String("group") is { } g
            ? FileSystem.PosixUsers.GroupId(g) is not null ? g : throw top.Error("group", $"no group named '{g}' exists on this host; create it (groupadd {g}) or name another")
            : null;

    /// <summary>A <c>machine:</c> key (top level, a source, a target): a name, or null when absent.</summary>
    public static string? NameOf(ConfigMap map, string key = "machine") =>
        map.String(key) is not { } m ? null
        : ConfigLoader.IsValidName(m) ? m
        : throw map.Error(key, $"'{m}' is not a machine name: use letters, digits, '.', '_' and '-'");

    /// <summary>The agent's own name from <c>BACKSTOP_MACHINE</c>, when set (refused where the top-level <c>machine:</c> is, when not a name).</summary>
    private static string? FromEnvironment(ConfigMap top) =>
        Environment.GetEnvironmentVariable("BACKSTOP_MACHINE") is not { Length: > 0 } m ? null
        : ConfigLoader.IsValidName(m) ? m
        : throw new ConfigException(top.Location, $"BACKSTOP_MACHINE='{m}' is not a machine name: use letters, digits, '.', '_' and '-'");
}
