using System.Globalization;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;

namespace Backstop.Core.Doctor;

/// <summary>
/// <c>doctor</c>: every preflight of every source and target without backing anything up (tools, credentials,
/// reachability; a probe object written, read back and deleted on each target; free space), then the health of what
/// the backups depend on: replication, coverage of the servers' databases, the crontabs and timers, single points of
/// failure, freshness against the RPO, drills, clocks and the configuration file's permissions. Findings only: it
/// changes nothing but its probe objects, which it removes.
/// </summary>
public sealed class DoctorRunner(BackstopConfig config, PluginRegistry plugins, CatalogStore catalog)
{
    /// <summary>The PATH an interactive shell has here (to tell what cron's PATH misses); the process's own by default.</summary>
    public string CurrentPath { get; init; } = Environment.GetEnvironmentVariable("PATH") ?? "";

    public async Task<IReadOnlyList<Finding>> RunAsync(IReadOnlyCollection<string> only, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(only);
        var findings = new List<Finding>();
        var sources = config.Sources.Where(s => only.Count == 0 || only.Contains(s.Name)).ToList();
        var targetNames = sources.SelectMany(s => s.Targets).ToHashSet(StringComparer.Ordinal);
        var targets = config.Targets.Where(t => only.Count == 0 || targetNames.Contains(t.Name)).ToList();

        long stagingNeeded = 0;
        foreach (var def in sources)
        {
            var (preflight, found) = await PreflightAsync(def, cancellationToken).ConfigureAwait(false);
            findings.AddRange(found);
            stagingNeeded += preflight?.StagingBytesNeeded ?? 0;
        }

        findings.Add(StagingSpace(stagingNeeded));
        foreach (var t in targets)
        {
            findings.AddRange(await TargetAsync(t, cancellationToken).ConfigureAwait(false));
        }

        findings.AddRange(await CoverageAsync(sources, cancellationToken).ConfigureAwait(false));
        findings.AddRange(Scenarios());
        findings.AddRange(SinglePointsOfFailure(sources));
        findings.AddRange(Freshness(sources));
        findings.AddRange(DrillIsolation(sources));
        findings.AddRange(Schedules());
        findings.AddRange(ConfigFile());
        return findings;
    }

    private async Task<(SourcePreflight? Preflight, List<Finding> Findings)> PreflightAsync(SourceDefinition def, CancellationToken ct)
    {
        var findings = new List<Finding>();
        var subject = $"source '{def.Name}' ({def.Kind})";
        var source = plugins.Source(def.Kind)!.Create(def);
        SourcePreflight preflight;
        try
        {
            preflight = await source.PreflightAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BackupException or ConfigException)
        {
            findings.Add(new Finding("preflight", subject, FindingStatus.Fail, e.Message, $"fix it, then 'backstop doctor --source {def.Name}'"));
            return (null, findings);
        }

        var tools = preflight.Tools.Count == 0 ? "reachable and readable" : string.Join(", ", preflight.Tools.Select(t => $"{t.Key} {t.Value}"));
        findings.Add(new Finding("preflight", subject, FindingStatus.Ok, tools));
        if (source.Capability<IHealthChecked>() is { } health)
        {
            try
            {
                findings.AddRange(await health.CheckHealthAsync(ct).ConfigureAwait(false));
            }
            catch (Exception e) when (e is BackupException or ConfigException or IOException)
            {
                findings.Add(new Finding("health", subject, FindingStatus.Fail, e.Message)); // the kind's own check could not run: not only replication
            }
        }

        return (preflight, findings);
    }

    private Finding StagingSpace(long needed)
    {
        var folder = config.StagingPath;
        var existing = folder;
        while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
        {
            existing = parent;
        }

        var free = DiskSpace.FreeBytes(existing);
        return free < needed
            ? new Finding("space", $"staging {folder}", FindingStatus.Fail,
                $"{Quantities.FormatSize(free)} free, the sources' captures need {Quantities.FormatSize(needed)}", "free space there, or set staging: to a larger disk")
            : new Finding("space", $"staging {folder}", FindingStatus.Ok, $"{Quantities.FormatSize(free)} free{(needed > 0 ? $", {Quantities.FormatSize(needed)} needed" : "")}");
    }

