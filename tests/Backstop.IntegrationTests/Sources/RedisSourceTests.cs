using Backstop.IntegrationTests.Support;
using Backstop.Sources.Redis;
using RedisServer = Backstop.IntegrationTests.Support.RedisServer;

namespace Backstop.IntegrationTests.Sources;

/// <summary>Redis with a real server (the audit: "No valid Redis backups exist").</summary>
public sealed class RedisSourceTests : IDisposable
{
    private readonly RedisServer _redis = new();
    private readonly Sandbox _box = new();
    private readonly Dictionary<string, string> _env = new() { ["REDIS_TEST_PASSWORD"] = RedisServer.Password };

    public void Dispose()
    {
        _redis.Dispose();
        _box.Dispose();
    }

    private void Config(string extra = "", int? port = null, string password = "env:REDIS_TEST_PASSWORD") =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" +
                         $"  - {{ name: cache, kind: redis, host: 127.0.0.1, port: {port ?? _redis.Port}, password: \"{password}\"{extra} }}\n");

    private CliResult Run(params string[] args) => _box.Run(args, _env);

    private void Fill()
    {
        Assert.Equal("OK", _redis.Cli("EVAL", "for i=1,1000 do redis.call('SET','key:'..i, string.rep('v', i % 50)) end return 'OK'", "0").Stdout.Trim());
        Assert.Equal("OK", _redis.Cli("-n", "3", "EVAL", "for i=1,10 do redis.call('HSET','h:'..i, 'f', i) end return 'OK'", "0").Stdout.Trim());
    }

    /// <summary>The stored RDB, decompressed with stock zstd, passes redis-check-rdb and loads into a new server with the same keys.</summary>
    private void AssertRestores()
    {
        var stored = Directory.GetFiles(_box["backups/cache"], "dump.rdb.zst", SearchOption.AllDirectories).Single();
        var dir = _box["restored"];
        Directory.CreateDirectory(dir);
        var r = _box.Shell($"zstd -d < '{stored}' > '{dir}/dump.rdb' && redis-check-rdb '{dir}/dump.rdb'");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("RDB looks OK", r.Stdout, StringComparison.Ordinal);
        using var restored = new RedisServer(dir, password: false);
        Assert.Equal("1000", restored.Cli("DBSIZE").Stdout.Trim());
        Assert.Equal("10", restored.Cli("-n", "3", "DBSIZE").Stdout.Trim());
        Assert.Equal(_redis.Cli("GET", "key:49").Stdout, restored.Cli("GET", "key:49").Stdout);
    }

    [Fact]
    public void Keys_round_trip_through_sync_and_the_stored_rdb_passes_redis_check_rdb()
    {
        Fill();
        Config(", expect: { min_keys: 1000 }");
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var facts = _box.Snapshots()[0].GetProperty("facts");
        Assert.Equal(1010, facts.GetProperty("keys").GetInt64());
        Assert.Equal(2, facts.GetProperty("databases").GetInt64());
        AssertRestores();
    }

    [Fact]
    public void Without_redis_check_rdb_the_keys_are_infos_and_marked_reported()
    {
        Fill();
        Config(", expect: { min_keys: 1000 }");
        var env = new Dictionary<string, string>(_env) { ["PATH"] = "/nonexistent" }; // no redis-check-rdb to be found
        var run = _box.Run(["run"], env);
        Assert.True(run.ExitCode == 0, run.ToString());
        var artifact = _box.Snapshots()[0].GetProperty("artifacts")[0];
        Assert.Equal(1010, artifact.GetProperty("facts").GetProperty("keys").GetInt64());
        Assert.Equal(["databases", "keys"], artifact.GetProperty("reported").EnumerateArray().Select(r => r.GetString()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_diskless_eof_marked_transfer_works_too()
    {
        Fill();
        _redis.Cli("CONFIG", "SET", "repl-diskless-sync", "yes");
        _redis.Cli("CONFIG", "SET", "repl-diskless-sync-delay", "0");
        Config();
        var run = Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        AssertRestores();
    }

    [Fact]
    public void A_closed_port_fails_naming_host_and_port()
    {
        var closed = PostgresServer.FreePort();
        Config(port: closed);
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"connection to Redis at 127.0.0.1:{closed} refused", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
    }

    [Fact]
    public void A_wrong_password_fails_saying_so()
    {
        Config(password: "nope");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("authentication to Redis at 127.0.0.1:", run.All, StringComparison.Ordinal);
        Assert.Contains("check 'password'", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public void An_acl_user_with_replication_rights_works_and_one_without_is_told_what_is_missing()
    {
        Fill();
        Assert.Equal("OK", _redis.Cli("ACL", "SETUSER", "backup", "on", ">Backup-Pass-9", "~*", "+@all").Stdout.Trim());
        Assert.Equal("OK", _redis.Cli("ACL", "SETUSER", "reader", "on", ">Reader-Pass-9", "~*", "+@read", "+info", "+ping").Stdout.Trim());
        _env["REDIS_USER_PASSWORD"] = "Backup-Pass-9";
        Config(", user: backup", password: "env:REDIS_USER_PASSWORD");
        var good = Run("run");
        Assert.True(good.ExitCode == 0, good.ToString());
        AssertRestores();

        Config(", user: backup", password: "Reader-Pass-9");
        var wrong = Run("run");
        Assert.Equal(1, wrong.ExitCode);
        Assert.Contains("authentication to Redis at 127.0.0.1:", wrong.All, StringComparison.Ordinal);

        Config(", user: reader", password: "Reader-Pass-9");
        var limited = Run("run");
        Assert.Equal(1, limited.ExitCode);
        Assert.Contains("refused SYNC: NOPERM", limited.All, StringComparison.Ordinal);
        Assert.Contains("grant it with ACL SETUSER reader +sync", limited.All, StringComparison.Ordinal);
        Assert.Equal("committed,failed,failed", string.Join(",", _box.Snapshots().Select(s => s.GetProperty("state").GetString()).Order()));
    }

    [Fact]
    public void An_empty_redis_fails_min_keys()
    {
        Config(", expect: { min_keys: 1 }");
        var run = Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("the source reported 0 keys, fewer than expect.min_keys 1", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_corrupt_or_truncated_rdb_is_refused_by_its_check()
    {
        Fill();
        var file = _box["fetched.rdb"];
        Assert.Equal(0, _redis.Cli("--rdb", file).ExitCode);
        var rdb = await File.ReadAllBytesAsync(file);
        var validator = new RedisSource.RdbValidator();
        await validator.ReadFactsAsync(new MemoryStream(rdb), CancellationToken.None);

        var flipped = (byte[])rdb.Clone();
        flipped[flipped.Length / 2] ^= 0x20;
        var crc = await Assert.ThrowsAsync<Backstop.Core.Plugins.BackupException>(() => validator.ReadFactsAsync(new MemoryStream(flipped), CancellationToken.None));
        Assert.Contains("CRC64 does not match", crc.Message, StringComparison.Ordinal);

        var cut = await Assert.ThrowsAsync<Backstop.Core.Plugins.BackupException>(() => validator.ReadFactsAsync(new MemoryStream(rdb[..^100]), CancellationToken.None));
        Assert.Contains("cut short", cut.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Restore_writes_a_dump_rdb_that_a_fresh_server_loads()
    {
        Fill();
        Config();
        Assert.Equal(0, Run("run").ExitCode);
        var r = Run("restore", "--source", "cache", "--to", _box["restored"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        // The keys were read from the RDB by redis-check-rdb at backup, and again from the restored file: compared.
        Assert.Contains("keys=1010, databases=2, as recorded", r.Stdout, StringComparison.Ordinal);
        var artifact = _box.Snapshots().Single().GetProperty("artifacts")[0];
        Assert.Empty(artifact.GetProperty("reported").EnumerateArray());
        using var restored = new RedisServer(_box["restored"], password: false);
        Assert.Equal("1000", restored.Cli("DBSIZE").Stdout.Trim());
        Assert.Equal(1, Run("restore", "--source", "cache", "--to", _box["restored"]).ExitCode); // dump.rdb exists now
    }

    /// <summary>A server that answers like Redis, then drops the connection in the middle of the RDB.</summary>
    private static async Task ServeTruncatedSyncAsync(System.Net.Sockets.TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            using var client = await listener.AcceptTcpClientAsync(ct);
            await using var stream = client.GetStream();
            var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
            async Task Send(string s) => await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(s), ct);
            while (await reader.ReadLineAsync(ct) is { } header && header.StartsWith('*'))
            {
                var args = new List<string>();
                for (var i = 0; i < int.Parse(header[1..], System.Globalization.CultureInfo.InvariantCulture); i++)
                {
                    await reader.ReadLineAsync(ct);
                    args.Add((await reader.ReadLineAsync(ct))!);
                }

                switch (args[0].ToUpperInvariant())
                {
                    case "INFO":
                        var body = args.Count > 1 && args[1] == "keyspace" ? "# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\n" : "# Server\r\nredis_version:7.0.15\r\n";
                        await Send($"${body.Length}\r\n{body}\r\n");
                        break;
                    case "SYNC":
                        await Send("\n$1000000\r\nREDIS0010");
                        await stream.WriteAsync(new byte[5000], ct);
                        client.Client.Close(); // the server goes away mid-transfer
                        goto next;
                    default:
                        await Send("+OK\r\n");
                        break;
                }
            }

            next:;
        }
    }

    [Fact]
    public async Task A_transfer_that_breaks_off_fails_the_snapshot_and_stores_nothing()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var server = Task.Run(() => ServeTruncatedSyncAsync(listener, cts.Token)); // off the test's synchronization context
        try
        {
            Config(port: ((System.Net.IPEndPoint)listener.LocalEndpoint).Port);
            var run = Run("run");
            Assert.Equal(1, run.ExitCode);
            Assert.Contains("the RDB transfer from 127.0.0.1:", run.All, StringComparison.Ordinal);
            Assert.Contains("broke off", run.All, StringComparison.Ordinal);
            Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
        }
        finally
        {
            await cts.CancelAsync();
            listener.Stop();
            try
            {
                await server;
            }
            catch (OperationCanceledException)
            {
            }
            catch (System.Net.Sockets.SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>The restore --explain recipe run as printed: a dump.rdb that redis-check-rdb passes and a server loads.</summary>
    [Fact]
    public void The_explain_recipe_run_literally_gives_an_rdb_a_fresh_server_loads()
    {
        Fill();
        Config();
        Assert.Equal(0, Run("run").ExitCode);
        var explain = Run("restore", "--source", "cache", "--explain", "--to", _box["explained"]);
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var recipe = explain.Stdout.Split('\n').Single(l => l.StartsWith("mkdir", StringComparison.Ordinal));
        var r = _box.Shell(recipe);
        Assert.True(r.ExitCode == 0, r.ToString() + "\n" + recipe);
        using var restored = new RedisServer(_box["explained"], password: false);
        Assert.Equal("1000", restored.Cli("DBSIZE").Stdout.Trim());
    }
}
