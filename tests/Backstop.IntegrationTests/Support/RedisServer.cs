using System.Diagnostics;
using System.Globalization;

namespace Backstop.IntegrationTests.Support;

/// <summary>A real redis-server on a free loopback port with a password, in a temporary folder; stopped afterwards.</summary>
public sealed class RedisServer : IDisposable
{
    public const string Password = "r3dis-Secret-55aa";
    private readonly Process _server;

    public RedisServer(string? dir = null, int? port = null, bool password = true)
    {
        Root = dir ?? Path.Combine(Path.GetTempPath(), "backstop-redis-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Port = port ?? PostgresServer.FreePort();
        HasPassword = password;
        var psi = new ProcessStartInfo("redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        List<string> args = ["--bind", "127.0.0.1", "--port", Port.ToString(CultureInfo.InvariantCulture), "--dir", Root, "--save", "",
            "--appendonly", "no", "--dbfilename", "dump.rdb", "--daemonize", "no"];
        if (password)
        {
            args.AddRange(["--requirepass", Password]);
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            _server = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("redis-server is needed: run ./test.sh, which installs redis-server", e);
        }

        _server.StandardOutput.ReadToEndAsync();
        _server.StandardError.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (Cli("PING").Stdout.Trim() != "PONG")
        {
            Assert.False(_server.HasExited, "redis-server exited at start");
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), "redis-server did not answer in 30 s");
            Thread.Sleep(100);
        }
    }

    public string Root { get; }

    public int Port { get; }

    public bool HasPassword { get; }

    /// <summary>redis-cli with the password in its environment (REDISCLI_AUTH), never in argv.</summary>
    public CliResult Cli(params string[] args) =>
        Sandbox.ExecEnv(null, HasPassword ? new Dictionary<string, string> { ["REDISCLI_AUTH"] = Password } : null,
            "redis-cli", ["-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), .. args]);

    public void Dispose()
    {
        try
        {
            _server.Kill(entireProcessTree: true);
            _server.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }

        _server.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
