using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Run;

/// <summary>
/// What a person sees when copies go bad (issue 20, A): latest falls back past a snapshot whose every copy is bad and
/// says so (exit 3), the copies' states stay true wherever a finding is made, and a dead snapshot is unrestorable,
/// said once, and pruned once a newer valid one exists.
/// </summary>
public sealed class DamageTests : IDisposable
{
    private readonly Sandbox _box = new();

    public DamageTests()
    {
        Assert.Equal(0, _box.Shell("mkdir -p data && printf older > data/a.txt").ExitCode);
        _box.WriteConfig("catalog: ./state/catalog.db\npolicy: { min_copies: 2 }\ntargets:\n  - { name: first, kind: local, path: ./first }\n" +
                         "  - { name: second, kind: local, path: ./second }\nsources:\n  - { name: f, kind: files, paths: [./data] }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
        Thread.Sleep(1100); // snapshot ids are per second
        File.WriteAllText(_box["data/a.txt"], "newest");
        Assert.Equal(0, _box.Run("run").ExitCode);
    }

    public void Dispose() => _box.Dispose();

    private List<string> Ids() => [.. _box.Snapshots().Select(s => s.GetProperty("snapshot").GetString()!).Order(StringComparer.Ordinal)];

    private void Corrupt(string snapshot, string target)
    {
        var copy = Directory.GetFiles(_box[$"{target}/f/{snapshot}"], "files.tar.zst").Single();
        File.WriteAllBytes(copy, [.. File.ReadAllBytes(copy).Select((b, i) => i == 100 ? (byte)(b ^ 1) : b)]);
    }

    private JsonElement Status() => _box.Json("status").GetProperty("sources")[0];

    private string Condition(string snapshot) =>
        _box.Snapshots().Single(s => s.GetProperty("snapshot").GetString() == snapshot).GetProperty("condition").GetString()!;

    [Fact]
    public void Latest_falls_back_past_a_snapshot_whose_every_copy_is_bad_naming_both_and_exits_3()
    {
        var (older, newest) = (Ids()[0], Ids()[1]);
        Corrupt(newest, "first");
        Corrupt(newest, "second");

        var r = _box.Run("restore", "--source", "f", "--to", _box["out"]);
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Contains($"no copy of files.tar.zst of snapshot {newest} matches its SHA-256", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"snapshot {newest} is unrestorable; restoring {older}, the newest older snapshot with a good copy", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"restored {older}, not the newest", r.Stdout, StringComparison.Ordinal);
        Assert.Equal("older", File.ReadAllText(Path.Combine(_box["out"], _box["data"].TrimStart('/'), "a.txt")));

        // What the restore found is recorded: the copies are corrupt, the snapshot unrestorable, the source failing.
        Assert.Equal("unrestorable", Condition(newest));
        var status = Status();
        Assert.Equal("failing", status.GetProperty("state").GetString());
        Assert.Equal(older, status.GetProperty("last_valid").GetProperty("snapshot").GetString());
        Assert.Equal(2, status.GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
        Assert.Equal(1, _box.Run("status").ExitCode);

        // A snapshot named never falls back.
        var named = _box.Run("restore", "--source", "f", "--snapshot", newest, "--to", _box["named"]);
        Assert.True(named.ExitCode == 1, named.ToString());
        Assert.DoesNotContain("restoring " + older, named.Stderr, StringComparison.Ordinal);

        // A drill of latest takes the older one and fails: the newest backup is broken.
        var drill = _box.Run("drill", "--json");
        Assert.Equal(1, drill.ExitCode);
        var d = JsonDocument.Parse(drill.Stdout).RootElement.GetProperty("drills")[0];
        Assert.Equal(older, d.GetProperty("snapshot").GetString());
        Assert.False(d.GetProperty("passed").GetBoolean());
        Assert.Contains($"the newest snapshot {newest} is unrestorable", d.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("restored and passed its checks", d.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Copy_counts_follow_every_finding_and_a_dead_snapshot_is_said_once_and_pruned_once_a_newer_valid_one_exists()
    {
        var (older, newest) = (Ids()[0], Ids()[1]);
        // verify finds one bad copy of two: the snapshot restores from the other, so the source is degraded with 1 of 2, not never.
        Corrupt(newest, "first");
        Assert.Equal(1, _box.Run("verify", "--deep").ExitCode);
        var status = Status();
        Assert.Equal("degraded", status.GetProperty("state").GetString());
        Assert.Equal(newest, status.GetProperty("last_valid").GetProperty("snapshot").GetString());
        Assert.Equal(1, status.GetProperty("last_valid").GetProperty("verified_copies").GetInt32());
        Assert.Contains("1 verified copy of the 2 the policy asks", _box.Run("status").Stdout, StringComparison.Ordinal);
        Assert.Equal("short", Condition(newest));

        // A drill finds the other copy bad too: counted at once, without a verify.
        Corrupt(newest, "second");
        Assert.Equal(1, _box.Run("drill").ExitCode);
        Assert.Equal("unrestorable", Condition(newest));
        Assert.Equal("failing", Status().GetProperty("state").GetString());
        Assert.Contains($"the newest snapshot {newest} is unrestorable", _box.Run("status").Stdout, StringComparison.Ordinal);

        // Nothing to heal from: said once per run, not once per target, and kept until a newer valid snapshot exists.
        Thread.Sleep(1100);
        File.WriteAllText(_box["data/a.txt"], "third");
        var run = _box.Run("run", "--no-prune");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(1, CountOf(run.All, $"snapshot {newest} is unrestorable"));
        _box.WriteConfig(File.ReadAllText(_box.Config) + "retention: { last: 5 }\n");
        var dry = _box.Run("prune", "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.Contains(newest, dry.Stdout, StringComparison.Ordinal);
        Assert.Contains("unrestorable", dry.Stdout, StringComparison.Ordinal);
        Assert.True(Directory.Exists(_box[$"first/f/{newest}"]));
        Assert.Equal(0, _box.Run("prune").ExitCode);
        Assert.False(Directory.Exists(_box[$"first/f/{newest}"]));
        Assert.False(Directory.Exists(_box[$"second/f/{newest}"]));
        Assert.True(Directory.Exists(_box[$"first/f/{older}"]));
        Assert.Equal(0, _box.Run("drill").ExitCode); // the failed drill of the dead snapshot is history once a drill passes
        Assert.Equal("ok", Status().GetProperty("state").GetString());
    }

    private static int CountOf(string text, string part)
    {
        var n = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }
}

/// <summary>Drills prove every copy in turn: they rotate over a source's targets, and doctor names a copy not drilled lately.</summary>
public sealed class DrillRotationTests : IDisposable
{
    private readonly Sandbox _box = new();

    public DrillRotationTests()
    {
        Assert.Equal(0, _box.Shell("mkdir -p data && printf a > data/a.txt").ExitCode);
        _box.WriteConfig("catalog: ./state/catalog.db\npolicy: { min_copies: 2 }\ndoctor: { crontabs: [], systemd: [] }\ntargets:\n" +
                         "  - { name: local, kind: local, path: ./local }\n  - { name: offsite, kind: local, path: ./offsite }\n" +
                         "sources:\n  - { name: f, kind: files, paths: [./data], drill: { every: 7d } }\n");
        Assert.Equal(0, _box.Run("run").ExitCode);
    }

    public void Dispose() => _box.Dispose();

    private (string Target, JsonElement Status) Drill(params string[] extra)
    {
        var r = _box.Run(["drill", "--json", .. extra]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var d = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("drills")[0];
        var target = d.GetProperty("copies")[0].GetProperty("target").GetString()!;
        return (target, _box.Json("status").GetProperty("sources")[0].GetProperty("last_drill"));
    }

    [Fact]
    public void Drills_rotate_over_the_targets_and_status_and_doctor_name_the_copy_drilled()
    {
        // doctor before any drill of the off-site copy: it was never proven (after one drill of the local copy).
        var (first, status) = Drill();
        Assert.Equal("local", first);
        Assert.Equal("local", status.GetProperty("target").GetString());
        var doctor = JsonDocument.Parse(_box.Run("doctor", "--json").Stdout).RootElement.GetProperty("checks").EnumerateArray()
            .Single(c => c.GetProperty("subject").GetString() == "source 'f' on target 'offsite'");
        Assert.Equal("warn", doctor.GetProperty("status").GetString());
        Assert.Contains("never drilled", doctor.GetProperty("message").GetString(), StringComparison.Ordinal);

        // The next drill takes the copy drilled least recently: the off-site one; then the local one again.
        var (second, status2) = Drill();
        Assert.Equal("offsite", second);
        Assert.Equal("offsite", status2.GetProperty("target").GetString());
        Assert.Equal("local", Drill().Target);
        Assert.DoesNotContain(JsonDocument.Parse(_box.Run("doctor", "--json").Stdout).RootElement.GetProperty("checks").EnumerateArray(),
            c => c.GetProperty("subject").GetString()!.Contains("on target", StringComparison.Ordinal));

        // --target picks one, and only that copy is tried: a corrupt one fails the drill instead of passing over it.
        Assert.Equal("offsite", Drill("--target", "offsite").Target);
        var copy = Directory.GetFiles(_box["offsite"], "files.tar.zst", SearchOption.AllDirectories).Single();
        File.WriteAllBytes(copy, [.. File.ReadAllBytes(copy).Select((b, i) => i == 64 ? (byte)(b ^ 1) : b)]);
        var bad = _box.Run("drill", "--target", "offsite");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("offsite", bad.Stdout, StringComparison.Ordinal);
        // One copy proven bad is not an unrestorable snapshot: the local copy was not read, and is good.
        Assert.Equal("short", _box.Snapshots().Single().GetProperty("condition").GetString());
        Assert.Equal(2, _box.Run("drill", "--target", "nowhere").ExitCode);
    }
}
