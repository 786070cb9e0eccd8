using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Targets.Common;

namespace Backstop.Targets.Rclone;

public sealed record RcloneOptions(string Remote, string? ConfigFile, string? Program);

/// <summary><c>kind: rclone</c>: any remote already configured for rclone (Google Drive, OneDrive, B2, WebDAV…), as <c>name:path</c>.</summary>
public sealed class RcloneTargetKind : TargetKind<RcloneOptions>
{
    public override string Kind => "rclone";

    public override string Summary => "Any remote of `rclone config` (Google Drive, OneDrive, Dropbox…).";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("remote", "\"gdrive:backups\"", "An rclone remote and path (see rclone listremotes)"),
        new("config", "/etc/backstop/rclone.conf", "The rclone configuration file") { Default = "rclone's own" },
        new("rclone", "/usr/local/bin/rclone", "The rclone program") { Default = "rclone on PATH" },
    ];

    public override RcloneOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var remote = map.RequireString("remote");
        var colon = remote.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || remote[..colon].Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or ' ')))
        {
            throw map.Error("remote", $"'{remote}' is not an rclone remote: write it as name:path, e.g. gdrive:backups (see 'rclone listremotes')");
        }

        return new RcloneOptions(remote, map.PathValue("config"), map.PathValue("rclone"));
    }

    public override ITarget Create(TargetDefinition definition, RcloneOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(options);
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (options.ConfigFile is { } config)
        {
            env["RCLONE_CONFIG"] = config;
        }

        return new RcloneTarget(definition.Name, options.Remote, env, options.Program, options.Remote);
    }
}
