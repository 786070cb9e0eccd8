using System.Text.RegularExpressions;
using Backstop.Core.Plugins;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Backstop.Core.Config;

/// <summary>Reads <c>backstop.yaml</c> strictly: an unknown key, a wrong type or a bad value names file, line and column.</summary>
public static partial class ConfigLoader
{
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();

    /// <summary>A source, target or kind name: letters, digits, '.', '_' and '-' (it becomes a folder name).</summary>
    public static bool IsValidName(string name) => NamePattern().IsMatch(name) && name is not ("." or "..");

    public static BackstopConfig Load(string file, PluginRegistry plugins)
    {
        ArgumentNullException.ThrowIfNull(plugins);
        var full = Path.GetFullPath(file);
        string text;
        try
        {
            text = System.IO.File.ReadAllText(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(
                $"{file}: cannot read the configuration ({e.Message}); give one with --config FILE or BACKSTOP_CONFIG");
        }

        return Parse(text, full, plugins);
    }

    public static BackstopConfig Parse(string text, string file, PluginRegistry plugins) => Parse(text, file, plugins, null);

    /// <summary>
    /// Parses a configuration, reporting every error in one pass: each block (a target, a source, the policy…) is
    /// read to its end or to its first error that stops it, a key that the reference does not list is reported
    /// before what its absence causes, and the errors come in file order, block by block.
    /// </summary>
    public static BackstopConfig Parse(string text, string file, PluginRegistry plugins, KeyRecorder? recorder)
    {
        ArgumentNullException.ThrowIfNull(plugins);
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            var inner = e.InnerException?.Message is { Length: > 0 } m ? m : e.Message;
            throw new ConfigException(new ConfigLocation(file, e.Start.Line, e.Start.Column), $"invalid YAML: {Trim(inner)}");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // The scanner gives up on some malformed input without a position (an unclosed quote after a closed one makes
            // YamlDotNet's loader meet an event it does not expect: ArgumentException): find the last place it understood.
            throw new ConfigException(LastGoodMark(text, file), "invalid YAML: the parser could not continue after this point (an unclosed '{', '[' or quote?)");
        }

        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ConfigException(new ConfigLocation(file, 1, 1), "the configuration must be a mapping with 'targets' and 'sources'");
        }

        var document = new ConfigDocument(collect: true, recorder);
        ConfigReference.CheckKeys(root, file, plugins, document);
        var config = Read(new ConfigMap(root, file, "", document), file, plugins);
        if (document.Errors.Count > 0)
        {
            throw new ConfigException(InFileOrder(document.Errors, root));
        }

