namespace Backstop.Core.Config;

/// <summary>The whole configuration, validated: every path absolute, every quantity parsed.</summary>
public sealed record BackstopConfig(
    string File,
    string CatalogPath,
    string StagingPath,
    Policy Policy,
    CompressionOptions Compression,
    IReadOnlyList<TargetDefinition> Targets,
    IReadOnlyList<SourceDefinition> Sources)
{
    /// <summary>Encryption of every artifact in the age format; null when artifacts are stored unencrypted.</summary>
    public EncryptionOptions? Encryption { get; init; }

    public string LockPath => CatalogPath + ".lock";

    /// <summary><c>machine:</c> the machine this configuration runs on (its sources and local targets live there by default).</summary>
    public string Machine { get; init; } = ThisHost;

    /// <summary>This host's name, lowercased: the default <see cref="Machine"/>.</summary>
    public static string ThisHost => Environment.MachineName.ToLowerInvariant();

    /// <summary><c>recovery:</c> disaster scenarios and how a rehearsal of them runs.</summary>
    public RecoveryOptions Recovery { get; init; } = RecoveryOptions.None;

    /// <summary>Where the configuration writes a secret's value itself (not <c>env:</c> or <c>file:</c>).</summary>
    public IReadOnlyList<ConfigLocation> InlineSecrets { get; init; } = [];

    /// <summary>Every secret reference in the file (env:, file:, inline), for <c>config check</c> to resolve.</summary>
    public IReadOnlyList<SecretRef> SecretRefs { get; init; } = [];

    /// <summary><c>catalog: {keep_failed: 30d}</c>: failed records older than this leave the catalog (their count stays in the events).</summary>
    public TimeSpan KeepFailed { get; init; } = TimeSpan.FromDays(30);

    /// <summary><c>catalog.url</c>: the shared catalog on PostgreSQL; null when the catalog is the embedded file (<see cref="CatalogPath"/>).</summary>
    public CatalogServer? CatalogServer { get; init; }

    /// <summary>
    /// Whether this process runs the source: always with the embedded catalog (one process runs every source, whatever
    /// its <c>machine:</c>); with a shared catalog, only when the source's machine is this one.
    /// </summary>
    public bool RunsHere(SourceDefinition source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return CatalogServer is null || string.Equals(source.Machine, Machine, StringComparison.Ordinal);
    }

    /// <summary>The configuration as this agent runs it: only the sources it runs (all of them with the embedded catalog).</summary>
    public BackstopConfig ForThisMachine() => CatalogServer is null ? this : this with { Sources = Sources.Where(RunsHere).ToList() };

    /// <summary>The catalog as a person names it: its URL (never a password), else its file.</summary>
    public string CatalogName => CatalogServer?.Display ?? CatalogPath;

    /// <summary><c>catalog.default_machine</c>: with a shared catalog, the machine that runs sources naming none; null: the host they are defined on.</summary>
    public string? DefaultMachine { get; init; }

    /// <summary>Every notifier: the top level's (<see cref="Notify.NotifierDefinition.Source"/> null) and the sources' own.</summary>
    public IReadOnlyList<Notify.NotifierDefinition> Notify { get; init; } = [];

    /// <summary><c>serve:</c> the scheduler's and the web side's settings.</summary>
    public ServeOptions Serve { get; init; } = ServeOptions.Default;

    /// <summary>
    /// <c>group:</c> a group that shares the catalog and its folder (0660 and 2770) with Backstop's user, for a second
    /// user in it (postgres running wal-push); null: everything Backstop writes is its own user's alone (umask 077).
    /// </summary>
    public string? Group { get; init; }

    /// <summary><c>verify: {deep_schedule: …}</c>: when <c>serve</c> reads every copy back (verify --deep).</summary>
    public Schedule? DeepVerifySchedule { get; init; }

    /// <summary><c>doctor:</c> what it reads besides the configuration.</summary>
    public DoctorOptions Doctor { get; init; } = DoctorOptions.Default;

    public SourceDefinition? Source(string name) => Sources.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.Ordinal));
}

