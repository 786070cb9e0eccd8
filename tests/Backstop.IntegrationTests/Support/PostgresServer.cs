using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// A real PostgreSQL server for one test class: <c>initdb</c> in a temporary folder (as the <c>postgres</c> user when
/// the tests run as root), listening on a free loopback port with password authentication, stopped afterwards.
/// </summary>
public sealed class PostgresServer : IDisposable
{
    public const string Password = "s3cret-Pg-pass-7c1f";

    public PostgresServer()
    {
        Bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => d, StringComparer.Ordinal).FirstOrDefault() ?? ""
            : "";
        Assert.True(Bin.Length > 0, "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run ./test.sh, which installs the postgresql package");
        Root = Path.Combine(Path.GetTempPath(), "backstop-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Port = FreePort();
        var pwfile = Path.Combine(Root, "pw");
        File.WriteAllText(pwfile, Password + "\n");
        AsOwner("chown", "-R", "postgres:postgres", Root);
        var init = Run(Path.Combine(Bin, "initdb"), "-D", Data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile", pwfile, "-E", "UTF8", "--locale=C.UTF-8");
        Assert.True(init.ExitCode == 0, "initdb failed: " + init);
        var start = Run(Path.Combine(Bin, "pg_ctl"), "-D", Data, "-l", Path.Combine(Root, "log"), "-w", "-t", "60",
            "-o", $"-c listen_addresses=127.0.0.1 -p {Port} -k {Root} -c fsync=off", "start");
        Assert.True(start.ExitCode == 0, "pg_ctl start failed: " + start + File.ReadAllText(Path.Combine(Root, "log")));
    }

    public string Bin { get; }

    public string Root { get; }

    public string Data => Path.Combine(Root, "data");

    public int Port { get; }

    /// <summary>Runs SQL with psql over TCP, as a person would.</summary>
    public CliResult Sql(string database, string sql)
    {
        var r = RunWithPassword(Path.Combine(Bin, "psql"), "-h", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres",
            "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql);
        Assert.True(r.ExitCode == 0, $"psql failed: {r}");
        return r;
    }

    public string Scalar(string database, string sql) => Sql(database, sql).Stdout.Trim();

    /// <summary>Restarts the server with the options it was started with (settings that need a restart: archive_mode).</summary>
    public void Restart()
    {
        var r = Run(Path.Combine(Bin, "pg_ctl"), "-D", Data, "-w", "-t", "60", "-l", Path.Combine(Root, "log"), "restart");
        Assert.True(r.ExitCode == 0, "pg_ctl restart failed: " + r);
    }

    public void Stop() => Run(Path.Combine(Bin, "pg_ctl"), "-D", Data, "-m", "immediate", "-w", "stop");

    /// <summary>
    /// Debian's layout: postgresql.conf, pg_hba.conf and pg_ident.conf outside the data folder (here ROOT/etc), the server
    /// started with config_file naming it; postgresql.auto.conf stays in the data folder. A base backup then holds none of them.
    /// </summary>
    public void MoveConfigOutOfData()
    {
        Stop();
        var etc = Path.Combine(Root, "etc");
        Directory.CreateDirectory(etc);
        foreach (var f in new[] { "postgresql.conf", "pg_hba.conf", "pg_ident.conf" })
        {
            File.Move(Path.Combine(Data, f), Path.Combine(etc, f));
        }

        File.AppendAllText(Path.Combine(etc, "postgresql.conf"), $"\nhba_file = '{etc}/pg_hba.conf'\nident_file = '{etc}/pg_ident.conf'\n");
        AsOwner("chown", "-R", "postgres:postgres", etc);
        var start = Run(Path.Combine(Bin, "pg_ctl"), "-D", Data, "-l", Path.Combine(Root, "log"), "-w", "-t", "60",
            "-o", $"-c config_file={etc}/postgresql.conf -c listen_addresses=127.0.0.1 -p {Port} -k {Root} -c fsync=off", "start");
        Assert.True(start.ExitCode == 0, "pg_ctl start failed: " + start + File.ReadAllText(Path.Combine(Root, "log")));
    }

    public void Dispose()
    {
        Stop();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A loopback port free now, never one handed out before in this test run: two fixtures starting at once (test
    /// classes run in parallel) could otherwise be given one port, and the one that binds second would take the first's
    /// answers for its own until the first goes away.
    /// </summary>
    public static int FreePort()
    {
        while (true)
        {
            using var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            var port = ((IPEndPoint)l.LocalEndpoint).Port;
            lock (HandedOut)
            {
                if (HandedOut.Add(port))
                {
                    return port;
                }
            }
        }
    }

    private static bool IsRoot => Environment.UserName == "root";

    private static void AsOwner(string program, params string[] args)
    {
        if (IsRoot)
        {
            Sandbox.Exec(program, args);
        }
    }

    /// <summary>Server programs refuse to run as root: run them as postgres then.</summary>
    private static CliResult Run(string program, params string[] args) =>
        IsRoot ? Sandbox.Exec("runuser", ["-u", "postgres", "--", program, .. args]) : Sandbox.Exec(program, args);

    private static CliResult RunWithPassword(string program, params string[] args) =>
        Sandbox.ExecEnv(null, new Dictionary<string, string> { ["PGPASSWORD"] = Password }, program, args);
}
