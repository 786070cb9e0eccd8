namespace Backstop.IntegrationTests.Support;

/// <summary>
/// A real MariaDB server for one test class: <c>mariadb-install-db</c> in a temporary folder, <c>mariadbd</c> on a free
/// loopback port, a <c>backup</c> user with a password, stopped afterwards.
/// </summary>
public sealed class MariaDbServer : IDisposable
{
    public const string User = "backup";
    public const string Password = "My-s3cret-9d2e\"q";
    private readonly ServerProcess _server;

    public MariaDbServer()
    {
        Root = Path.Combine(Path.GetTempPath(), "backstop-maria-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(Root, "data"));
        Port = PostgresServer.FreePort();
        var root = Environment.UserName == "root";
        if (root)
        {
            Sandbox.Exec("chown", "-R", "mysql:mysql", Root);
        }

        var install = Sandbox.Exec("mariadb-install-db", "--no-defaults", $"--user={(root ? "mysql" : Environment.UserName)}",
            $"--datadir={Path.Combine(Root, "data")}", "--auth-root-authentication-method=normal", "--skip-test-db");
        Assert.True(install.ExitCode == 0, "mariadb-install-db failed (run ./test.sh, which installs mariadb-server): " + install);
        _server = new ServerProcess("mariadbd",
        [
            "--no-defaults", $"--user={(root ? "mysql" : Environment.UserName)}", $"--datadir={Path.Combine(Root, "data")}",
            "--bind-address=127.0.0.1", $"--port={Port}", $"--socket={Socket}", $"--pid-file={Path.Combine(Root, "pid")}",
            "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
        ], Root, "mariadb-server");
        _server.WaitUntil(() => Sandbox.Exec("mariadb", "--no-defaults", "-uroot", $"--socket={Socket}", "-e", "SELECT 1").ExitCode == 0, "mariadbd");
        RootSql($"CREATE USER '{User}'@'%' IDENTIFIED BY '{Password.Replace("\"", "\\\"", StringComparison.Ordinal)}'; GRANT ALL ON *.* TO '{User}'@'%';");
    }

    public string Root { get; }

    public int Port { get; }

    public string Socket => Path.Combine(Root, "mysqld.sock");

    /// <summary>SQL as root over the socket (tab-separated output).</summary>
    public string RootSql(string sql, string? database = null)
    {
        List<string> args = ["--no-defaults", "-uroot", $"--socket={Socket}", "--batch", "--skip-column-names", "-e", sql];
        if (database is not null)
        {
            args.Add(database);
        }

        var r = Sandbox.Exec("mariadb", [.. args]);
        Assert.True(r.ExitCode == 0, $"mariadb failed: {r}");
        return r.Stdout.Trim();
    }

    public void Dispose() => _server.Dispose();
}
