using System.Text.RegularExpressions;

namespace Backstop.Tests.Architecture;

/// <summary>
/// The plugin contract, kept true by reading the sources: Core and the CLI never name a source or target kind (only the
/// one registration file, <c>src/Backstop/Plugins.cs</c>, does), never compare a kind's name, and a kind never reaches
/// into another kind's folder; what two kinds share lives in a folder that declares no kind (<c>Sources/Trees</c>, <c>Sources/Scratch</c>…) or in Core.
/// </summary>
public sealed partial class ArchitectureTests
{
    /// <summary>Known crossings still to be moved to shared code (issue 26); this list only shrinks.</summary>
    private static readonly HashSet<(string From, string To)> Pending = [];

    private static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        for (var dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (File.Exists(Path.Combine(dir, "Backstop.slnx")))
            {
                return dir;
            }
        }

        throw new InvalidOperationException("the repository's root (Backstop.slnx) is not above the test's folder");
    }

    private static IEnumerable<(string Path, string Text)> Sources(string folder) =>
        Directory.EnumerateFiles(Path.Combine(Root, folder), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/bin/", StringComparison.Ordinal) && !f.Contains("/obj/", StringComparison.Ordinal))
            .Select(f => (Path.GetRelativePath(Root, f), File.ReadAllText(f)));

    /// <summary>A project's kind folders: those that declare a kind (<c>: SourceKind&lt;…&gt;</c> or <c>: TargetKind&lt;…&gt;</c>); the rest are shared code.</summary>
    private static string[] Kinds(string project) =>
        [.. Directory.GetDirectories(Path.Combine(Root, "src", project)).Select(Path.GetFileName).OfType<string>()
            .Where(d => d is not ("bin" or "obj") && Sources($"src/{project}/{d}").Any(f => KindDeclaration().IsMatch(f.Text)))];

    [Fact]
    public void Every_registered_kind_has_a_folder_of_its_own()
    {
        var sources = Kinds("Backstop.Sources");
        var targets = Kinds("Backstop.Targets");
        Assert.Equal(Backstop.Cli.Plugins.Registry.SourceKinds.Count(), sources.Length);
        Assert.Equal(Backstop.Cli.Plugins.Registry.TargetKinds.Count(), targets.Length);
        Assert.DoesNotContain("Scratch", sources);
        Assert.DoesNotContain("Trees", sources);
    }

    [Fact]
    public void Core_and_the_cli_name_no_source_or_target_namespace_except_the_registration_file()
    {
        var crossings = Sources("src/Backstop.Core").Concat(Sources("src/Backstop"))
            .Where(f => f.Path != "src/Backstop/Plugins.cs" && ProjectReference().IsMatch(f.Text))
            .Select(f => $"{f.Path}: {ProjectReference().Match(f.Text).Value}").ToList();
        Assert.True(crossings.Count == 0, "Core and the CLI reach into a kind: " + string.Join("; ", crossings));
    }

    [Fact]
    public void Core_and_the_cli_never_compare_a_kind_name()
    {
        var names = Kinds("Backstop.Sources").Concat(Kinds("Backstop.Targets")).Select(k => k.ToLowerInvariant()).ToHashSet();
        var comparisons = Sources("src/Backstop.Core").Concat(Sources("src/Backstop"))
            .SelectMany(f => KindComparison().Matches(f.Text).Where(m => names.Contains(m.Groups["name"].Value)).Select(m => $"{f.Path}: {m.Value}"))
            .ToList();
        Assert.True(comparisons.Count == 0, "a kind is named by a comparison outside its folder: " + string.Join("; ", comparisons));
    }

    [Theory]
    [InlineData("Backstop.Sources")]
    [InlineData("Backstop.Targets")]
    public void A_kind_never_reaches_into_another_kinds_folder(string project)
    {
        var kinds = Kinds(project);
        var crossings = new List<string>();
        foreach (var from in kinds)
        {
            foreach (var (path, text) in Sources($"src/{project}/{from}"))
            {
                foreach (var to in kinds.Where(k => k != from && !Pending.Contains((from, k))))
                {
                    if (Regex.IsMatch(text, $@"(?<![\w.])(?:{Regex.Escape(project)}\.)?{to}\.[A-Z]\w*|using {Regex.Escape(project)}\.{to};", RegexOptions.None, TimeSpan.FromSeconds(5)))
                    {
                        crossings.Add($"{path} uses the {to} kind");
                    }
                }
            }
        }

        Assert.True(crossings.Count == 0, "kinds call each other (move what they share to a shared folder or Core): " + string.Join("; ", crossings));
    }

    [Fact]
    public void Core_and_the_cli_ask_a_source_for_a_capability_never_cast_it()
    {
        var casts = Sources("src/Backstop.Core").Concat(Sources("src/Backstop"))
            .SelectMany(f => CapabilityCast().Matches(f.Text).Select(m => $"{f.Path}: {m.Value}")).ToList();
        Assert.True(casts.Count == 0, "a source is cast to a capability (ask source.Capability<T>(): a kind may keep it in a part of its own): " + string.Join("; ", casts));
    }

    [Fact]
    public void Every_json_document_of_the_cli_is_a_declared_type_never_an_anonymous_object()
    {
        var anonymous = Sources("src/Backstop").SelectMany(f => AnonymousObject().Matches(f.Text).Select(m => $"{f.Path} at {f.Text[..m.Index].Count(c => c == '\n') + 1}"))
            .ToList();
        Assert.True(anonymous.Count == 0, "an anonymous object in the CLI (declare the document in Rendering/Documents.cs): " + string.Join("; ", anonymous));
    }

    [Fact]
    public void Every_pending_crossing_still_exists_so_the_list_only_shrinks()
    {
        foreach (var (from, to) in Pending)
        {
            var project = Directory.Exists(Path.Combine(Root, "src", "Backstop.Sources", from)) ? "Backstop.Sources" : "Backstop.Targets";
            Assert.True(Sources($"src/{project}/{from}").Any(f => Regex.IsMatch(f.Text, $@"(?<![\w.])(?:{Regex.Escape(project)}\.)?{to}\.[A-Z]\w*|using {Regex.Escape(project)}\.{to};",
                RegexOptions.None, TimeSpan.FromSeconds(5))), $"{from} no longer uses {to}: remove the pair from Pending");
        }
    }

    [Fact]
    public void Restore_help_is_made_from_what_every_registered_kind_says_it_takes()
    {
        var help = Backstop.Cli.CommandLine.Build().Subcommands.Single(c => c.Name == "restore").Options.Single(o => o.Name == "--to").Description!;
        foreach (var kind in Backstop.Cli.Plugins.Registry.SourceKinds.Select(k => Backstop.Cli.Plugins.Registry.Source(k)!))
        {
            Assert.False(string.IsNullOrWhiteSpace(kind.RestoreTo), $"{kind.Kind} does not say what restore --to takes");
            Assert.Contains($"{kind.Kind} → {kind.RestoreTo}", help, StringComparison.Ordinal);
        }
    }

    [GeneratedRegex(@"\b(?:as|is)\s+(?:not\s+)?(?:[\w.]+\.)?I(?:Restorable|PartialRestore|Drillable|HealthChecked|ContinuousArchive|PointInTimeRestorable|ArchiveReceiver|RecoveryMarked|StagedRecovery)\b")]
    private static partial Regex CapabilityCast();

    [GeneratedRegex(@"\bnew\s*\{")]
    private static partial Regex AnonymousObject();

    [GeneratedRegex(@":\s*(?:SourceKind|TargetKind)<")]
    private static partial Regex KindDeclaration();

    [GeneratedRegex(@"\bBackstop\.(?:Sources|Targets)\.\w+")]
    private static partial Regex ProjectReference();

    [GeneratedRegex(@"Kind\s*(?:==|is|!=)\s*""(?<name>[a-z0-9]+)""")]
    private static partial Regex KindComparison();
}
