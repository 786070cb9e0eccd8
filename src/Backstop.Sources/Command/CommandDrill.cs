using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Scratch;

namespace Backstop.Sources.Command;

/// <summary>
/// <c>drill: {command: [program, args…], timeout: 1h}</c>: a program that proves the restored file is usable (a
/// parser, an import into a scratch system). It gets the restored file's path as its last argument, or wherever an
/// argument is exactly <c>{file}</c>; exit 0 passes.
/// </summary>
public sealed record CommandDrillOptions(IReadOnlyList<string> Command, TimeSpan Timeout);

public sealed partial class CommandSourceKind
{
    public override CommandDrillOptions? ParseDrill(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var argv = map.StringList("command");
        var timeout = map.Timeout("timeout", TimeSpan.FromHours(1));
        if (argv is null)
        {
            return null;
        }

        return argv.Count == 0 || argv[0].Length == 0
            ? throw map.Error("command", "a drill command is a list: [program, arg1, …]; the restored file's path is added last, or where an argument is {file}")
            : new CommandDrillOptions(argv, timeout);
    }
}

internal sealed class CommandDrill(string name, CommandDrillOptions? drillOptions) : IDrillable
{
    public Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var folder = FolderScratch.Create(scope, "command");
        var drill = drillOptions;
        var tools = new Dictionary<string, string>();
        string? program = null;
        if (drill is not null)
        {
            try
            {
                program = ChildProcess.ResolveTool(drill.Command[0]);
                tools["drill.command"] = program;
            }
            catch (BackupException e)
            {
                throw new BackupException($"source '{name}': drill.command: {e.Message}");
            }
        }
        else
        {
            scope.Note("no drill.command is configured: only the restored bytes are compared; a command that reads the file proves more");
        }

        return Task.FromResult<IDrillScratch>(new FolderScratch($"the scratch folder {folder}", folder, async ct =>
        {
            if (drill is null)
            {
                return [];
            }

            var checks = new List<DrillCheck>();
            foreach (var artifact in scope.Artifacts)
            {
                var file = Core.Text.SafeNames.Inside(folder, artifact.Name);
                var args = drill.Command.Skip(1).Select(a => a == "{file}" ? file : a).ToList();
                if (!drill.Command.Skip(1).Contains("{file}"))
                {
                    args.Add(file);
                }

                var what = $"drill.command {string.Join(' ', drill.Command)}";
                try
                {
                    await ChildProcess.RunToStreamAsync(program!, args, new Dictionary<string, string>(), folder, Stream.Null, drill.Timeout, what, ct).ConfigureAwait(false);
                    checks.Add(new DrillCheck($"{artifact.Name}: {what}", "exit 0", "exit 0", true));
                }
                catch (BackupException e)
                {
                    checks.Add(new DrillCheck($"{artifact.Name}: {what}", "exit 0", e.Message, false));
                }
            }

            return checks;
        }, tools));
    }
}
