using System.Globalization;
using Backstop.Sources.Processes;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Scratch;

/// <summary>
/// What every drill on a scratch server shares (Redis, etcd, MariaDB, PostgreSQL): the server program found, or a message
/// naming what the drill needs it for and the package that has it; its version said; the facts a started server reports
/// compared with the snapshot's, one check each; and, for a kind whose stored file a server loads, a folder scratch whose
/// load phase starts the server and whose end stops it. The server itself is a <see cref="ScratchServer"/> (its own user,
/// loopback, its process group killed at the end).
/// </summary>
public static class ScratchServerDrill
{
    /// <summary>
    /// The first of <paramref name="programs"/> found in PATH; else a message: what the drill needs it for, the package,
    /// and what else would do (<paramref name="otherwise"/>: "set drill.server").
    /// </summary>
    public static string Resolve(string source, string purpose, string package, string? otherwise, params string[] programs)
    {
        ArgumentNullException.ThrowIfNull(programs);
        foreach (var program in programs.SkipLast(1))
        {
            try
            {
                return ChildProcess.ResolveTool(program);
            }
            catch (BackupException)
            {
                // the next name
            }
        }

        try
        {
            return ChildProcess.ResolveTool(programs[^1]);
        }
        catch (BackupException e)
        {
            throw new BackupException($"source '{source}': the drill {purpose}: {e.Message} (apt-get install {package}){(otherwise is null ? "" : ", or " + otherwise)}");
        }
    }

    /// <summary>What a program prints for <paramref name="args"/> (<c>--version</c> by default), its first line.</summary>
    public static async Task<string> VersionAsync(string program, CancellationToken cancellationToken, params string[] args)
    {
        string[] argv = args.Length == 0 ? ["--version"] : args;
        using var output = new MemoryStream();
        await ChildProcess.RunToStreamAsync(program, argv, new Dictionary<string, string>(), "/", output, TimeSpan.FromSeconds(30),
            $"{program} {string.Join(' ', argv)}", cancellationToken).ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(output.ToArray()).Split('\n')[0].Trim();
    }

    /// <summary>One check per fact the snapshot recorded for <paramref name="artifact"/>: what the scratch server (<paramref name="where"/>) reports against it.</summary>
    public static IReadOnlyList<DrillCheck> Compare(DrillScope scope, string artifact, string where, params (string Fact, long Found)[] found)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentNullException.ThrowIfNull(found);
        var recorded = scope.Artifacts.Single(a => a.Name == artifact).Facts;
        return
        [
            .. found.Where(f => recorded.ContainsKey(f.Fact)).Select(f => new DrillCheck($"{f.Fact} in {where}",
                recorded[f.Fact].ToString(CultureInfo.InvariantCulture), f.Found.ToString(CultureInfo.InvariantCulture), recorded[f.Fact] == f.Found)),
        ];
    }

    /// <summary>
    /// A folder scratch the stored file is restored into, whose load phase starts the server on it (<paramref name="start"/>),
    /// whose checks then run (<paramref name="check"/>), and whose end stops the server.
    /// </summary>
    public static FolderScratch Loading(string description, string folder, IReadOnlyDictionary<string, string> tools,
        Func<CancellationToken, Task<ScratchServer>> start, Func<CancellationToken, Task<IReadOnlyList<DrillCheck>>> check)
    {
        ArgumentNullException.ThrowIfNull(start);
        ScratchServer? running = null;
        return new FolderScratch(description, folder, check, tools, load: async ct => running = await start(ct).ConfigureAwait(false), stop: async () =>
        {
            if (running is not null)
            {
                await running.DisposeAsync().ConfigureAwait(false);
            }
        });
    }
}