    /// <summary>The target's probe, a probe object written, read back and deleted, its free space against what the sources stored there last.</summary>
    private async Task<List<Finding>> TargetAsync(TargetDefinition definition, CancellationToken ct)
    {
        var findings = new List<Finding>();
        var subject = $"target '{definition.Name}' ({definition.Kind})";
        var target = Storage.GuardedTarget.Create(plugins, definition);
        var key = $".backstop-doctor/{Stale.Name("probe-")}";

        // The clock first: a skewed one is often why signed requests (and so the probe below) fail.
        var raw = plugins.Target(definition.Kind)!.Create(definition);
        var serverTime = raw is IServerClock clock ? await SafeAsync(() => clock.ServerTimeAsync(ct)).ConfigureAwait(false) : null;
        (raw as IDisposable)?.Dispose();
        if (serverTime is not null)
        {
            var skew = (serverTime.Value - DateTimeOffset.UtcNow).Duration();
            var said = Quantities.FormatDuration(skew < TimeSpan.FromMinutes(1) ? skew : TimeSpan.FromMinutes(Math.Round(skew.TotalMinutes))); // "1h", not "1h0m"
            findings.Add(skew > TimeSpan.FromMinutes(5)
                ? new Finding("clock", subject, FindingStatus.Fail, $"the server's clock is {said} from this host's: signed requests fail past 15 minutes",
                    "run NTP (systemd-timesyncd or chrony) on this host")
                : skew > TimeSpan.FromMinutes(1)
                    ? new Finding("clock", subject, FindingStatus.Warn, $"the server's clock is {said} from this host's", "run NTP on this host")
                    : new Finding("clock", subject, FindingStatus.Ok, $"clocks agree within {Math.Round(skew.TotalSeconds).ToString(CultureInfo.InvariantCulture)}s"));
        }

        try
        {
            await target.ProbeAsync(ct).ConfigureAwait(false);
            var payload = System.Text.Encoding.UTF8.GetBytes($"backstop doctor probe {Guid.NewGuid()}\n");
            await using (var upload = await target.BeginPutAsync(key, ct).ConfigureAwait(false))
            {
                await upload.WriteAsync(payload, ct).ConfigureAwait(false);
                await upload.CommitAsync(ct).ConfigureAwait(false);
            }

            byte[] back;
            await using (var read = await target.OpenReadAsync(key, ct).ConfigureAwait(false))
            using (var copy = new MemoryStream())
            {
                await read.CopyToAsync(copy, ct).ConfigureAwait(false);
                back = copy.ToArray();
            }

            await target.DeleteAsync(key, ct).ConfigureAwait(false);
            if (!back.AsSpan().SequenceEqual(payload))
            {
                findings.Add(new Finding("target", subject, FindingStatus.Fail, $"a probe object written to {target.Where} read back different", "check the storage"));
                return findings;
            }

            findings.Add(new Finding("target", subject, FindingStatus.Ok, $"a probe object was written, read back and deleted at {target.Where}"));
        }
        catch (Exception e) when (e is BackupException or IOException or ObjectNotFoundException or UnauthorizedAccessException)
        {
            findings.Add(new Finding("target", subject, FindingStatus.Fail, e.Message, "fix the target's address, credentials or permissions"));
            try
            {
                await target.DeleteAsync(key, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception cleanup) when (cleanup is BackupException or IOException or UnauthorizedAccessException)
            {
                // Decision: the probe's own failure is what matters; a probe object that could not be removed either is said once below.
                findings.Add(new Finding("target", subject, FindingStatus.Warn, $"the probe object {key} may be left on the target: {cleanup.Message}"));
            }

            return findings;
        }

        // Free space against the estimate: the last valid snapshot of every source stored there.
        var estimate = config.Sources.Where(s => s.Targets.Contains(definition.Name))
            .Select(s => catalog.Snapshots(s.Name).LastOrDefault(x => x.IsValid(s.MinCopies))?.StoredBytes ?? 0).Sum();
        if (await SafeAsync(() => target.FreeBytesAsync(ct)).ConfigureAwait(false) is { } free)
        {
            findings.Add(free < estimate
                ? new Finding("space", subject, FindingStatus.Fail, $"{Quantities.FormatSize(free)} free; the next backups need about {Quantities.FormatSize(estimate)}",
                    "free space, or prune (backstop prune)")
                : free < 2 * estimate
                    ? new Finding("space", subject, FindingStatus.Warn, $"{Quantities.FormatSize(free)} free: room for less than two more backups of {Quantities.FormatSize(estimate)}",
                        "free space, or tighten retention")
                    : new Finding("space", subject, FindingStatus.Ok, $"{Quantities.FormatSize(free)} free, the last backups stored {Quantities.FormatSize(estimate)}"));
        }

        return findings;
    }

    private static async Task<T?> SafeAsync<T>(Func<Task<T?>> f) where T : struct
    {
        try
        {
            return await f().ConfigureAwait(false);
        }
        catch (Exception e) when (e is BackupException or IOException or HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>Databases on a server that no configured source backs up (all sources count, whichever were asked about).</summary>
    private async Task<List<Finding>> CoverageAsync(List<SourceDefinition> asked, CancellationToken ct)
    {
        var inventories = new List<(SourceDefinition Def, ServerInventory Inventory)>();
        foreach (var def in config.Sources)
        {
            if (plugins.Source(def.Kind)!.Create(def).Capability<IHealthChecked>() is { } health)
            {
                try
                {
                    foreach (var inventory in await health.InventoriesAsync(ct).ConfigureAwait(false))
                    {
                        inventories.Add((def, inventory));
                    }
                }
                catch (Exception e) when (e is BackupException or ConfigException or IOException)
                {
                    // The preflight finding already says why the server cannot be reached.
                }
            }
        }

        var findings = new List<Finding>();
        foreach (var server in inventories.GroupBy(i => i.Inventory.Server, StringComparer.Ordinal))
        {
            if (!server.Any(s => asked.Contains(s.Def)))
            {
                continue;
            }

            var covered = server.Any(s => s.Inventory.Covered is null)
                ? server.First().Inventory.Databases.ToHashSet(StringComparer.Ordinal)
                : server.SelectMany(s => s.Inventory.Covered!).ToHashSet(StringComparer.Ordinal);
            var missing = server.First().Inventory.Databases.Where(d => !covered.Contains(d)).Order(StringComparer.Ordinal).ToList();
            var sources = string.Join(", ", server.Select(s => $"'{s.Def.Name}'"));
            var (noun, key) = (server.First().Inventory.Noun, server.First().Inventory.Key);
            var plural = noun.EndsWith('y') ? noun[..^1] + "ies" : noun + "s";
            if (missing.Count > 0)
            {
                _uncovered.Add((server.Select(s => s.Def.Machine).Distinct(StringComparer.Ordinal).ToList(), string.Join(", ", server.Select(s => s.Def.Name).Distinct()),
                    $"{string.Join(", ", missing)} on {server.Key}"));
            }

            findings.Add(missing.Count == 0
                ? new Finding("coverage", server.Key, FindingStatus.Ok, $"every {noun} is backed up (by {sources})")
                : new Finding("coverage", server.Key, FindingStatus.Warn,
                    $"{missing.Count} {(missing.Count == 1 ? noun : plural)} no source backs up: {string.Join(", ", missing)}",
                    $"add {(missing.Count == 1 ? "it" : "them")} to the {key} of {sources}, or use {key}: all"));
        }

        return findings;
    }

    /// <summary>What coverage found no source backs up: the machines of the sources that read that server, and what it is.</summary>
    private readonly List<(IReadOnlyList<string> Machines, string Sources, string What)> _uncovered = [];

    /// <summary>
    /// What no source backs up on the servers the sources read (databases, repositories…), with the machines those
    /// sources live on: what a disaster there takes for good. Asks each server, as doctor's coverage check does.
    /// </summary>
    public async Task<IReadOnlyList<(IReadOnlyList<string> Machines, string Sources, string What)>> UncoveredAsync(CancellationToken cancellationToken)
    {
        _uncovered.Clear();
        await CoverageAsync(config.Sources.ToList(), cancellationToken).ConfigureAwait(false);
        return _uncovered.ToList();
    }

    /// <summary>
    /// Each disaster scenario: what it would lose that nothing brings back (a source whose every copy is on what it
    /// loses, a key kept only there, databases no source backs up on a lost machine) fails; so does a rehearsal that
    /// failed or is older than the scenario's <c>every</c>.
    /// </summary>
    private List<Finding> Scenarios()
    {
        var findings = new List<Finding>();
        var now = DateTimeOffset.UtcNow;
        foreach (var scenario in config.Recovery.Scenarios)
        {
            var subject = $"scenario '{scenario.Name}'";
            var plan = Recovery.RecoveryPlan.For(config, plugins, scenario);
            foreach (var u in plan.Unrecoverable)
            {
                findings.Add(new Finding("scenario", subject, FindingStatus.Fail, u.Reason));
            }

            foreach (var (machines, _, what) in _uncovered.Where(u => u.Machines.Any(plan.LostMachines.Contains)))
            {
                findings.Add(new Finding("scenario", subject, FindingStatus.Fail,
                    $"{scenario.Name}: {what} {(what.Contains(',', StringComparison.Ordinal) ? "are" : "is")} not backed up and live{(what.Contains(',', StringComparison.Ordinal) ? "" : "s")} on {string.Join(", ", machines.Where(plan.LostMachines.Contains))}: lost with it",
                    "add it to a source (see the coverage finding)"));
            }

            var last = catalog.Rehearsals(scenario.Name).LastOrDefault();
            findings.Add(last switch
            {
                null => new Finding("scenario", subject, scenario.Every is null ? FindingStatus.Warn : FindingStatus.Fail,
                    $"never rehearsed: nobody knows whether the estate comes back within {Quantities.FormatDuration(scenario.Rto)}", $"run 'backstop rehearse {scenario.Name}'"),
                { Passed: false } r => new Finding("scenario", subject, FindingStatus.Fail, $"the last rehearsal ({Text.Json.Time(r.At)}) failed: {r.Error}",
                    $"fix it, then 'backstop rehearse {scenario.Name}'"),
                { } r when scenario.Every is { } every && now - r.At > every => new Finding("scenario", subject, FindingStatus.Fail,
                    $"the last rehearsal is {Quantities.FormatDuration(now - r.At)} old, more than every: {Quantities.FormatDuration(every)}", $"run 'backstop rehearse {scenario.Name}'"),
                { } r => new Finding("scenario", subject, plan.Unrecoverable.Count > 0 ? FindingStatus.Warn : FindingStatus.Ok,
                    $"the last rehearsal ({Text.Json.Time(r.At)}) passed: back in {Drill.DrillRunner.Seconds(r.Seconds)}, rto {Quantities.FormatDuration(scenario.Rto)}"),
            });
        }

        return findings;
    }

    /// <summary>Every target on the source's own host or file system; one copy; an encryption key kept nowhere here.</summary>
    private List<Finding> SinglePointsOfFailure(List<SourceDefinition> sources)
    {
        var findings = new List<Finding>();
        foreach (var def in sources)
        {
            var subject = $"source '{def.Name}'";
            if (def.MinCopies == 1)
            {
                findings.Add(new Finding("redundancy", subject, FindingStatus.Warn,
                    def.Targets.Count == 1 ? "one target, one copy: losing that target loses every backup" : "min_copies is 1: a snapshot counts with a single copy",
                    "add a second target (another host or a cloud bucket) and set min_copies: 2"));
            }

            if (plugins.Source(def.Kind)!.Create(def).Capability<IHealthChecked>() is not { Place: var place })
            {
                continue;
            }

            // Each target says where it keeps its copies: an SFTP or S3 server on a loopback address is on this host too.
            var places = def.Targets.Distinct(StringComparer.Ordinal)
                .Select(n => plugins.Target(config.Targets.First(t => t.Name == n).Kind)!.Create(config.Targets.First(t => t.Name == n)).Place).ToList();
            if (!places.All(p => p.OnThisHost))
            {
                continue; // a copy is elsewhere
            }

            var sameHost = place.Host is null or "127.0.0.1" or "localhost" or "::1";
            if (!sameHost)
            {
                continue;
            }

            var sameFs = place.Paths.Count > 0 && places.All(t => t.Path is { } tp && place.Paths.Any(p => SameFileSystem(p, tp)));
            findings.Add(new Finding("redundancy", subject, FindingStatus.Warn,
                sameFs
                    ? "every target is on the same file system as the source: one disk failure loses the data and its backups"
                    : "every target is on this host, as the source is: losing the host loses the data and its backups",
                "add a target on another host (sftp, s3, rclone)"));
        }

        if (config.Encryption is { Recipients.Count: > 0 } e && e.Identities.Count == 0 && e.Passphrase is null)
        {
            findings.Add(new Finding("redundancy", "encryption", FindingStatus.Warn,
                "backups are encrypted and no identity is configured on this host: drills and restores here cannot decrypt",
                "keep the identity file where restores run (encryption.identities), and a copy offline"));
        }

        return findings;
    }

    private static bool SameFileSystem(string a, string b)
    {
        static string Existing(string p)
        {
            while (!Path.Exists(p) && Path.GetDirectoryName(p) is { } parent)
            {
                p = parent;
            }

            return p;
        }

        return Posix.TryLstat(Existing(a), out var sa, out _) && Posix.TryLstat(Existing(b), out var sb, out _) && sa.Device == sb.Device;
    }

    /// <summary>
    /// Whether the throwaway servers of drills can run apart from Backstop: as root it starts them as the OS user
    /// backstop-drill; as any other user they share its OS user (its files, its keys, the catalog), with only the
    /// database roles that are not superusers between a restored function and them.
    /// </summary>
    private List<Finding> DrillIsolation(List<SourceDefinition> sources)
    {
        var servers = sources.Select(d => (d, Server: plugins.Source(d.Kind)!.Create(d).Capability<IDrillable>() is { } drillable ? drillable.ThrowawayServer : null))
            .Where(x => x.Server is not null).ToList();
        if (servers.Count == 0)
        {
            return [];
        }

        var names = string.Join(", ", servers.Select(x => $"'{x.d.Name}' ({x.Server})"));
        return PosixUsers.IsRoot
            ? [new Finding("drill", "scratch servers", FindingStatus.Ok, $"drills of {names} start their servers as the OS user backstop-drill")]
            : [new Finding("drill", "scratch servers", FindingStatus.Warn,
                $"Backstop runs as {Environment.UserName}, not root, so the throwaway servers of drills ({names}) run as that user too: a function in a restored " +
                "database runs with no database privilege, but shares this user's files, keys and catalog",
                "run drills as root (they switch to backstop-drill), or set drill.server to a server of its own for each")];
    }

    /// <summary>
    /// Drills rotate over a source's targets: a target whose copies were not drilled within drill.every × the number of
    /// targets is a warning — the off-site copy is otherwise proven only when the local one breaks.
    /// </summary>
    private List<Finding> CopiesDrilled(SourceDefinition def, DateTimeOffset now)
    {
        var targets = def.Targets.Distinct(StringComparer.Ordinal).ToList();
        if (def.Drill.Every is not { } every || targets.Count < 2)
        {
            return [];
        }

        var drills = catalog.Drills(def.Name);
        if (drills.Count == 0)
        {
            return []; // "never drilled" is said above
        }

        var window = every * targets.Count;
        var last = drills.Where(d => d.Passed && d.Target is not null).GroupBy(d => d.Target!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Max(d => d.At), StringComparer.Ordinal);
        return [.. targets.Where(t => !last.TryGetValue(t, out var at) || now - at > window).Select(t => new Finding("drill", $"source '{def.Name}' on target '{t}'",
            FindingStatus.Warn,
            last.TryGetValue(t, out var at) ? $"its copies were last drilled {Ago(now - at)} ago, more than drill.every × {targets.Count} targets ({Quantities.FormatDuration(window)})"
                : "its copies were never drilled: every drill so far restored another target's copy",
            $"run 'backstop drill --source {def.Name} --target {t}'"))];
    }

    /// <summary>Freshness against the RPO and the last drill, from what the catalog recorded.</summary>
    private List<Finding> Freshness(List<SourceDefinition> sources)
    {
        var findings = new List<Finding>();
        var now = DateTimeOffset.UtcNow;
        var statuses = StatusReport.Compute(config, catalog, now);
        foreach (var s in statuses.Where(s => sources.Any(d => d.Name == s.Name)))
        {
            var subject = $"source '{s.Name}'";
            var reasons = string.Join("; ", s.Reasons);
            findings.Add(s.State switch
            {
                SourceState.Ok => new Finding("freshness", subject, FindingStatus.Ok,
                    $"last valid backup {Ago(now - s.LastValid!.FinishedAt)} ago, RPO {Quantities.FormatDuration(TimeSpan.FromSeconds(s.RpoSeconds))}"),
                SourceState.Degraded => new Finding("freshness", subject, FindingStatus.Warn, $"degraded: {reasons}", "see 'backstop status'"),
                _ => new Finding("freshness", subject, FindingStatus.Fail, $"{s.State.ToString().ToLowerInvariant()}: {reasons}", $"run 'backstop run --source {s.Name}' and read its error"),
            });

            var def = sources.First(d => d.Name == s.Name);
            findings.Add(s.LastDrill switch
            {
                null => new Finding("drill", subject, def.Drill.Every is null ? FindingStatus.Warn : FindingStatus.Fail,
                    "never drilled: no restore of this source has been proven", $"run 'backstop drill --source {s.Name}', and set drill: {{every: 7d}}"),
                { Passed: false } d => new Finding("drill", subject, FindingStatus.Fail, $"the last drill failed: {d.Error}", $"fix it, then 'backstop drill --source {s.Name}'"),
                { } d when def.Drill.Every is { } every && now - d.At > every => new Finding("drill", subject, FindingStatus.Fail,
                    $"the last drill is {Ago(now - d.At)} old, drill.every is {Quantities.FormatDuration(every)}", $"run 'backstop drill --source {s.Name}'"),
                { } d => new Finding("drill", subject, FindingStatus.Ok,
                    $"passed {Ago(now - d.At)} ago, restored in {d.Seconds.ToString("0.0", CultureInfo.InvariantCulture)}s" +
                    (d.RtoSeconds is { } rto ? $" (rto {Quantities.FormatDuration(TimeSpan.FromSeconds(rto))})" : "")),
            });
            findings.AddRange(CopiesDrilled(def, now));
        }

        return findings;
    }

    /// <summary>An age to the minute (days and hours when longer).</summary>
    private static string Ago(TimeSpan t) =>
        t.TotalMinutes < 1 ? $"{(int)t.TotalSeconds}s"
        : t.TotalHours < 1 ? $"{(int)t.TotalMinutes}m"
        : t.TotalDays < 2 ? $"{(int)t.TotalHours}h{t.Minutes:00}m"
        : $"{(int)t.TotalDays}d{t.Hours}h";

    private List<Finding> Schedules()
    {
        var findings = new List<Finding>();
        foreach (var pattern in config.Doctor.Crontabs)
        {
            foreach (var file in Expand(pattern))
            {
                string text;
                try
                {
                    text = File.ReadAllText(file);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    findings.Add(new Finding("schedule", file, FindingStatus.Warn, $"cannot be read: {e.Message}", "run doctor as root to read every crontab"));
                    continue;
                }

                bool? system = file == "/etc/crontab" || file.StartsWith("/etc/cron.d/", StringComparison.Ordinal) ? true
                    : file.StartsWith("/var/spool/cron/", StringComparison.Ordinal) ? false : null;
                findings.AddRange(Doctor.Schedules.CheckCrontab(file, text, system, CurrentPath, HomeOf));
            }
        }

        foreach (var folder in config.Doctor.SystemdFolders)
        {
            findings.AddRange(Doctor.Schedules.CheckTimers(folder, CurrentPath));
        }

        return findings;
    }

    private static IEnumerable<string> Expand(string pattern)
    {
        if (!pattern.Contains('*', StringComparison.Ordinal))
        {
            return File.Exists(pattern) ? [pattern] : [];
        }

        var folder = Path.GetDirectoryName(pattern)!;
        return Directory.Exists(folder)
            ? Directory.GetFiles(folder, Path.GetFileName(pattern)).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal)
            : [];
    }

    private static string? HomeOf(string user)
    {
        foreach (var line in File.Exists("/etc/passwd") ? File.ReadLines("/etc/passwd") : [])
        {
            var f = line.Split(':');
            if (f.Length > 5 && f[0] == user)
            {
                return f[5];
            }
        }

        return null;
    }

    /// <summary>An inline secret in a configuration file other users can read.</summary>
    private List<Finding> ConfigFile()
    {
        var mode = File.GetUnixFileMode(config.File);
        var readable = (mode & (UnixFileMode.OtherRead | UnixFileMode.GroupRead)) != 0;
        var who = (mode & UnixFileMode.OtherRead) != 0 ? "every user on this host" : Posix.TryLstat(config.File, out var st, out _) ? $"group {Posix.GroupName(st.Gid)}" : "its group";
        if (config.InlineSecrets.Count == 0)
        {
            return [new Finding("secrets", config.File, FindingStatus.Ok, "no secret is written in the file (env: and file: references only)")];
        }

        var where = string.Join(", ", config.InlineSecrets.Select(l => $"line {l.Line.ToString(CultureInfo.InvariantCulture)}"));
        return readable
            ? [new Finding("secrets", config.File, FindingStatus.Fail, $"{who} can read it, and it holds {config.InlineSecrets.Count} secret(s) written inline ({where})",
                $"chmod 600 {config.File}, and move the secrets to env: or file: references")]
            : [new Finding("secrets", config.File, FindingStatus.Warn, $"it holds {config.InlineSecrets.Count} secret(s) written inline ({where}); only its owner can read it",
                "prefer env: or file: references")];
    }
}
