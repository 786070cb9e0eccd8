using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Backstop.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Backstop.IntegrationTests.Faults;

/// <summary>
/// kill -9 at random moments while bytes are in flight to a NAS (sshd through rclone's SFTP) and to S3 (s3rver), and
/// while restore and drill read from them. After each moment: the catalog answers, and every committed snapshot is
/// whole on the target (<c>verify</c>). After the campaign and one clean run: nothing on the target that no committed
/// snapshot owns (no orphan, no temporary object, no empty folder, every multipart upload a killed run began aborted),
/// nothing in staging, <c>verify --deep</c> passes and the newest snapshot restores equal to the data.
/// <para>
/// The number of moments comes from <c>BACKSTOP_KILL_MOMENTS</c> (the suite's default keeps CI short;
/// <c>bench/killpoints.sh</c> runs the full campaign), the random seed from <c>BACKSTOP_KILL_SEED</c> (printed, to
/// replay one), and with <c>BACKSTOP_KILL_REPORT=FILE</c> each campaign appends its line of results to FILE.
/// </para>
/// </summary>
public sealed class KillCampaignTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static int Moments => int.TryParse(Environment.GetEnvironmentVariable("BACKSTOP_KILL_MOMENTS"), CultureInfo.InvariantCulture, out var n) ? n : 6;

    [Fact]
    public void Run_restore_and_drill_killed_at_random_moments_on_sftp_leave_nothing_behind_and_lose_nothing()
    {
        using var ssh = new SshServer();
        var nas = ssh["nas"];
        var campaign = new Campaign(this, "sftp", ssh.TargetYaml(nas), null);
        campaign.Play();

        // No temporary file, no folder without its manifest, no empty folder, nothing of a snapshot that is not committed.
        var committed = campaign.Committed();
        var files = Sandbox.FilesUnder(nas).ToList();
        Assert.DoesNotContain(files, f => Path.GetFileName(f).EndsWith(".partial", StringComparison.Ordinal));
        foreach (var folder in files.Where(f => f.Split('/') is [_, var id, _] && id.Length > 10).Select(f => f[..f.LastIndexOf('/')]).Distinct())
        {
            Assert.True(committed.Contains(folder.Split('/')[1]), $"{folder} on the NAS belongs to no committed snapshot");
            Assert.Contains(folder + "/MANIFEST.json", files);
        }

        var empty = Directory.EnumerateDirectories(nas, "*", SearchOption.AllDirectories).Where(d => !Directory.EnumerateFileSystemEntries(d).Any()).ToList();
        Assert.True(empty.Count == 0, "empty folders left on the NAS: " + string.Join(", ", empty));
        campaign.Report($"{campaign.Summary}; after the last run: {files.Count} files on the NAS, all of committed snapshots, no empty folder");
    }

    [Fact]
    public void Run_restore_and_drill_killed_at_random_moments_on_s3_leave_nothing_behind_and_lose_nothing()
    {
        using var s3 = new S3Server();
        using var proxy = new FaultProxy(s3.Port, long.MaxValue, recordHttp: true); // never faults: reads the requests
        var yaml = $"  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{proxy.Port}\", bucket: {s3.Bucket}, part_size: 5MiB, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\" }}\n";
        var campaign = new Campaign(this, "s3", yaml, S3Server.Env);
        campaign.Play();

        var committed = campaign.Committed();
        var bucket = Path.Combine(s3.Root, s3.Bucket);
        var keys = Sandbox.FilesUnder(bucket).Where(f => f.EndsWith("._S3rver_object", StringComparison.Ordinal))
            .Select(f => f[..^"._S3rver_object".Length]).ToList();
        Assert.DoesNotContain(keys, k => Path.GetFileName(k).EndsWith(".partial", StringComparison.Ordinal));
        foreach (var k in keys.Where(k => k.Split('/') is [_, var id, _] && id.Length > 10))
        {
            Assert.True(committed.Contains(k.Split('/')[1]), $"{k} in the bucket belongs to no committed snapshot");
        }

        // Every multipart upload never completed (s3rver keeps each in its own folder with its key, and can neither list nor
        // abort them: it answers 501 and 405) was journaled by the run that began it, and a later run asked the server to
        // abort it by its id, or, when the run was killed before it had the id, to list the uploads of its key.
        var uploads = Path.Combine(bucket, "._S3rver_uploads");
        var unfinished = Directory.Exists(uploads) ? Directory.GetDirectories(uploads).Select(d => (Id: Path.GetFileName(d), Key: File.ReadAllText(Path.Combine(d, "key")))).ToList() : [];
        var requests = proxy.Requests;
        var aborts = requests.Count(r => r.StartsWith("DELETE ", StringComparison.Ordinal) && r.Contains("uploadId=", StringComparison.Ordinal));
        var lookups = requests.Count(r => r.StartsWith("GET ", StringComparison.Ordinal) && r.Contains("uploads", StringComparison.Ordinal));
        foreach (var (id, key) in unfinished)
        {
            Assert.True(requests.Any(r => r.StartsWith("DELETE ", StringComparison.Ordinal) && r.Contains("uploadId=" + id, StringComparison.Ordinal))
                        || requests.Any(r => r.StartsWith("GET ", StringComparison.Ordinal) && r.Contains("uploads", StringComparison.Ordinal) && r.Contains("prefix=" + Uri.EscapeDataString(key), StringComparison.Ordinal)),
                $"multipart upload {id} of {key} was left, and no later run asked to abort it or looked for it; requests: {string.Join(" | ", requests.Where(r => r.Contains("upload", StringComparison.Ordinal)))}");
        }

        Assert.Empty(Directory.GetFiles(_box["state/private/s3"], "multipart-*")); // every journal was read and removed
        campaign.Report($"{campaign.Summary}; after the last run: {keys.Count} objects, all of committed snapshots; {unfinished.Count} multipart uploads left unfinished by kills, each asked to be aborted by a later run ({aborts} aborts, {lookups} lookups by key sent)");
    }

    private sealed class Campaign(KillCampaignTests test, string kind, string targetYaml, Dictionary<string, string>? env)
    {
        private readonly Sandbox _box = test._box;
        private readonly int _seed = int.TryParse(Environment.GetEnvironmentVariable("BACKSTOP_KILL_SEED"), CultureInfo.InvariantCulture, out var s) ? s : Random.Shared.Next();
        private int _killed;
        private int _finishedFirst;
        private int _restores;
        private int _drills;

        public string Summary { get; private set; } = "";

        private CliResult Run(params string[] args) => _box.Run(args, env, TimeSpan.FromMinutes(5));

        public HashSet<string> Committed() =>
            _box.Json(["list", "--all", "--json"], env).GetProperty("snapshots").EnumerateArray()
                .Where(x => x.GetProperty("state").GetString() == "committed").Select(x => x.GetProperty("snapshot").GetString()!).ToHashSet(StringComparer.Ordinal);

        public void Play()
        {
            var random = new Random(_seed);
            test.Log($"{kind}: seed {_seed} (BACKSTOP_KILL_SEED={_seed} replays it), {Moments} moments of run, {Math.Max(2, Moments / 3)} each of restore and drill");
            WriteRandom("data/base.bin", 6 << 20, random);
            _box.WriteConfig("catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n" + targetYaml +
                             "sources:\n  - { name: files, kind: files, paths: [./data] }\n");
            var clock = Stopwatch.StartNew();
            var first = Run("run");
            Assert.True(first.ExitCode == 0, first.ToString());
            var runTime = clock.Elapsed;

            // Until MOMENTS runs were killed mid-flight (a run that finishes first is no moment; it tells how long the next one
            // may take, as a run stores only what changed), at most three times as many tries.
            for (var i = 0; _killed < Moments && i < 3 * Moments; i++)
            {
                // New bytes each time (the files source stores only what changed), and now and then a file goes.
                WriteRandom($"data/new-{i}.bin", random.Next(1, 8) << 20, random);
                if (i % 5 == 4)
                {
                    File.Delete(_box[$"data/new-{i - 2}.bin"]);
                }

                clock.Restart();
                if (KillAt(["run"], TimeSpan.FromMilliseconds(random.NextDouble() * runTime.TotalMilliseconds * 1.1), $"run {i}"))
                {
                    _killed++;
                }
                else
                {
                    _finishedFirst++;
                    runTime = clock.Elapsed;
                }

                AfterEachMoment($"run {i}");
            }

            clock.Restart();
            var restore = Run("restore", "--source", "files", "--to", _box["restored-clean"]);
            Assert.True(restore.ExitCode == 0, restore.ToString());
            var restoreTime = clock.Elapsed;
            for (var i = 0; i < Math.Max(2, Moments / 3); i++)
            {
                KillAt(["restore", "--source", "files", "--to", _box[$"restored-{i}"]], TimeSpan.FromMilliseconds(random.NextDouble() * restoreTime.TotalMilliseconds * 1.2), $"restore {i}");
                _restores++;
                AfterEachMoment($"restore {i}");
                KillAt(["drill", "--source", "files"], TimeSpan.FromMilliseconds(random.NextDouble() * restoreTime.TotalMilliseconds * 1.5), $"drill {i}");
                _drills++;
                AfterEachMoment($"drill {i}");
            }

            // One clean run sweeps what the kills left; then everything committed is whole and the newest restores as the data is.
            var clean = Run("run");
            Assert.True(clean.ExitCode == 0, clean.ToString());
            test.Log("clean run: " + clean.Stdout);
            Assert.Empty(Directory.GetFileSystemEntries(_box["state/staging"]));
            var deep = Run("verify", "--deep");
            Assert.True(deep.ExitCode == 0, deep.ToString());
            var drill = Run("drill", "--source", "files");
            Assert.True(drill.ExitCode == 0, drill.ToString());
            var final = Run("restore", "--source", "files", "--to", _box["restored-final"]);
            Assert.True(final.ExitCode == 0, final.ToString());
            var restored = _box["restored-final"] + _box["data"];
            var want = Sandbox.FilesUnder(_box["data"]);
            Assert.Equal(want, Sandbox.FilesUnder(restored));
            foreach (var f in want)
            {
                Assert.True(File.ReadAllBytes(Path.Combine(restored, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(_box["data"], f))), $"{f} restored differs");
            }

            Assert.True(_killed >= Moments, $"only {_killed} of {Moments} runs could be killed mid-flight");
            Summary = $"{kind}: {_killed} runs killed mid-flight ({_finishedFirst} more finished before their moment), " +
                      $"{_restores} restores and {_drills} drills killed; seed {_seed}; 0 failures";
        }

        /// <summary>Starts the command and kills it (and its children) with -9 at the moment; false when it finished first.</summary>
        private bool KillAt(string[] args, TimeSpan moment, string what)
        {
            using var victim = _box.Start(args, env);
            var waited = Stopwatch.StartNew();
            while (waited.Elapsed < moment && !victim.HasExited)
            {
                Thread.Sleep(5);
            }

            if (victim.HasExited)
            {
                var r = victim.Wait();
                Assert.True(r.ExitCode == 0, $"{what} finished on its own and failed: {r}");
                test.Log($"{what}: finished before its moment ({moment.TotalMilliseconds:0} ms)");
                return false;
            }

            victim.KillHard();
            test.Log($"{what}: killed after {moment.TotalMilliseconds:0} ms");
            return true;
        }

        private void AfterEachMoment(string what)
        {
            var status = _box.Run(["status", "--json"], env);
            Assert.True(status.ExitCode is 0 or 1, $"after {what} the catalog did not answer: {status}");
            using (JsonDocument.Parse(status.Stdout))
            {
            }

            var verify = Run("verify");
            Assert.True(verify.ExitCode == 0, $"after {what} a committed snapshot is not whole: {verify}");
        }

        private void WriteRandom(string relative, int size, Random random)
        {
            var bytes = new byte[size];
            random.NextBytes(bytes);
            File.WriteAllBytes(_box.Write(relative, ""), bytes);
        }

        public void Report(string line)
        {
            test.Log(line);
            if (Environment.GetEnvironmentVariable("BACKSTOP_KILL_REPORT") is { Length: > 0 } file)
            {
                File.AppendAllText(file, line + "\n");
            }
        }
    }

    private void Log(string line) => output.WriteLine(line);
}
