using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Restore;

/// <summary>Seeing what a files snapshot holds (<c>ls</c>) and restoring part of it (<c>--include</c>, <c>--strip-prefix</c>).</summary>
public sealed class PartialRestoreTests : IDisposable
{
    private readonly Sandbox _box = new();

    public PartialRestoreTests()
    {
        _box.Write("data/app/config/a.conf", "alpha=1\n");
        _box.Write("data/app/config/b.conf", "beta=2\n");
        _box.Write("data/app/logs/x.log", "noise\n");
        _box.Write("data/top.txt", "top\n");
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n  - { name: files, kind: files, paths: [./data] }\n" + Yaml.Command("app", "echo data"));
        Assert.Equal(0, _box.Run("run").ExitCode);
    }

    public void Dispose() => _box.Dispose();

    private string Data => _box["data"];

    [Fact]
    public void Ls_streams_the_stored_tar_as_tar_tv_does_and_as_json_and_narrows_to_a_path()
    {
        var all = _box.Run("ls", "latest", "--source", "files");
        Assert.True(all.ExitCode == 0, all.ToString());
        var line = all.Stdout.Split('\n').Single(l => l.EndsWith($"{Data}/app/config/a.conf", StringComparison.Ordinal));
        Assert.Matches("^-([r-][w-][x-]){3} [0-9]+/[0-9]+ ", line);
        Assert.Contains(" 8 ", line, StringComparison.Ordinal); // "alpha=1\n"
        Assert.Contains($"{Data}/top.txt", all.Stdout, StringComparison.Ordinal);

        var config = _box.Run("ls", "latest", $"{Data}/app/config", "--source", "files");
        Assert.Equal(3, config.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // the folder and its two files
        Assert.DoesNotContain("x.log", config.Stdout, StringComparison.Ordinal);

        var json = JsonDocument.Parse(_box.Run("ls", "latest", $"{Data}/app/logs", "--source", "files", "--json").Stdout).RootElement;
        var log = json.GetProperty("entries").EnumerateArray().Single(e => e.GetProperty("type").GetString() == "file");
        Assert.Equal($"{Data}/app/logs/x.log", log.GetProperty("name").GetString());
        Assert.Equal(6, log.GetProperty("size").GetInt64());
        Assert.Equal("files.tar", log.GetProperty("artifact").GetString());

        // A relative path, as a person types it from inside the source's folder: found at whatever depth it is.
        var relative = _box.Run("ls", "latest", "app/config", "--source", "files");
        Assert.True(relative.ExitCode == 0, relative.ToString());
        Assert.Equal(config.Stdout, relative.Stdout);

        var none = _box.Run("ls", "latest", "/no/such/path", "--source", "files");
        Assert.Equal(1, none.ExitCode);
        var notTar = _box.Run("ls", "latest", "--source", "app");
        Assert.Equal(2, notTar.ExitCode);
        Assert.Contains("holds no tar artifact", notTar.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Include_restores_only_matching_paths_and_strip_prefix_makes_them_relative()
    {
        var include = _box.Run("restore", "--source", "files", "--to", "out", "--include", "*.conf");
        Assert.True(include.ExitCode == 0, include.ToString());
        Assert.Equal("alpha=1\n", File.ReadAllText(_box[$"out{Data}/app/config/a.conf"]));
        Assert.True(File.Exists(_box[$"out{Data}/app/config/b.conf"]));
        Assert.False(File.Exists(_box[$"out{Data}/app/logs/x.log"]));
        Assert.False(File.Exists(_box[$"out{Data}/top.txt"]));

        var strip = _box.Run("restore", "--source", "files", "--to", "flat", "--strip-prefix", $"{Data}/app/config");
        Assert.True(strip.ExitCode == 0, strip.ToString());
        Assert.Equal(["a.conf", "b.conf"], Directory.GetFileSystemEntries(_box["flat"]).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var folder = _box.Run("restore", "--source", "files", "--to", "logs", "--include", $"{Data}/app/logs");
        Assert.True(folder.ExitCode == 0, folder.ToString());
        Assert.True(File.Exists(_box[$"logs{Data}/app/logs/x.log"])); // a folder brings what is under it

        var nothing = _box.Run("restore", "--source", "files", "--to", "empty", "--include", "*.nope");
        Assert.Equal(1, nothing.ExitCode);
        Assert.Contains("nothing in the snapshot matches", nothing.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["empty"]) && Directory.EnumerateFileSystemEntries(_box["empty"]).Any());

        var wrongKind = _box.Run("restore", "--source", "app", "--to", "x", "--include", "*");
        Assert.Equal(2, wrongKind.ExitCode);
        Assert.Contains("take part of a files snapshot", wrongKind.Stderr, StringComparison.Ordinal);
    }
}