/// <summary>
/// <c>encryption</c>: the age recipients every artifact is encrypted to (X25519 <c>age1…</c>), or one passphrase
/// (scrypt, alone, as the format requires); and the identity files (<c>file:</c> secret references) that restore
/// and a deep verify use to read the content back.
/// </summary>
public sealed record EncryptionOptions(IReadOnlyList<string> Recipients, SecretRef? Passphrase, IReadOnlyList<SecretRef> Identities);

/// <summary>Global policy: how many verified copies make a snapshot valid, and the default recovery point objective.</summary>
public sealed record Policy(int MinCopies, TimeSpan Rpo)
{
    /// <summary>The default recovery time objective a drill must meet (<c>policy: {rto: 30m}</c>); null when none is set.</summary>
    public TimeSpan? Rto { get; init; }

    /// <summary>How often every source must pass a drill (<c>policy: {drill: {every: 7d}}</c>); null when not required.</summary>
    public TimeSpan? DrillEvery { get; init; }
}

/// <summary>
/// A source's drills: how often one must pass (<c>drill: {every: 7d}</c>, else the policy's), the recovery time
/// objective the measured restore must meet (<c>rto: 30m</c>), and the kind's own drill options (a drill server,
/// smoke queries, a spot check, a command).
/// </summary>
public sealed record DrillPolicy(TimeSpan? Every, TimeSpan? Rto, object? Options)
{
    public static DrillPolicy None { get; } = new(null, null, null);

    /// <summary><c>drill: {schedule: "0 4 * * 0"}</c>: when <c>serve</c> drills (else every <see cref="Every"/>, if set).</summary>
    public Schedule? Schedule { get; init; }
}

/// <summary>
/// <c>doctor: {crontabs: [...], systemd: [...]}</c>: the crontab files (system or user format) and the folders of
/// systemd units whose timers <c>doctor</c> checks. A configured list replaces the default.
/// </summary>
public sealed record DoctorOptions(IReadOnlyList<string> Crontabs, IReadOnlyList<string> SystemdFolders)
{
    /// <summary>The system crontab, <c>/etc/cron.d</c>, the users' crontabs; the administrator's systemd units.</summary>
    public static DoctorOptions Default { get; } = new(["/etc/crontab", "/etc/cron.d/*", "/var/spool/cron/crontabs/*"], ["/etc/systemd/system"]);
}

/// <summary>zstd level (1–19) and worker threads (0 = single-threaded).</summary>
public sealed record CompressionOptions(int Level, int Workers);

/// <summary>A configured target; <c>timeout</c> bounds each operation on it, <c>retries</c> the retries of idempotent ones.</summary>
public sealed record TargetDefinition(string Name, string Kind, object Options, ConfigLocation Location, TimeSpan Timeout, int Retries)
{
    /// <summary>Backstop's private state for this target (a 0700 folder beside the catalog, e.g. a pinned known_hosts file).</summary>
    public string StateDirectory { get; init; } = "";

    /// <summary>
    /// The machine the target's copies live on: its <c>machine:</c>, else the configuration's machine for a kind that
    /// stores on the machine that runs it (a local folder), else a machine of its own named after the target (a NAS,
    /// a bucket), so that losing a machine never takes the NAS with it unless said.
    /// </summary>
    public string Machine { get; init; } = "";

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    public const int DefaultRetries = 3;
}

public sealed record SourceDefinition(
    string Name,
    string Kind,
    object Options,
    Expectations Expect,
    TimeSpan Rpo,
    int MinCopies,
    IReadOnlyList<string> Targets,
    ConfigLocation Location)
{
    /// <summary>Backstop's private state for this source (a 0700 folder beside the catalog, e.g. a client's password file).</summary>
    public string StateDirectory { get; init; } = "";

    /// <summary>The source's retention rules (its own, else the global ones); null when none are configured.</summary>
    public Retention.RetentionRules? Retention { get; init; }

    /// <summary>The source's drill rules and options.</summary>
    public DrillPolicy Drill { get; init; } = DrillPolicy.None;

    /// <summary>When <c>serve</c> backs the source up (its own <c>schedule:</c>, else the policy's); null: never on its own.</summary>
    public Schedule? Schedule { get; init; }

    /// <summary>When a new full starts (<c>incremental:</c>); <see cref="IncrementalPolicy.Off"/> keeps every snapshot full.</summary>
    public IncrementalPolicy Incremental { get; init; } = IncrementalPolicy.Off;

    /// <summary>The machine the source lives on (<c>machine:</c>, else the configuration's).</summary>
    public string Machine { get; init; } = "";

    /// <summary><c>needs:</c> the sources that must be back before this one is restored (a rehearsal's order).</summary>
    public IReadOnlyList<string> Needs { get; init; } = [];

    /// <summary>The continuous archive the source keeps besides its snapshots (<c>wal:</c>), or null when it keeps none.</summary>
    public ArchivePolicy? Archive { get; init; }
}

