using Backstop.Core.Config;
using YamlDotNet.RepresentationModel;

namespace Backstop.Tests.Config;

/// <summary>
/// docs/configuration.md is generated from the documented keys and the parsers (types and defaults recorded while they
/// read each block's example); the unknown-key check and the one-pass error list are held to real mistakes here.
/// </summary>
public class ConfigReferenceTests
{
    private static readonly Core.Plugins.PluginRegistry Registry = Cli.Plugins.Registry;

    private static ConfigException Fails(string yaml) =>
        Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "/etc/backstop/backstop.yaml", Registry));

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Backstop.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("the repository root (Backstop.slnx) is not above the test's folder");
    }

    [Fact]
    public void The_reference_agrees_with_the_parsers_and_is_up_to_date()
    {
        var (markdown, problems) = Backstop.Cli.Docs.ConfigReferenceDocument.Build(Registry);
        Assert.Empty(problems);
        var file = Path.Combine(RepositoryRoot(), "docs", "configuration.md");
        Assert.True(File.ReadAllText(file) == markdown,
            "docs/configuration.md is stale: run ./backstop config reference > docs/configuration.md");

        // Every kind has its section, every key of it a row with a type.
        foreach (var kind in Registry.SourceKinds.Concat(Registry.TargetKinds))
        {
            Assert.Contains($"\n### {kind}\n", markdown, StringComparison.Ordinal);
        }

        Assert.Contains("| `port` | integer 1–65535 | `5432` | `5432` |", markdown, StringComparison.Ordinal);
        Assert.Contains("| `part_size` | size | `16MiB` |", markdown, StringComparison.Ordinal);
        Assert.Contains("| `url` | string | required |", markdown, StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_the_reference_misses_is_a_problem_the_test_sees()
    {
        // A parser that reads a key nobody documented: the check that guards the reference must notice.
        var registry = new Core.Plugins.PluginRegistry([new UndocumentedKind()], Registry.TargetKinds.Select(k => Registry.Target(k)!));
        var (_, problems) = Backstop.Cli.Docs.ConfigReferenceDocument.Build(registry);
        Assert.Contains(problems, p => p.Contains("reads 'secret_knob'", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("'documented_only' is documented, but the parser did not read it", StringComparison.Ordinal));
    }

    private sealed class UndocumentedKind : Core.Plugins.SourceKind<object>
    {
        public override string Kind => "files";

        public override IReadOnlyList<string> Facts => ["files"];

        public override IReadOnlyList<string> CountFacts => ["files"];

        public override IReadOnlyList<KeyDoc> Keys { get; } = [new("paths", "[/srv]", "paths"), new("documented_only", "1", "never read")];

        public override object Parse(ConfigMap map)
        {
            _ = map.StringList("paths");
            _ = map.Int("secret_knob");
            _ = map.Has("documented_only");
            return new object();
        }

        public override Core.Plugins.ISource Create(SourceDefinition definition, object options) => throw new NotSupportedException();
    }

    [Fact]
    public void Every_error_comes_in_one_pass_block_by_block_an_unknown_key_before_what_it_causes()
    {
        var e = Fails("""
            targets:
              - name: local
                kind: local
                path: ./backups
                retries: many
            sources:
              - name: app
                kind: files
                pathz: [/srv/app]
              - name: couch
                kind: couchdb
                urll: http://127.0.0.1:5984
                timeout: forever
              - name: db
                kind: postgres
                port: 99999
                expect: {min_tablez: 3}
            policy: {rpo: 0s}
            """);
        var got = e.Errors.Select(x => (x.Location!.Value.Line, x.Reason)).ToList();
        Assert.Collection(got,
            x => Assert.Equal((5, "targets[0].retries: 'many' is not a whole number"), x),
            x =>
            {
                Assert.Equal(9, x.Line);
                Assert.StartsWith("sources[0].pathz: unknown key (did you mean 'paths'?); a files source's keys are: name, kind, targets,", x.Reason, StringComparison.Ordinal);
                Assert.EndsWith("expect, incremental, machine, needs, paths, exclude", x.Reason, StringComparison.Ordinal);
            },
            x => Assert.Equal((7, "sources[0].paths: at least one path to back up is required"), x),
            x => Assert.StartsWith("sources[1].urll: unknown key (did you mean 'url'?); a couchdb source's keys are:", x.Reason, StringComparison.Ordinal),
            x => Assert.Equal(13, x.Line),
            x => Assert.StartsWith("sources[2].expect.min_tablez: unknown key (did you mean 'min_tables'?); a postgres source's expect keys are: min_bytes, max_shrink, on_anomaly, allow_empty, min_databases", x.Reason, StringComparison.Ordinal),
            x => Assert.Equal((16, "sources[2].port: 99999 is out of range (1..65535)"), x),
            x => Assert.Equal((18, "policy.rpo: must be longer than zero"), x));
        Assert.All(e.Errors, x => Assert.Equal("/etc/backstop/backstop.yaml", x.Location!.Value.File));
        Assert.Equal(string.Join(Environment.NewLine, e.Errors.Select(x => x.Message)), e.Message);
    }

    [Fact]
    public void A_broken_target_does_not_make_its_sources_fail_for_it()
    {
        // The target's name is known even though its options are wrong: the source naming it gets no second error.
        var e = Fails("""
            targets:
              - { name: nas, kind: sftp, host: nas.lan, user: b, path: /b, key: "env:K", host_key: "not a key" }
            sources:
              - { name: app, kind: files, paths: [/srv], targets: [nas] }
            """);
        var only = Assert.Single(e.Errors);
        Assert.Contains("host_key", only.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_misspelt_first_key_of_a_block_keeps_its_unknown_key_error_before_the_missing_one()
    {
        // In block style a mapping starts where its first key does: both errors share a place, and both are said.
        var e = Fails("""
            targets:
              - name: local
                kind: local
                path: /b
            sources:
              - nmae: app
                kind: files
                paths: [/srv]
            """);
        Assert.Collection(e.Errors,
            x => Assert.StartsWith("sources[0].nmae: unknown key (did you mean 'name'?)", x.Reason, StringComparison.Ordinal),
            x => Assert.Equal("sources[0]: the key 'name' is required", x.Reason));

        var top = Fails("tagrets:\n  - {name: local, kind: local, path: /b}\nsources:\n  - {name: a, kind: files, paths: [/srv]}\n");
        Assert.Collection(top.Errors,
            x => Assert.StartsWith("tagrets: unknown key (did you mean 'targets'?); top-level keys are:", x.Reason, StringComparison.Ordinal),
            x => Assert.StartsWith("targets: at least one target is needed", x.Reason, StringComparison.Ordinal));
    }

    [Fact]
    public void Targets_that_cannot_be_read_give_one_error_and_an_empty_list_on_a_source_is_still_refused()
    {
        var broken = Fails("targets: [local]\nsources:\n  - {name: a, kind: files, paths: [/srv], targets: [local]}\n");
        Assert.Contains("targets[0]: expected a mapping", Assert.Single(broken.Errors).Reason, StringComparison.Ordinal);

        var none = Fails("targets:\n  - {name: local, kind: local, path: /b}\nsources:\n  - {name: a, kind: files, paths: [/srv], targets: []}\n");
        Assert.Contains("min_copies is 1 but the source has only 0 target(s)", Assert.Single(none.Errors).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_mapping_shared_by_an_alias_is_checked_for_each_source_that_uses_it()
    {
        // min_files means something to a files source, nothing to a command source: the command source's copy is refused.
        var e = Fails("""
            targets:
              - {name: local, kind: local, path: /b}
            sources:
              - {name: c, kind: command, command: [/bin/true], expect: &e {min_files: 100}}
              - {name: f, kind: files, paths: [/srv], expect: *e}
            """);
        Assert.Contains(e.Errors, x => x.Reason.StartsWith("sources[0].expect.min_files: unknown key", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("sources:\n  - {name: c, kind: couchdb, databasez: all}\n", "sources[0].databasez: unknown key (did you mean 'databases'?); a couchdb source's keys are:")]
    [InlineData("sources:\n  - {name: r, kind: redis, replication: {min_replica: 1}}\n", "sources[0].replication.min_replica: unknown key (did you mean 'min_replicas'?); a redis source's replication keys are: min_replicas, max_lag, replicas")]
    [InlineData("sources:\n  - {name: p, kind: postgres, tools: {pgdump: /x}}\n", "a postgres source's tools keys are: pg_dump, pg_dumpall, pg_restore")]
    [InlineData("sources:\n  - {name: p, kind: postgres, drill: {smoke: [{sql: \"SELECT 1\", db: x}]}}\n", "sources[0].drill.smoke[0].db: unknown key")]
    [InlineData("polcy: {rpo: 1h}\n", "polcy: unknown key (did you mean 'policy'?); top-level keys are: catalog, staging, policy,")]
    [InlineData("notify:\n  - {kind: email, hots: smtp.lan}\n", "notify[0].hots: unknown key (did you mean 'host'?)")]
    public void An_unknown_key_names_the_nearest_and_the_valid_ones(string block, string expected)
    {
        var e = Fails("targets:\n  - {name: local, kind: local, path: /b}\n" + block);
        Assert.Contains(e.Errors, x => x.Reason.Contains(expected, StringComparison.Ordinal) && x.UnknownKey);
    }

    /// <summary>
    /// Every value of every kind's full example, and every top-level key's value (blocks whole too), made wrong three
    /// ways (a word where a number or a list goes, a mapping where a value goes, a list with a mapping in it): the answer
    /// is errors with their places, never a crash (no parser leans on a catch-all for a value already reported wrong), and
    /// never a source or target that passes with a mapping or a list where a value belongs.
    /// </summary>
    [Fact]
    public void A_wrong_value_anywhere_is_an_error_with_its_place_never_a_crash()
    {
        var examples = Registry.SourceKinds.Select(k => Backstop.Cli.Docs.ConfigReferenceDocument.SourceExample(Registry, k))
            .Concat(Registry.TargetKinds.Select(k => Backstop.Cli.Docs.ConfigReferenceDocument.TargetExample(Registry, k))).Append(Backstop.Cli.Docs.ConfigReferenceDocument.TopExample(Registry)).ToList();
        var tried = 0;
        foreach (var example in examples)
        {
            _ = ConfigLoader.Parse(example, "/etc/backstop/backstop.yaml", Registry);
            var stream = Load(example);
            var everywhere = ReferenceEquals(example, examples[^1]); // the top-level example: every key's value, blocks too
            var places = Scalars(stream.Documents[0].RootNode, !everywhere).Count;
            for (var i = 0; i < places; i++)
            {
                foreach (var wrong in new Func<YamlNode>[]
                         {
                             () => new YamlScalarNode("%wrong%"), () => new YamlMappingNode(new YamlScalarNode("a"), new YamlScalarNode("b")),
                             () => new YamlSequenceNode(new YamlScalarNode("x"), new YamlMappingNode(new YamlScalarNode("a"), new YamlScalarNode("b"))),
                         })
                {
                    var mutated = Load(example);
                    var (parent, key) = Scalars(mutated.Documents[0].RootNode, !everywhere)[i];
                    var replacement = wrong();
                    if (parent is YamlMappingNode m)
                    {
                        m.Children[key!] = replacement;
                    }
                    else
                    {
                        continue;
                    }

                    var text = Save(mutated);
                    tried++;
                    try
                    {
                        _ = ConfigLoader.Parse(text, "/etc/backstop/backstop.yaml", Registry);
                        Assert.False(replacement is YamlMappingNode or YamlSequenceNode && !everywhere && ((YamlScalarNode)key!).Value is not "env",
                            $"a mapping as the value of '{key}' was accepted:\n{text}");
                    }
                    catch (ConfigException e)
                    {
                        Assert.All(e.Errors, x => Assert.True(x.Location is { Line: > 0 }, $"no place: {x.Message}\n{text}"));
                    }
                }
            }
        }

        Assert.True(tried > 200, $"only {tried} mutations");
    }

    private static YamlStream Load(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream;
    }

    private static string Save(YamlStream stream)
    {
        var writer = new StringWriter();
        stream.Save(writer, assignAnchors: false);
        return writer.ToString();
    }

    /// <summary>Every scalar value of a mapping under the sources and targets lists, with its mapping and key.</summary>
    private static List<(YamlNode Parent, YamlNode? Key)> Scalars(YamlNode root, bool topOnlyInside = true)
    {
        var list = new List<(YamlNode, YamlNode?)>();
        void Walk(YamlNode node, bool inside)
        {
            switch (node)
            {
                case YamlMappingNode map:
                    foreach (var (k, v) in map.Children.ToList())
                    {
                        if ((inside || !topOnlyInside) && k is YamlScalarNode { Value: not ("name" or "kind" or "targets" or "sources") })
                        {
                            list.Add((map, k));
                        }

                        Walk(v, inside || k is YamlScalarNode { Value: "sources" or "targets" });
                    }

                    break;
                case YamlSequenceNode seq:
                    foreach (var item in seq)
                    {
                        Walk(item, inside);
                    }

                    break;
            }
        }

        Walk(root, false);
        return list;
    }
}
