using System.Globalization;
using System.Text.RegularExpressions;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;

namespace Backstop.Sources.Postgres;

/// <summary>
/// pg_dump, pg_dumpall and pg_restore resolved to absolute paths: the configured path, else PATH, else the
/// newest <c>/usr/lib/postgresql/*/bin</c>. Each must be at least the server's major version.
/// </summary>
internal sealed partial record PostgresTools(string PgDump, string PgDumpAll, string PgRestore, int Major, string Version)
{
    public const string ClusterDir = "/usr/lib/postgresql";

    [GeneratedRegex(@"\(PostgreSQL\) (\d+)(?:\.(\d+))?")]
    private static partial Regex VersionPattern();

    public static async Task<PostgresTools> ResolveAsync(string source, IReadOnlyDictionary<string, string> configured, CancellationToken ct)
    {
        var dump = Resolve(source, "pg_dump", configured);
        var dumpAll = Resolve(source, "pg_dumpall", configured);
        var restore = Resolve(source, "pg_restore", configured);
        var versions = await Task.WhenAll(new[] { dump, dumpAll, restore }.Select(t => VersionOfAsync(source, t, ct))).ConfigureAwait(false);
        var (major, version) = versions[0];
        for (var i = 1; i < versions.Length; i++)
        {
            if (versions[i].Major != major)
            {
                throw new BackupException(
                    $"source '{source}': {(i == 1 ? dumpAll : restore)} is version {versions[i].Version} but {dump} is {version}; use tools of one PostgreSQL version");
            }
        }

        return new PostgresTools(Direct(dump, major), Direct(dumpAll, major), Direct(restore, major), major, version);
    }

    /// <summary>One tool (pg_basebackup) resolved like the others, with its major version and version text.</summary>
    public static async Task<(string Path, int Major, string Version)> ResolveOneAsync(string source, string tool, IReadOnlyDictionary<string, string> configured,
        CancellationToken ct)
    {
        var path = Resolve(source, tool, configured);
        var (major, version) = await VersionOfAsync(source, path, ct).ConfigureAwait(false);
        return (Direct(path, major), major, version);
    }

    /// <summary>
    /// Debian's <c>pg_wrapper</c> (what <c>/usr/bin/pg_dump</c> is there) is a Perl script that picks a version and
    /// execs <c>/usr/lib/postgresql/VERSION/bin/TOOL</c>: ≈20 ms of Perl per run, on every dump. Once its
    /// <c>--version</c> has said which major it picks, that binary is run directly: the same program, the same
    /// choice. Anything else (a configured path, a real binary on PATH) is left as it is.
    /// </summary>
    internal static string Direct(string tool, int major)
    {
        string? real;
        try
        {
            real = new FileInfo(tool).ResolveLinkTarget(returnFinalTarget: true)?.FullName;
        }
        catch (IOException)
        {
            return tool;
        }

        if (real is null || Path.GetFileName(real) != "pg_wrapper")
        {
            return tool;
        }

        var direct = Path.Combine(ClusterDir, major.ToString(CultureInfo.InvariantCulture), "bin", Path.GetFileName(tool));
        return File.Exists(direct) ? direct : tool;
    }

    private static string Resolve(string source, string tool, IReadOnlyDictionary<string, string> configured)
    {
        if (configured.TryGetValue(tool, out var path))
        {
            try
            {
                return ChildProcess.ResolveTool(path);
            }
            catch (BackupException e)
            {
                throw new BackupException($"source '{source}': tools.{tool}: {e.Message}");
            }
        }

        var searched = new List<string>();
        try
        {
            return ChildProcess.ResolveTool(tool);
        }
        catch (BackupException)
        {
            searched.Add("PATH (" + (Environment.GetEnvironmentVariable("PATH") ?? "") + ")");
        }

        var clusters = Directory.Exists(ClusterDir)
            ? Directory.GetDirectories(ClusterDir)
                .Select(d => (Dir: d, Major: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var m) ? m : -1))
                .Where(d => d.Major > 0).OrderByDescending(d => d.Major).ToList()
            : [];
        foreach (var (dir, _) in clusters)
        {
            var candidate = Path.Combine(dir, "bin", tool);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        searched.Add($"{ClusterDir}/*/bin");
        throw new BackupException(
            $"source '{source}': {tool} was not found in {string.Join(" nor in ", searched)}; install the PostgreSQL client (apt-get install postgresql-client) or set tools.{tool}");
    }

    private static async Task<(int Major, string Version)> VersionOfAsync(string source, string tool, CancellationToken ct)
    {
        var output = new MemoryStream();
        await ChildProcess.RunToStreamAsync(tool, ["--version"], new Dictionary<string, string>(), "/", output,
            TimeSpan.FromSeconds(30), $"source '{source}': {tool} --version", ct).ConfigureAwait(false);
        var text = System.Text.Encoding.UTF8.GetString(output.ToArray()).Trim();
        var m = VersionPattern().Match(text);
        if (!m.Success)
        {
            throw new BackupException($"source '{source}': cannot tell the version of {tool} from '{text}'");
        }

        return (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Success ? $"{m.Groups[1].Value}.{m.Groups[2].Value}" : m.Groups[1].Value);
    }

    /// <summary>
    /// The folder of the server binaries: <c>drill.bin</c>, else <c>/usr/lib/postgresql/MAJOR/bin</c> for the dump's
    /// major version, else the newest installed that is not older than it.
    /// </summary>
    internal static (string Bin, int Major) ServerBinaries(string source, string? configured, int? dumpMajor)
    {
        static bool Has(string bin) => File.Exists(Path.Combine(bin, "initdb")) && File.Exists(Path.Combine(bin, "postgres"));
        if (configured is not null)
        {
            return Has(configured)
                ? (configured, int.TryParse(Path.GetFileName(Path.GetDirectoryName(configured)), NumberStyles.None, CultureInfo.InvariantCulture, out var m) ? m : dumpMajor ?? 0)
                : throw new BackupException($"source '{source}': drill.bin {configured} has no initdb and postgres; name the folder of the PostgreSQL server binaries");
        }

        var installed = Directory.Exists(PostgresTools.ClusterDir)
            ? Directory.GetDirectories(PostgresTools.ClusterDir)
                .Select(d => (Bin: Path.Combine(d, "bin"), Major: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : -1))
                .Where(d => d.Major > 0 && Has(d.Bin)).OrderBy(d => d.Major).ToList()
            : [];
        var exact = installed.FirstOrDefault(i => i.Major == dumpMajor);
        if (exact.Bin is not null)
        {
            return exact;
        }

        var newer = installed.LastOrDefault(i => dumpMajor is null || i.Major > dumpMajor);
        return newer.Bin is not null
            ? newer
            : throw new BackupException(
                $"source '{source}': the drill needs PostgreSQL server binaries (initdb, postgres){(dumpMajor is { } dm ? $" of version {dm} or newer" : "")} for its throwaway cluster, " +
                $"and {PostgresTools.ClusterDir}/*/bin has none: install postgresql{(dumpMajor is { } dm2 ? $"-{dm2}" : "")}, set drill.bin, or set drill.server to a server for scratch databases");
    }
}
