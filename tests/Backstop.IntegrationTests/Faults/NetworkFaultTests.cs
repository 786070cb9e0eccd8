using System.Diagnostics;
using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Faults;

/// <summary>
/// The network misbehaving between Backstop and a real S3 server (s3rver) or NAS (sshd): seconds of delay, a server
/// slower than the timeout, one that accepts and never answers, bytes lost or flipped on the way, connections cut or
/// reset mid-upload. `tc netem` is not available on these machines (its qdisc is unknown to the kernel), so the faults
/// come from <see cref="FaultProxy"/> on loopback. Each time: the copy succeeds read back, or fails within its timeout
/// named; only idempotent operations are retried; nothing is reported good that was not read back.
/// </summary>
public sealed class NetworkFaultTests : IDisposable
{
    private readonly Xunit.Abstractions.ITestOutputHelper _output;
    private readonly Sandbox _box = new();
    private readonly S3Server _s3 = new();

    public NetworkFaultTests(Xunit.Abstractions.ITestOutputHelper output)
    {
        _output = output;
        var random = new byte[3 << 20];
        new Random(11).NextBytes(random);
        File.WriteAllBytes(_box.Write("data/photo.bin", ""), random);
        _box.Write("data/notes.txt", "ledger line\n");
    }

    public void Dispose()
    {
        _s3.Dispose();
        _box.Dispose();
    }

    private void Config(string target) =>
        _box.WriteConfig("catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: { min_copies: 1, rpo: 24h }\ntargets:\n" + target +
                         "sources:\n  - { name: files, kind: files, paths: [./data] }\n");

    private string S3Yaml(FaultProxy proxy, string extra) =>
        $"  - {{ name: s3, kind: s3, endpoint: \"http://127.0.0.1:{proxy.Port}\", bucket: {_s3.Bucket}, access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\", {extra} }}\n";

    private CliResult Run(params string[] args) => _box.Run(args, S3Server.Env, TimeSpan.FromMinutes(3));

    private JsonElement Snapshot() => _box.Json(["list", "--all", "--json"], S3Server.Env).GetProperty("snapshots")[0];

    /// <summary>After a failed copy: the server behaves again, the next run commits, removes what the failed one left, and all verifies deep.</summary>
    private void NextRunHeals()
    {
        Config(_s3.TargetYaml());
        var next = Run("run");
        Assert.True(next.ExitCode == 0, next.ToString());
        var deep = Run("verify", "--deep");
        Assert.True(deep.ExitCode == 0, deep.ToString());
        var committed = _box.Json(["list", "--all", "--json"], S3Server.Env).GetProperty("snapshots").EnumerateArray()
            .Where(s => s.GetProperty("state").GetString() == "committed").Select(s => s.GetProperty("snapshot").GetString()!).ToHashSet();
        var bucket = Path.Combine(_s3.Root, _s3.Bucket);
        foreach (var key in Sandbox.FilesUnder(bucket).Where(f => f.EndsWith("._S3rver_object", StringComparison.Ordinal) && f.Split('/').Length == 3))
        {
            Assert.True(committed.Contains(key.Split('/')[1]), $"{key} is left in the bucket by a failed snapshot");
        }
    }

