using Backstop.Core.Config;
using Backstop.Core.Plugins;
using YamlDotNet.RepresentationModel;

namespace Backstop.Sources.Etcd;

/// <summary>
/// k3s' own etcd snapshots (its <c>etcd-snapshot</c> schedule, every 12 hours by default, into
/// <c>DATA/server/db/snapshots</c>): a second line of defence beside backstop's, which doctor checks is alive. A source
/// is k3s' etcd when its certificates live under <c>DATA/server/tls/etcd/</c>; the schedule, the folder and whether
/// snapshots are off come from k3s' configuration file.
/// </summary>
internal static class K3sSnapshots
{
    private const string TlsFolder = "/server/tls/etcd/";

    /// <summary>The k3s data folder the source's certificates place it in, or null when it is not k3s' etcd.</summary>
    public static string? DataDirectory(EtcdOptions options) =>
        new[] { options.CaCert, options.Cert, options.Key }.FirstOrDefault(p => p?.Contains(TlsFolder, StringComparison.Ordinal) == true) is { } path
            ? path[..path.IndexOf(TlsFolder, StringComparison.Ordinal)]
            : null;

    public static IReadOnlyList<Finding> Check(string source, EtcdOptions options, DateTimeOffset now)
    {
        if (DataDirectory(options) is not { } data)
        {
            return [];
        }

        var subject = $"source '{source}'";
        var configFile = options.K3sConfig;
        string cron = "0 */12 * * *", folder = Path.Combine(data, "server", "db", "snapshots");
        if (File.Exists(configFile))
        {
            YamlMappingNode? root;
            try
            {
                var yaml = new YamlStream();
                using var reader = new StreamReader(configFile);
                yaml.Load(reader);
                root = yaml.Documents.FirstOrDefault()?.RootNode as YamlMappingNode;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or YamlDotNet.Core.YamlException)
            {
                return [new Finding("k3s snapshots", subject, FindingStatus.Warn, $"k3s' configuration {configFile} cannot be read: {e.Message}", "let backstop read it, or set k3s_config")];
            }

            string? Value(string key) => root?.Children.TryGetValue(new YamlScalarNode(key), out var v) == true ? (v as YamlScalarNode)?.Value : null;
            if (Value("etcd-disable-snapshots") is "true" or "True")
            {
                return [new Finding("k3s snapshots", subject, FindingStatus.Ok, $"k3s' own etcd snapshots are off (etcd-disable-snapshots in {configFile}): backstop's are the only ones")];
            }

            cron = Value("etcd-snapshot-schedule-cron") ?? cron;
            folder = Value("etcd-snapshot-dir") ?? folder;
        }

        TimeSpan interval;
        try
        {
            interval = new Schedule(cron, Cronos.CronExpression.Parse(cron, Cronos.CronFormat.Standard), TimeZoneInfo.Utc).Interval(now);
        }
        catch (Cronos.CronFormatException e)
        {
            return [new Finding("k3s snapshots", subject, FindingStatus.Warn, $"k3s' etcd-snapshot-schedule-cron '{cron}' is not a schedule doctor reads: {e.Message}")];
        }

        FileInfo? newest;
        try
        {
            newest = new DirectoryInfo(folder).EnumerateFiles().Where(f => f.Name.StartsWith("etcd-snapshot", StringComparison.Ordinal) || f.Name.StartsWith("on-demand", StringComparison.Ordinal))
                .MaxBy(f => f.LastWriteTimeUtc);
        }
        catch (DirectoryNotFoundException)
        {
            newest = null; // never made: said below
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [new Finding("k3s snapshots", subject, FindingStatus.Warn, $"k3s' snapshot folder {folder} cannot be read: {e.Message}", "run doctor as a user that can read it (root on a k3s server)")];
        }

        var every = Quantities.FormatDuration(interval);
        if (newest is null)
        {
            return [new Finding("k3s snapshots", subject, FindingStatus.Fail, $"k3s' etcd-snapshot is on (every {every}, '{cron}') and {folder} holds no snapshot",
                "look at the k3s server's log for etcd-snapshot errors, or take one: k3s etcd-snapshot save")];
        }

        var age = now - new DateTimeOffset(newest.LastWriteTimeUtc, TimeSpan.Zero);
        return age > interval * 2
            ? [new Finding("k3s snapshots", subject, FindingStatus.Fail,
                $"k3s' newest etcd snapshot {newest.Name} is {Quantities.FormatDuration(age)} old, and k3s takes one every {every} ('{cron}'): its schedule stopped",
                "look at the k3s server's log for etcd-snapshot errors (a full disk, the folder's permissions)")]
            : [new Finding("k3s snapshots", subject, FindingStatus.Ok, $"k3s' newest etcd snapshot {newest.Name} is {Quantities.FormatDuration(age)} old (every {every})")];
    }
}
