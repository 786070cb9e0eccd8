using Backstop.Fuzz;
using Xunit.Abstractions;

namespace Backstop.Tests.Properties;

/// <summary>
/// Every input of the fuzzers' corpora (fuzz/corpus/TARGET: the seeds, and each crash a fuzzing run found and kept)
/// replayed through the same targets, in-process: each is accepted or refused as Backstop refuses, never a crash.
/// </summary>
public sealed class FuzzCorpusTests(ITestOutputHelper output)
{
    private static string Corpus(string target)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Backstop.slnx")))
            {
                return Path.Combine(dir.FullName, "fuzz", "corpus", target);
            }
        }

        throw new DirectoryNotFoundException("the repository (Backstop.slnx) is not above the test's folder");
    }

    public static TheoryData<string> Targets => [.. FuzzTargets.Names];

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_input_of_the_corpus_is_accepted_or_refused_never_a_crash(string target)
    {
        var files = Directory.GetFiles(Corpus(target));
        Assert.Contains(files, f => Path.GetFileName(f).StartsWith("seed", StringComparison.Ordinal));
        var started = DateTime.UtcNow;
        var accepted = 0;
        foreach (var file in files.Order(StringComparer.Ordinal))
        {
            if (FuzzTargets.Run(target, File.ReadAllBytes(file)))
            {
                accepted++;
            }

            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30), $"the {target} corpus takes longer than 30 s to replay");
        }

        // The seeds are valid inputs: a seed refused means the parser changed under them.
        Assert.All(files.Where(f => Path.GetFileName(f).StartsWith("seed", StringComparison.Ordinal)), f => Assert.True(FuzzTargets.Run(target, File.ReadAllBytes(f)), $"{f} is a seed and was refused"));
        output.WriteLine($"{target}: {files.Length} input(s), {accepted} accepted");
    }

    [Fact]
    public void The_committed_seeds_are_what_the_harness_makes()
    {
        foreach (var (target, name, bytes) in FuzzTargets.Seeds())
        {
            Assert.True(File.ReadAllBytes(Path.Combine(Corpus(target), name)).AsSpan().SequenceEqual(bytes),
                $"fuzz/corpus/{target}/{name} differs from FuzzTargets.Seeds(): run dotnet Backstop.Fuzz.dll --seeds fuzz/corpus");
        }
    }
}
