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

    /// <summary>
    /// Runs one block of the parse; an error that stops it is recorded, and the rest goes on. A value already reported
    /// wrong reads as absent, so no block meets a null it did not expect (a test makes every value of the reference's
    /// examples wrong three ways and fails on any other exception).
    /// </summary>
    internal static T? Block<T>(ConfigDocument document, Func<T> read)
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
    }

    /// <summary>
    /// The whole file, block by block: each block's parser owns its keys (<see cref="ConfigReference.TopKeys"/> lists
    /// them in this order), and later blocks take what earlier ones decided (the policy's defaults, the target names).
    /// </summary>
    private static BackstopConfig? Read(ConfigMap top, string file, PluginRegistry plugins)
    {
        var document = top.Document;
        var catalog = CatalogBlock.Parse(top, document);
        var machine = Block(document, () => MachineBlock.Machine(top)) ?? BackstopConfig.ThisHost;
        var group = Block(document, () => MachineBlock.Group(top));
        var policy = Block(document, () => PolicyBlock.Parse(top, document)) ?? PolicySettings.Default;
        var compression = Block(document, () => CompressionBlock.Parse(top)) ?? CompressionBlock.Default;
        var targets = TargetsBlock.Parse(top, plugins, catalog, machine);
        var retention = Block(document, () => Retention.RetentionRules.Parse(top.Map("retention")));
        var notifiers = Block(document, () => Notify.NotifyConfig.Parse(top, null).ToList()) ?? [];
        var sources = SourcesBlock.Parse(top, new SourcesBlock.Defaults(plugins, policy, targets, retention, catalog, machine));
        notifiers.AddRange(sources.Notifiers);
        var recovery = Block(document, () => RecoveryOptions.Parse(top.Map("recovery"),
            sources.Sources.Select(x => x.Machine).Concat(targets.Targets.Select(t => t.Machine)).ToHashSet(StringComparer.Ordinal), targets.Names)) ?? RecoveryOptions.None;
        var encryptionRead = false;
        var encryption = Block(document, () =>
        {
            var options = EncryptionBlock.Parse(top);
            encryptionRead = true;
            return options;
        });
        foreach (var def in sources.Sources.Where(_ => encryption is null && encryptionRead))
        {
            if (plugins.Source(def.Kind)?.RequiresEncryption(def.Options) is { } why)
            {
                document.Report(new ConfigException(def.Location, $"source '{def.Name}': {why}"));
            }
        }

        var serve = Block(document, () => ServeBlock.Parse(top)) ?? ServeOptions.Default;
        var deepSchedule = Block(document, () => VerifyBlock.Parse(top, policy.Zone));
        var doctor = Block(document, () => DoctorBlock.Parse(top)) ?? DoctorOptions.Default;
        top.EnsureAllKeysKnown(KeyRows.Hint("top-level", ConfigReference.TopKeys));
        foreach (var twice in notifiers.GroupBy(n => n.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            document.Report(new ConfigException(twice.Last().Location, $"a notifier named '{twice.Key}' is already defined; notifier names must be unique"));
        }

        if (document.Errors.Count > 0)
        {
            return null;
        }

        return new BackstopConfig(file, catalog.Path, catalog.Staging, policy.ToPolicy(), compression, targets.Targets, sources.Sources)
        {
            Encryption = encryption,
            Machine = machine,
            Recovery = recovery,
            KeepFailed = catalog.KeepFailed,
            CatalogServer = catalog.Server,
            DefaultMachine = catalog.DefaultMachine,
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

    internal static string CheckName(ConfigMap map, string what)
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