    [Fact]
    public void Delays_of_seconds_within_the_timeout_slow_the_copy_and_it_commits_read_back()
    {
        using var proxy = new FaultProxy(_s3.Port, long.MaxValue) { Latency = TimeSpan.FromSeconds(1) };
        Config(S3Yaml(proxy, "timeout: 20s, retries: 0"));
        var clock = Stopwatch.StartNew();
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(5), $"the delays did not apply ({clock.Elapsed})");
        Assert.Contains("verified on s3", run.Stdout, StringComparison.Ordinal);
        Assert.Equal("committed", Snapshot().GetProperty("state").GetString());
    }

    [Fact]
    public void A_server_slower_than_the_timeout_fails_the_copy_within_the_timeout_and_nothing_counts()
    {
        using var proxy = new FaultProxy(_s3.Port, long.MaxValue) { Latency = TimeSpan.FromSeconds(5) };
        Config(S3Yaml(proxy, "timeout: 2s, retries: 1"));
        var clock = Stopwatch.StartNew();
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"took {clock.Elapsed}");
        Assert.Contains("did not finish within 2s", run.All, StringComparison.Ordinal);
        Assert.Contains("raise 'timeout' on the target", run.All, StringComparison.Ordinal);
        Assert.NotEqual("committed", Snapshot().GetProperty("state").GetString());
        proxy.Latency = TimeSpan.Zero;
        NextRunHeals();
    }

    [Fact]
    public void A_server_that_accepts_and_never_answers_fails_at_the_timeout_named()
    {
        using var proxy = new FaultProxy(_s3.Port, long.MaxValue);
        proxy.Partition(); // accepted, never answered
        Config(S3Yaml(proxy, "timeout: 2s, retries: 1"));
        var clock = Stopwatch.StartNew();
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
        Assert.Contains("target 's3'", run.All, StringComparison.Ordinal);
        Assert.Contains("did not finish within 2s", run.All, StringComparison.Ordinal);
        Assert.DoesNotContain(_box.Json(["list", "--all", "--json"], S3Server.Env).GetProperty("snapshots").EnumerateArray(),
            s => s.GetProperty("state").GetString() == "committed");
    }

    [Theory]
    [InlineData(ProxyFault.Drop)]
    [InlineData(ProxyFault.Corrupt)]
    [InlineData(ProxyFault.Truncate)]
    [InlineData(ProxyFault.ResetOnce)]
    public void Bytes_lost_flipped_or_cut_mid_upload_never_pass_for_a_copy_and_the_write_is_not_retried(ProxyFault fault)
    {
        using var proxy = new FaultProxy(_s3.Port, budget: 1 << 20, FaultProxy.Direction.Up, fault, recordHttp: true);
        Config(S3Yaml(proxy, "timeout: 5s, retries: 2"));
        var run = Run("run");
        _output.WriteLine($"{fault}: exit {run.ExitCode}: {run.Stdout.Split('\n').LastOrDefault(l => l.Contains("snapshot", StringComparison.Ordinal))}");
        Assert.True(proxy.Tripped, "the fault never happened");
        var snapshot = Snapshot();
        if (run.ExitCode == 0)
        {
            // Only possible when the damage was caught and the artifact sent again whole: then it was read back.
            Assert.Contains("verified on s3", run.Stdout, StringComparison.Ordinal);
            Assert.Equal(0, Run("verify", "--deep").ExitCode);
            return;
        }

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Equal("failed", snapshot.GetProperty("state").GetString());
        Assert.Contains("target 's3'", run.All, StringComparison.Ordinal);
        // The artifact's write went once: a write is never retried (its stream cannot be replayed), only probes, stats,
        // listings, opens and deletes are.
        var puts = proxy.Requests.Count(r => r.StartsWith("PUT ", StringComparison.Ordinal) && r.Contains("files.tar", StringComparison.Ordinal) && !r.Contains("partNumber", StringComparison.Ordinal));
        Assert.True(puts <= 1, $"the artifact was sent {puts} times: {string.Join(" | ", proxy.Requests)}");
        NextRunHeals();
    }

    [Fact]
    public void A_reset_on_an_idempotent_operation_is_retried_and_the_run_commits()
    {
        // The first answer the server sends (the probe's) is cut by a reset; the probe is asked again on a new connection.
        using var proxy = new FaultProxy(_s3.Port, budget: 10, FaultProxy.Direction.Down, ProxyFault.ResetOnce);
        Config(S3Yaml(proxy, "timeout: 10s, retries: 2"));
        var run = Run("run");
        Assert.True(proxy.Tripped);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("verified on s3", run.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, Run("verify", "--deep").ExitCode);
    }

    [Fact]
    public void A_nas_connection_cut_mid_upload_fails_the_copy_and_the_next_run_removes_what_arrived()
    {
        using var ssh = new SshServer();
        using var proxy = new FaultProxy(ssh.Port, budget: 1 << 20, FaultProxy.Direction.Up, ProxyFault.Truncate);
        var nas = ssh["nas"];
        Config(ssh.TargetYaml(nas).Replace($"port: {ssh.Port}", $"port: {proxy.Port}", StringComparison.Ordinal).Replace("path:", "timeout: 10s, retries: 1, path:", StringComparison.Ordinal));
        var run = Run("run");
        Assert.True(proxy.Tripped);
        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Contains("target 'nas'", run.All, StringComparison.Ordinal);
        Assert.Equal("failed", Snapshot().GetProperty("state").GetString());

        Config(ssh.TargetYaml(nas));
        var next = Run("run");
        Assert.True(next.ExitCode == 0, next.ToString());
        var files = Sandbox.FilesUnder(nas);
        Assert.DoesNotContain(files, f => f.EndsWith(".partial", StringComparison.Ordinal));
        Assert.All(files, f => Assert.Contains(f[..f.LastIndexOf('/')] + "/MANIFEST.json", files));
        Assert.DoesNotContain(Directory.EnumerateDirectories(nas, "*", SearchOption.AllDirectories), d => !Directory.EnumerateFileSystemEntries(d).Any());
        Assert.Equal(0, Run("verify", "--deep").ExitCode);
    }
}