/// <summary>
/// <c>wal: {max_rpo: 5m, queue_max: 1GiB, receive: false}</c> of a source that keeps a continuous archive (PostgreSQL
/// in mode: physical): how old its newest archived file may be before the source is failing, how much of it the
/// server may hold back while too few targets take it before <c>wal-push</c> stores what it can and records a gap.
/// <see cref="BaseRange"/> is the kind's reading of where a snapshot sits in the archive.
/// </summary>
public sealed record ArchivePolicy(TimeSpan MaxRpo, long QueueMax, Func<IReadOnlyDictionary<string, long>, Plugins.ArchiveRange?> BaseRange)
{
    public static TimeSpan DefaultMaxRpo { get; } = TimeSpan.FromMinutes(5);

    public const long DefaultQueueMax = 1L << 30;

    /// <summary>The kind's reading of the archive's lineage (timeline histories); null: a single line.</summary>
    public Func<IEnumerable<Plugins.ArchiveFile>, IReadOnlyList<Plugins.ArchiveStretch>?> Lineage { get; init; } = _ => null;

    /// <summary><c>receive: true</c>: serve receives the archive itself (pg_receivewal on a replication slot) instead of the server pushing it.</summary>
    public bool Receive { get; init; }

    /// <summary>The block of a source (null: the defaults) of a kind and options that keep an archive; null when they keep none, and a block there is refused.</summary>
    public static ArchivePolicy? Parse(ConfigMap source, Plugins.ISourceKind kind, object options)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(kind);
        if (!kind.CanKeepArchive)
        {
            return source.Has("wal") ? throw source.Error("wal", $"'{kind.Kind}' sources keep no continuous archive; wal applies to a postgres source with mode: physical") : null;
        }

        var map = source.Map("wal");
        if (!kind.KeepsArchive(options))
        {
            return map is null ? null : throw source.Error("wal", $"a '{kind.Kind}' source keeps a WAL archive only in mode: physical");
        }

        var maxRpo = map?.DurationOr("max_rpo", DefaultMaxRpo) ?? DefaultMaxRpo;
        if (maxRpo <= TimeSpan.Zero)
        {
            throw map!.Error("max_rpo", "must be longer than zero (the RPO the archive must keep; archive_timeout must be shorter)");
        }

        var queueMax = map?.SizeOr("queue_max", DefaultQueueMax) ?? DefaultQueueMax;
        var receive = map?.BoolOr("receive", false) ?? false;
        map?.EnsureAllKeysKnown("wal keys are: max_rpo, queue_max, receive");
        return new ArchivePolicy(maxRpo, queueMax, kind.BaseRange) { Receive = receive, Lineage = kind.Lineage };
    }
}

/// <summary>
/// <c>incremental: {full_every: 7d, max_chain: 14}</c>: a snapshot stores only what changed since its parent, and a
/// new full starts when the chain's full is older than <see cref="FullEvery"/> or the chain holds
/// <see cref="MaxChain"/> levels above it. <c>full_every: 0</c> keeps every snapshot full.
/// </summary>
public sealed record IncrementalPolicy(TimeSpan FullEvery, int MaxChain)
{
    public static IncrementalPolicy Off { get; } = new(TimeSpan.Zero, 0);

    public static IncrementalPolicy Default { get; } = new(TimeSpan.FromDays(7), 14);

    public bool Enabled => FullEvery > TimeSpan.Zero && MaxChain > 0;

