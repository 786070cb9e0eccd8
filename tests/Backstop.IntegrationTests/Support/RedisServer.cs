using System.Globalization;

namespace Backstop.IntegrationTests.Support;

/// <summary>A real redis-server on a free loopback port with a password, in a temporary folder; stopped afterwards.</summary>
public sealed class RedisServer : IDisposable
{
    public const string Password = "r3dis-Secret-55aa";
    private readonly ServerProcess _server;

    public RedisServer(string? dir = null, int? port = null, bool password = true)
    {
        var root = dir ?? Path.Combine(Path.GetTempPath(), "backstop-redis-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        Port = port ?? PostgresServer.FreePort();
        HasPassword = password;
        List<string> args = ["--bind", "127.0.0.1", "--port", Port.ToString(CultureInfo.InvariantCulture), "--dir", root, "--save", "",
            "--appendonly", "no", "--dbfilename", "dump.rdb", "--daemonize", "no"];
        if (password)
        {
            args.AddRange(["--requirepass", Password]);
        }

        _server = new ServerProcess("redis-server", args, root, "redis-server");
        _server.WaitUntil(() => Cli("PING").Stdout.Trim() == "PONG", "redis-server");
    }

    public string Root => _server.Root;

    public int Port { get; }

    public bool HasPassword { get; }

    /// <summary>redis-cli with the password in its environment (REDISCLI_AUTH), never in argv.</summary>
    public CliResult Cli(params string[] args) =>
        Sandbox.ExecEnv(null, HasPassword ? new Dictionary<string, string> { ["REDISCLI_AUTH"] = Password } : null,
            "redis-cli", ["-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), .. args]);

    public void Dispose() => _server.Dispose();
}