        return config!;
    }

    /// <summary>Runs one block of the parse; an error that stops it is recorded, and the rest goes on.</summary>
    private static T? Block<T>(ConfigDocument document, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (ConfigException e)
        {
            foreach (var error in e.Errors)
            {
                document.Report(error);
            }

            return default;
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or ArgumentException && document.HasErrors)
        {
            // A block that meets a value already reported as wrong (and read as absent) stops here: its error stands.
            return default;
        }
    }

    private static BackstopConfig? Read(ConfigMap top, string file, PluginRegistry plugins)
    {
        var document = top.Document;

        // catalog: PATH, or catalog: { path: PATH, keep_failed: 30d }, or catalog: { url: postgresql://…, password: env:NAME, default_machine: NAME }
        var (catalogPath, keepFailed, catalogServer, defaultMachine) = Block(document, () =>
        {
            var catalogMap = top.IsMap("catalog") ? top.Map("catalog") : null;
            var catalog = (catalogMap is not null ? catalogMap.StringOr("path", "./state/catalog.db") : top.String("catalog")) ?? "./state/catalog.db";
            var keep = Positive(catalogMap, "keep_failed", TimeSpan.FromDays(30)) ?? TimeSpan.FromDays(30);
            var server = catalogMap is null ? null : CatalogServerOf(catalogMap);
            var fallback = catalogMap is null ? null : MachineOf(catalogMap, "default_machine");
            catalogMap?.EnsureAllKeysKnown("catalog keys are: path, url, password, default_machine, keep_failed");
            if (catalog.Contains("://", StringComparison.Ordinal))
            {
                throw catalogMap is null
                    ? top.Error("catalog", $"a catalog on a server is a mapping: catalog: {{url: {CatalogServer.Example}, password: env:BACKSTOP_CATALOG_PASSWORD}}")
                    : catalogMap.Error("path", "catalog.path is the SQLite file; name a PostgreSQL catalog with catalog.url");
            }

            if (server is not null && catalogMap!.String("path") is not null)
            {
                throw catalogMap.Error("path", "give catalog.url or catalog.path, not both (with url, this machine's own state lives beside staging)");
            }

            if (fallback is not null && server is null)
            {
                throw catalogMap!.Error("default_machine", "default_machine only applies to a shared catalog (catalog.url): with the embedded file one process runs every source");
            }

            return (top.ResolvePath(catalog), keep, server, fallback);
        });
        catalogPath ??= top.ResolvePath("./state/catalog.db");
        var stagingGiven = Block(document, () => top.PathValue("staging"));
        var staging = stagingGiven ?? Path.Combine(Path.GetDirectoryName(catalogPath)!, "staging");
        if (catalogServer is not null && stagingGiven is not null)
        {
            // No file catalog: this machine's own state (the run lock, private folders, drill evidence) lives beside staging,
            // a place the configuration says is writable (the configuration's folder may be a read-only mount).
            catalogPath = Path.Combine(Path.GetDirectoryName(stagingGiven)!, "catalog.db");
        }

        // BACKSTOP_MACHINE over machine: (one configuration for a fleet, each agent its own name: a DaemonSet's node name).
        var machine = Block(document, () => MachineFromEnvironment(top) ?? MachineOf(top)) ?? BackstopConfig.ThisHost;
        var group = Block(document, () => top.String("group") is { } g
            ? Util.PosixUsers.GroupId(g) is not null ? g : throw top.Error("group", $"no group named '{g}' exists on this host; create it (groupadd {g}) or name another")
            : null);

        var policyMap = Block(document, () => top.Map("policy"));
        var minCopies = 1;
        var rpo = TimeSpan.FromHours(24);
        TimeSpan? policyRto = null, policyDrillEvery = null;
        var policyZone = TimeZoneInfo.Utc;
        Schedule? policySchedule = null, policyDrillSchedule = null;
        Block(document, () =>
        {
            if (policyMap is null)
            {
                return 0;
            }

            minCopies = policyMap.IntOr("min_copies", 1, 1, 100);
            rpo = policyMap.DurationOr("rpo", TimeSpan.FromHours(24));
            if (rpo <= TimeSpan.Zero)
            {
                document.Report(policyMap.Error("rpo", "must be longer than zero"));
                rpo = TimeSpan.FromHours(24);
            }

            policyRto = Positive(policyMap, "rto");
            policyZone = Schedule.ParseZone(policyMap, TimeZoneInfo.Utc);
            policySchedule = Schedule.Parse(policyMap, "schedule", policyZone);
            var policyDrill = policyMap.Map("drill");
            policyDrillEvery = Positive(policyDrill, "every");
            policyDrillSchedule = policyDrill is null ? null : Schedule.Parse(policyDrill, "schedule", policyZone);
            policyDrill?.EnsureAllKeysKnown("policy.drill keys are: every, schedule (the kinds' own drill keys go under each source's drill:)");
            policyMap.EnsureAllKeysKnown("policy keys are: min_copies, rpo, rto, schedule, schedule_timezone, drill");
            return 0;
        });

        var compression = Block(document, () =>
        {
            var compressionMap = top.Map("compression");
            var options = new CompressionOptions(
                compressionMap?.IntOr("level", 3, 1, 19) ?? 3,
                compressionMap?.Int("workers", 0, 64) ?? Math.Min(Environment.ProcessorCount, 8));
            compressionMap?.EnsureAllKeysKnown();
            return options;
        }) ?? new CompressionOptions(3, Math.Min(Environment.ProcessorCount, 8));

        var targets = new List<TargetDefinition>();
        var targetNames = new List<string>();
        var targetErrors = false;
        var targetList = Block(document, () => top.MapList("targets"));
        targetErrors |= targetList is null;
        foreach (var t in targetList ?? [])
        {
            targetErrors |= Block<bool?>(document, () =>
            {
                var name = CheckName(t, "target");
                if (targetNames.Contains(name))
                {
                    throw t.Error("name", $"a target named '{name}' is already defined; target names must be unique");
                }

                targetNames.Add(name);
                var kindName = t.RequireString("kind");
                var kind = plugins.Target(kindName)
                    ?? throw t.Error("kind", $"unknown target kind '{kindName}'; known kinds: {string.Join(", ", plugins.TargetKinds)}");
                var timeout = t.Timeout("timeout", TargetDefinition.DefaultTimeout);
                var retries = t.IntOr("retries", TargetDefinition.DefaultRetries, 0, 10);
                var options = kind.ParseOptions(t);
                var explicitMachine = MachineOf(t);
                if (catalogServer is not null && kind.LivesWithRunner && explicitMachine is null)
                {
                    // Each machine's folder is its own, and the shared catalog knows copies by target name.
                    throw t.Error("kind", $"with a shared catalog (catalog.url), a '{kindName}' target names the machine whose folder it is (machine: NAME): " +
                                          "the same name on two machines would be two places the catalog takes for one; give each machine's its own name");
                }

                var targetMachine = explicitMachine ?? (kind.LivesWithRunner ? machine : name);
                t.EnsureAllKeysKnown();
                targets.Add(new TargetDefinition(name, kindName, options, t.Location, timeout, retries)
                {
                    StateDirectory = Path.Combine(Path.GetDirectoryName(catalogPath)!, "private", name),
                    Machine = targetMachine,
                });
                return true;
            }) is null;
        }

        if (targetNames.Count == 0 && !targetErrors)
        {
            document.Report(new ConfigException(top.LocationOf("targets"), "targets: at least one target is needed (for example {name: local, kind: local, path: ./backups})"));
        }

        var retention = Block(document, () => Retention.RetentionRules.Parse(top.Map("retention")));
        var notifiers = Block(document, () => Notify.NotifyConfig.Parse(top, null).ToList()) ?? [];
        var sources = new List<SourceDefinition>();
        var sourceNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in Block(document, () => top.MapList("sources")) ?? [])
        {
            Block(document, () =>
            {
                var name = CheckName(s, "source");
                if (!sourceNames.Add(name))
                {
                    throw s.Error("name", $"a source named '{name}' is already defined; source names must be unique");
                }

                var kindName = s.RequireString("kind");
                var kind = plugins.Source(kindName)
                    ?? throw s.Error("kind", $"unknown source kind '{kindName}'; known kinds: {string.Join(", ", plugins.SourceKinds)}");
                var expect = Block(document, () => ParseExpectations(s.Map("expect"), kind)) ?? Expectations.Default;
                var sourceRpo = s.Duration("rpo") ?? rpo;
                var sourceTargets = s.StringList("targets") ?? targetNames;
                if (sourceTargets.Distinct(StringComparer.Ordinal).Count() != sourceTargets.Count)
                {
                    throw s.Error("targets", "a target is listed twice; each copy must be on a different target");
                }

                foreach (var tn in sourceTargets.Where(tn => !targetNames.Contains(tn) && targetNames.Count > 0))
                {
                    throw s.Error("targets", $"no target is named '{tn}'; defined targets: {string.Join(", ", targetNames)}");
                }

                var sourceMinCopies = s.Int("min_copies", 1, 100) ?? minCopies;
                if (sourceMinCopies > sourceTargets.Count && !targetErrors && targetNames.Count > 0)
                {
                    throw new ConfigException(
                        s.LocationOf(s.Has("min_copies") ? "min_copies" : "name"),
                        $"{s.Path}: min_copies is {sourceMinCopies} but the source has only {sourceTargets.Count} target(s); add targets or lower min_copies");
                }

                var sourceRetention = Block(document, () => Retention.RetentionRules.Parse(s.Map("retention"))) ?? retention;
                var sourceRto = Positive(s, "rto") ?? policyRto;
                var zone = Schedule.ParseZone(s, policyZone);
                var sourceSchedule = Schedule.Parse(s, "schedule", zone) ?? policySchedule;
                var drill = Block(document, () =>
                {
                    var drillMap = s.Map("drill");
                    var every = Positive(drillMap, "every") ?? policyDrillEvery;
                    var schedule = (drillMap is null ? null : Schedule.Parse(drillMap, "schedule", zone)) ?? policyDrillSchedule;
                    var drillOptions = drillMap is null ? null : kind.ParseDrillOptions(drillMap);
                    drillMap?.EnsureAllKeysKnown($"drill keys of a {kindName} source are: {string.Join(", ", new[] { "every", "schedule" }.Concat(kind.DrillKeys))}");
                    return new DrillPolicy(every, sourceRto, drillOptions) { Schedule = schedule };
                });
                notifiers.AddRange(Block(document, () => Notify.NotifyConfig.Parse(s, name)) ?? []);
                var incremental = Block(document, () => kind.StoresChanges || !s.Has("incremental")
                    ? IncrementalPolicy.Parse(kind.StoresChanges ? s.Map("incremental") : null, kind, name)
                    : throw s.Error("incremental", $"'{kindName}' sources store every snapshot whole; incremental applies to files and kubernetes sources")) ?? IncrementalPolicy.Off;
                var options = kind.ParseOptions(s);
                var archive = Block(document, () => ArchivePolicy.Parse(s, kind, options));
                // With a shared catalog a source naming no machine is run by catalog.default_machine, when set.
                var sourceMachine = MachineOf(s) ?? (catalogServer is not null ? defaultMachine : null) ?? machine;
                var needs = s.StringList("needs") ?? [];
                s.EnsureAllKeysKnown();
                sources.Add(new SourceDefinition(name, kindName, options, expect, sourceRpo, sourceMinCopies, sourceTargets, s.Location)
                {
                    Machine = sourceMachine,
                    Needs = needs,
                    Retention = sourceRetention,
                    Drill = drill ?? new DrillPolicy(policyDrillEvery, sourceRto, null),
                    Schedule = sourceSchedule,
                    Incremental = incremental,
                    Archive = archive,
                    StateDirectory = Path.Combine(Path.GetDirectoryName(catalogPath)!, "private", "source-" + name),
                });
                return 0;
            });
        }

        Block(document, () => CheckNeeds(sources, top));
        if (catalogServer is not null)
        {
            // A folder on one machine holds copies only from sources of that machine (another's agent cannot write there).
            foreach (var s in sources)
            {
                foreach (var t in s.Targets.Select(n => targets.FirstOrDefault(x => x.Name == n)).OfType<TargetDefinition>()
                             .Where(t => plugins.Target(t.Kind)?.LivesWithRunner == true && t.Machine != s.Machine))
                {
                    document.Report(new ConfigException(s.Location,
                        $"source '{s.Name}' runs on machine '{s.Machine}' and cannot write to target '{t.Name}', a folder on machine '{t.Machine}'; use a target it reaches (sftp, s3, rclone) or one on its own machine"));
                }
            }
        }

        var recovery = Block(document, () => RecoveryOptions.Parse(top.Map("recovery"),
            sources.Select(x => x.Machine).Concat(targets.Select(t => t.Machine)).ToHashSet(StringComparer.Ordinal), targetNames)) ?? RecoveryOptions.None;
        var encryptionRead = false;
        var encryption = Block(document, () =>
        {
            var options = ParseEncryption(top.Map("encryption"));
            encryptionRead = true;
            return options;
        });
        foreach (var def in sources.Where(_ => encryption is null && encryptionRead))
        {
            if (plugins.Source(def.Kind)?.RequiresEncryption(def.Options) is { } why)
            {
                document.Report(new ConfigException(def.Location, $"source '{def.Name}': {why}"));
            }
        }

        var serve = Block(document, () =>
        {
            var serveMap = top.Map("serve");
            var options = new ServeOptions(serveMap?.IntOr("parallel", 1, 1, 64) ?? 1, serveMap?.StringOr("listen", ServeOptions.Default.Listen) ?? ServeOptions.Default.Listen,
                serveMap?.Secret("token"), serveMap?.DurationOr("jitter", TimeSpan.Zero) ?? TimeSpan.Zero) { Hostnames = serveMap?.StringList("hostnames") };
            if (options.Token is { Reference.Length: 0 })
            {
                throw serveMap!.Error("token", "an empty token is no token: set a long random secret (env:NAME), or leave the key out");
            }

            serveMap?.EnsureAllKeysKnown("serve keys are: parallel, listen, token, jitter, hostnames");
            return options;
        }) ?? ServeOptions.Default;
        var deepSchedule = Block(document, () =>
        {
            var verifyMap = top.Map("verify");
            var schedule = verifyMap is null ? null : Schedule.Parse(verifyMap, "deep_schedule", Schedule.ParseZone(verifyMap, policyZone));
            verifyMap?.EnsureAllKeysKnown("verify keys are: deep_schedule, schedule_timezone");
            return schedule;
        });
        var doctor = Block(document, () =>
        {
            var doctorMap = top.Map("doctor");
            var options = new DoctorOptions(
                doctorMap?.StringList("crontabs")?.Select(c => doctorMap.ResolvePath(c)).ToList() ?? DoctorOptions.Default.Crontabs,
                doctorMap?.StringList("systemd")?.Select(c => doctorMap.ResolvePath(c)).ToList() ?? DoctorOptions.Default.SystemdFolders);
            doctorMap?.EnsureAllKeysKnown("doctor keys are: crontabs (files, globs allowed), systemd (folders of unit files)");
            return options;
        }) ?? DoctorOptions.Default;
        top.EnsureAllKeysKnown("top-level keys are machine, catalog, staging, policy, compression, encryption, retention, notify, serve, verify, doctor, recovery, targets, sources");
        foreach (var twice in notifiers.GroupBy(n => n.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            document.Report(new ConfigException(twice.Last().Location, $"a notifier named '{twice.Key}' is already defined; notifier names must be unique"));
        }

        if (document.Errors.Count > 0)
        {
            return null;
        }

        return new BackstopConfig(file, catalogPath, staging, new Policy(minCopies, rpo) { Rto = policyRto, DrillEvery = policyDrillEvery }, compression, targets, sources)
        {
            Encryption = encryption,
            Machine = machine,
            Recovery = recovery,
            KeepFailed = keepFailed,
            CatalogServer = catalogServer,
            DefaultMachine = defaultMachine,
            Doctor = doctor,
            Notify = notifiers,
            Serve = serve,
            Group = group,
            DeepVerifySchedule = deepSchedule,
            SecretRefs = top.Secrets,
            InlineSecrets = top.Secrets.Where(x => !x.Reference.StartsWith("env:", StringComparison.Ordinal) && !x.Reference.StartsWith("file:", StringComparison.Ordinal))
                .Select(x => x.Location).ToList(),
        };
    }

    /// <summary>
    /// The errors block by block (a top-level key, or one item of targets, sources or notify), as the file goes;
    /// within a block, unknown keys first (a misspelt key explains the "required" error that follows), then by place.
    /// </summary>
    private static List<ConfigException> InFileOrder(IReadOnlyList<ConfigException> errors, YamlMappingNode root)
    {
        var starts = new List<long>();
        foreach (var (k, v) in root.Children)
        {
            if (v is YamlSequenceNode seq && k is YamlScalarNode { Value: "targets" or "sources" or "notify" })
            {
                starts.AddRange(seq.Children.Select(item => item.Start.Line));
            }
            else
            {
                starts.Add(k.Start.Line);
            }
        }

        // The block an error is in: the last one that starts on or before its line.
        int BlockOf(ConfigException e) =>
            e.Location is { Line: > 0 } at ? starts.FindLastIndex(start => start <= at.Line) : int.MaxValue;

        return errors.OrderBy(BlockOf).ThenBy(e => e.UnknownKey ? 0 : 1).ThenBy(e => e.Location?.Line ?? long.MaxValue).ThenBy(e => e.Location?.Column ?? 0).ToList();
    }

    /// <summary>A duration that must be longer than zero (an RTO, a drill interval), or null when the key is absent.</summary>
    private static TimeSpan? Positive(ConfigMap? map, string key, TimeSpan? fallback = null)
    {
        var value = fallback is { } f ? map?.DurationOr(key, f) : map?.Duration(key);
        return value is { } v && v <= TimeSpan.Zero ? throw map!.Error(key, "must be longer than zero") : value;
    }

    private static EncryptionOptions? ParseEncryption(ConfigMap? map)
    {
        if (map is null)
        {
            return null;
        }

        var recipients = map.StringList("recipients") ?? [];
        foreach (var r in recipients)
        {
            try
            {
                Sealing.Age.AgeRecipient.Parse(r);
            }
            catch (Sealing.Age.AgeException e)
            {
                throw map.Error("recipients", e.Message + "; 'backstop keygen' makes a key and prints its recipient");
            }
        }

        var passphrase = map.Secret("passphrase");
        if (passphrase is not null && recipients.Count > 0)
        {
            throw map.Error("passphrase", "a passphrase cannot be combined with recipients (the age format allows an scrypt stanza only alone); use one or the other");
        }

        if (passphrase is null && recipients.Count == 0)
        {
            throw map.Error("recipients", "give at least one recipient (age1…, from 'backstop keygen') or a passphrase (env:NAME or file:/path)");
        }

        var identities = new List<SecretRef>();
        foreach (var i in map.StringList("identities") ?? [])
        {
            if (!i.StartsWith("file:", StringComparison.Ordinal))
            {
                throw map.Error("identities", "identities are files (file:/path/to/key.txt), never inline keys (the value is not shown: it may be a key)");
            }

            identities.Add(new SecretRef("file:" + map.ResolvePath(i[5..]), map.LocationOf("identities")));
        }

        map.EnsureAllKeysKnown();
        return new EncryptionOptions(recipients, passphrase, identities);
    }

    private static ConfigLocation LastGoodMark(string text, string file)
    {
        var parser = new Parser(new StringReader(text));
        var mark = new ConfigLocation(file, 1, 1);
        try
        {
            while (parser.MoveNext())
            {
                mark = new ConfigLocation(file, parser.Current!.End.Line, parser.Current.End.Column);
            }
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException)
        {
            if (e is YamlException y)
            {
                mark = new ConfigLocation(file, y.Start.Line, y.Start.Column);
            }
        }

        return mark;
    }

    private static Expectations ParseExpectations(ConfigMap? map, ISourceKind kind)
    {
        if (map is null)
        {
            return Expectations.Default;
        }

        var written = map.Keys.ToHashSet(StringComparer.Ordinal);
        var minBytes = map.Size("min_bytes");
        var facts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var fact in kind.Facts)
        {
            var key = "min_" + fact;
            if (map.Has(key))
            {
                // A bad value is recorded (all errors in one pass) and read as absent.
                if ((fact == "bytes" ? map.Size(key) : map.Int(key, 0)) is { } v)
                {
                    facts[fact] = v;
                }
            }
        }

        int? shrink = Expectations.DefaultMaxShrinkPercent;
        if (map.String("max_shrink") is { } s)
        {
            shrink = s == "none" ? null : map.Percent("max_shrink");
        }

        var onAnomaly = map.EnumOr("on_anomaly", AnomalyAction.Fail, ("fail", AnomalyAction.Fail), ("warn", AnomalyAction.Warn));
        var allowEmpty = map.BoolOr("allow_empty", false);
        var mount = map.BoolOr("mount", false);
        if (mount && !kind.ChecksMounts)
        {
            throw map.Error("mount", $"'{kind.Kind}' sources have no paths to check; mount applies to files sources");
        }

        map.EnsureAllKeysKnown(
            $"'{kind.Kind}' sources accept min_bytes, {string.Join(", ", kind.Facts.Select(f => "min_" + f))}, max_shrink (a percentage or none), on_anomaly, allow_empty{(kind.ChecksMounts ? ", mount" : "")}");
        return new Expectations(minBytes, facts, shrink, onAnomaly) { AllowEmpty = allowEmpty, Mount = mount, Written = written };
    }

    /// <summary><c>catalog.url</c> and <c>catalog.password</c>: a PostgreSQL catalog, or null when the catalog is a file.</summary>
    private static CatalogServer? CatalogServerOf(ConfigMap map)
    {
        var password = map.Secret("password");
        if (map.String("url") is not { } url)
        {
            return password is null ? null : throw map.Error("password", "catalog.password goes with catalog.url (a PostgreSQL catalog)");
        }

        var server = ServerDestination.Parse(url, CatalogServer.Schemes, CatalogServer.Example, null, message => map.Error("url", message.TrimStart(' ', ':')));
        if (server.Database.Length == 0)
        {
            throw map.Error("url", $"name the database, like {CatalogServer.Example}");
        }

        CatalogServer.CheckQuery(server, message => map.Error("url", message));

        return new CatalogServer(server, password);
    }

    /// <summary>The agent's own name from <c>BACKSTOP_MACHINE</c>, when set (refused where the top-level <c>machine:</c> is, when not a name).</summary>
    private static string? MachineFromEnvironment(ConfigMap top) =>
        Environment.GetEnvironmentVariable("BACKSTOP_MACHINE") is not { Length: > 0 } m ? null
        : IsValidName(m) ? m
        : throw new ConfigException(top.Location, $"BACKSTOP_MACHINE='{m}' is not a machine name: use letters, digits, '.', '_' and '-'");

    /// <summary>A <c>machine:</c> key (top level, a source, a target): a name, or null when absent.</summary>
    private static string? MachineOf(ConfigMap map, string key = "machine") =>
        map.String(key) is not { } m ? null
        : IsValidName(m) ? m
        : throw map.Error(key, $"'{m}' is not a machine name: use letters, digits, '.', '_' and '-'");

    /// <summary>Each source's <c>needs:</c> names other sources, and they never go round in a circle.</summary>
    private static int CheckNeeds(List<SourceDefinition> sources, ConfigMap top)
    {
        var names = sources.Select(x => x.Name).ToHashSet(StringComparer.Ordinal);
        var errors = new List<ConfigException>();
        foreach (var s in sources)
        {
            foreach (var n in s.Needs.Where(n => n == s.Name || !names.Contains(n)))
            {
                errors.Add(new ConfigException(s.Location, n == s.Name
                    ? $"source '{s.Name}': needs names the source itself"
                    : $"source '{s.Name}': needs '{n}', which no source is named; sources: {string.Join(", ", names.Order(StringComparer.Ordinal))}"));
            }
        }

        if (errors.Count > 0)
        {
            throw new ConfigException(errors.SelectMany(e => e.Errors).ToList());
        }

        var byName = sources.ToDictionary(x => x.Name, StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1: on the path, 2: done
        List<string>? Visit(string name, List<string> path)
        {
            if (state.GetValueOrDefault(name) == 2)
            {
                return null;
            }

            if (state.GetValueOrDefault(name) == 1)
            {
                return [.. path[path.IndexOf(name)..], name];
            }

            state[name] = 1;
            path.Add(name);
            foreach (var n in byName[name].Needs)
            {
                if (Visit(n, path) is { } cycle)
                {
                    return cycle;
                }
            }

            path.RemoveAt(path.Count - 1);
            state[name] = 2;
            return null;
        }

        foreach (var s in sources)
        {
            if (Visit(s.Name, []) is { } cycle)
            {
                throw new ConfigException(byName[cycle[0]].Location, $"sources' needs go round in a circle: {string.Join(" → ", cycle)}; a recovery could never start");
            }
        }

        _ = top;
        return 0;
    }

    private static string CheckName(ConfigMap map, string what)
    {
        var name = map.RequireString("name");
        if (!IsValidName(name))
        {
            throw map.Error("name", $"'{name}' is not a valid {what} name: use letters, digits, '.', '_' and '-' (it becomes a folder name)");
        }

        return name;
    }

    private static string Trim(string message)
    {
        var i = message.IndexOf("):", StringComparison.Ordinal);
        return i > 0 && message.StartsWith('(') ? message[(i + 2)..].Trim() : message;
    }
}
