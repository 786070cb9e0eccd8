using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Command;

public sealed record CommandOptions(
    IReadOnlyList<string> Command,
    IReadOnlyList<(string Name, SecretRef Value)> Environment,
    TimeSpan Timeout,
    string Artifact,
    string WorkingDirectory);

/// <summary>
/// The stdout of a command is the artifact. A non-zero exit, a timeout or empty output fails it, with the tail of
/// stderr in the error. No shell is involved: <c>command</c> is an argument vector.
/// </summary>
public sealed partial class CommandSourceKind : SourceKind<CommandOptions, CommandDrillOptions>
{
    public override string Kind => "command";

    public override string Summary => "Any program whose standard output is the backup (no shell).";

    public override string RestoreTo => "a file";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("command", "[/usr/local/bin/export-ledger, --format, json]", "The program and its arguments; its standard output is the artifact; no shell; runs in this file's folder") { Default = "required" },
        new("env", "{API_TOKEN: \"env:LEDGER_TOKEN\"}", "Environment variables for it; values are secrets (env:NAME, file:PATH)"),
        new("artifact", "ledger.json", "The artifact's file name"),
        new("timeout", "30m", "The most the command may take; it is killed after"),
        new("drill.command", "[/usr/local/bin/check-ledger, \"{file}\"]", "A program that reads the restored file (its path is added last, or replaces {file}); it must exit 0"),
        new("drill.timeout", "1h", "The most the drill command may take"),
    ];

    public override IReadOnlyList<string> Facts { get; } = ["bytes"];

    public override IReadOnlyList<string> CountFacts { get; } = [];

    public override CommandOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var argv = map.StringList("command");
        if (argv is null || argv.Count == 0 || argv[0].Length == 0)
        {
            throw new ConfigException(map.LocationOf("command"),
                $"{map.Path}.command: a command is required, as a list: [program, arg1, arg2] (no shell is used)");
        }

        var env = (map.StringMap("env") ?? []).Select(e => (e.Key, new SecretRef(e.Value, e.Location))).ToList();
        var timeout = map.Timeout("timeout", TimeSpan.FromHours(1));
        var artifact = map.StringOr("artifact", "output");
        if (!Core.Text.SafeNames.IsSafeFileName(artifact))
        {
            throw map.Error("artifact", "an artifact name is a plain file name (no '/', '\\', control character, '..' or leading '.'), like dump.sql");
        }

        // Commands run in the configuration file's folder, whatever the caller's (cron's is $HOME).
        return new CommandOptions(argv, env, timeout, artifact, map.ResolvePath("."));
    }

    public override ISource Create(SourceDefinition definition, CommandOptions options, CommandDrillOptions? drill) =>
        new CommandSource(definition.Name, options, new CommandDrill(definition.Name, drill));
}

internal sealed class CommandSource(string name, CommandOptions options, CommandDrill drill) : ISource, IStagedRestorable
{
    public T? Capability<T>() where T : class => drill as T ?? this as T;

    public async Task<StagedRestore> StageAsync(string artifactName, Stream content, string destination, bool force, CancellationToken cancellationToken)
    {
        var path = RestoreDestination.File(destination, artifactName, force);
        var aside = await Staging.WriteAsideAsync(path, content, cancellationToken).ConfigureAwait(false);
        return aside.Staged(new Dictionary<string, long> { ["bytes"] = aside.Bytes });
    }

    private string? _executable;

    public Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        try
        {
            _executable = ChildProcess.ResolveTool(options.Command[0]);
        }
        catch (BackupException e)
        {
            throw new BackupException($"source '{name}': {e.Message}");
        }

        return Task.FromResult(new SourcePreflight(new Dictionary<string, string> { [Path.GetFileName(_executable)] = _executable }, 0));
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var env = options.Environment.ToDictionary(e => e.Name, e => e.Value.Resolve(), StringComparer.Ordinal);
        await using var artifact = await sink.BeginArtifactAsync(options.Artifact, cancellationToken).ConfigureAwait(false);
        var what = $"source '{name}': command {Path.GetFileName(_executable)}";
        var bytes = await ChildProcess.RunToStreamAsync(_executable!, options.Command.Skip(1).ToList(), env, options.WorkingDirectory, artifact.Content,
            options.Timeout, what, cancellationToken).ConfigureAwait(false);
        if (bytes == 0)
        {
            throw new BackupException($"{what} printed nothing on stdout: an empty output is never a backup");
        }

        await artifact.CompleteAsync(new Dictionary<string, long> { ["bytes"] = bytes }, cancellationToken).ConfigureAwait(false);
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => null;

    public string RestoreRecipe(string artifactName, string storedFile) => $"zstd -d < {storedFile} > DEST/{Core.Text.ShellWord.QuoteIfNeeded(artifactName)}";
}