    /// <summary>The block of a source of a kind that stores changes (null: the default); a kind that cannot refuses it.</summary>
    public static IncrementalPolicy Parse(ConfigMap? map, Plugins.ISourceKind kind, string source)
    {
        ArgumentNullException.ThrowIfNull(kind);
        if (map is null)
        {
            return kind.StoresChanges ? Default : Off;
        }

        if (!kind.StoresChanges)
        {
            throw new ConfigException(map.Location, $"{map.Path}: '{kind.Kind}' sources store every snapshot whole; incremental applies to files and kubernetes sources");
        }

        var fullEvery = map.String("full_every")?.Trim() == "0" ? TimeSpan.Zero : map.Duration("full_every") ?? Default.FullEvery;
        var maxChain = map.Int("max_chain", 1, 1000) ?? Default.MaxChain;
        map.EnsureAllKeysKnown($"incremental keys of source '{source}' are: full_every, max_chain");
        return new IncrementalPolicy(fullEvery, maxChain);
    }
}

public enum AnomalyAction
{
    Fail,
    Warn,
}

/// <summary>
/// Rules a snapshot must meet to count. With no <c>expect:</c> block at all the defaults still apply
/// (<see cref="Default"/>): a count fact that falls to 0 fails, <c>max_shrink: 50%</c> against history, and a first
/// snapshot that holds nothing is degraded. Each is opted out of explicitly (<c>max_shrink: none</c>,
/// <c>allow_empty: true</c>).
/// </summary>
public sealed record Expectations(
    long? MinBytes,
    IReadOnlyDictionary<string, long> MinFacts,
    int? MaxShrinkPercent,
    AnomalyAction OnAnomaly)
{
    public const int DefaultMaxShrinkPercent = 50;

    /// <summary>An empty source is expected: no fall-to-zero rule, no warning for a first snapshot that holds nothing.</summary>
    public bool AllowEmpty { get; init; }

    /// <summary>Every path of the source must be a mount point (an unmounted disk is refused at preflight).</summary>
    public bool Mount { get; init; }

    /// <summary>The keys the user wrote (the others are defaults), for <c>config check</c>.</summary>
    public IReadOnlySet<string> Written { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>What applies when a source has no <c>expect:</c> block.</summary>
    public static Expectations Default { get; } = new(null, new Dictionary<string, long>(), DefaultMaxShrinkPercent, AnomalyAction.Fail);

    /// <summary>No optional rule at all (only "an empty artifact fails", which always applies): for tests of one rule.</summary>
    public static Expectations None { get; } = new(null, new Dictionary<string, long>(), null, AnomalyAction.Fail) { AllowEmpty = true };

    /// <summary>The rules in force, one line each, defaults marked: what <c>config check</c> prints.</summary>
    public IReadOnlyList<string> Describe(IReadOnlyList<string> countFacts)
    {
        ArgumentNullException.ThrowIfNull(countFacts);
        string Mark(string key) => Written.Contains(key) ? "" : " (default)";
        var counts = countFacts.Count == 0 ? "" : string.Join(", ", countFacts);
        var rules = new List<string> { "an empty artifact fails (always)" };
        if (MinBytes is { } b)
        {
            rules.Add($"min_bytes: {Quantities.FormatSize(b)}");
        }

        rules.AddRange(MinFacts.Select(f => $"min_{f.Key}: {f.Value}"));
        if (AllowEmpty)
        {
            rules.Add("allow_empty: true: an empty source is accepted (no fall-to-zero rule, no warning for an empty first snapshot)");
        }
        else if (counts.Length > 0)
        {
            rules.Add($"a count ({counts}) that falls to 0 from the last valid snapshot fails, in total and per artifact{Mark("allow_empty")}");
            rules.Add($"a snapshot of a source that has never held anything is degraded (said on every run until it holds something){Mark("allow_empty")}");
        }

        rules.Add(MaxShrinkPercent is { } m
            ? $"max_shrink: {m}% against the median of the last 5 valid snapshots, for raw bytes{(counts.Length > 0 ? " and " + counts : "")}, in total and per artifact{Mark("max_shrink")}"
            : "max_shrink: none (no shrink check)");
        rules.Add($"on_anomaly: {(OnAnomaly == AnomalyAction.Warn ? "warn (a broken rule above, other than min_*, makes the snapshot degraded)" : "fail")}{Mark("on_anomaly")}");
        if (Mount)
        {
            rules.Add("mount: true: every path must be a mount point");
        }

        return rules;
    }
}
