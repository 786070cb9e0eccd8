using System.Globalization;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// OpenSSH's sshd on a free loopback port with its own host key and a client key allowed to log in as the current
/// user (SFTP only, internal-sftp), in a temporary folder; stopped afterwards.
/// </summary>
public sealed class SshServer : IDisposable
{
    private ServerProcess _server;

    public SshServer()
    {
        Root = Path.Combine(Path.GetTempPath(), "backstop-ssh-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory("/run/sshd");
        Port = PostgresServer.FreePort();
        Keygen("host_ed25519");
        Keygen("client_ed25519");
        File.Copy(this["client_ed25519.pub"], this["authorized_keys"]);
        File.WriteAllText(this["sshd_config"], string.Join('\n',
            $"ListenAddress 127.0.0.1",
            $"Port {Port.ToString(CultureInfo.InvariantCulture)}",
            $"HostKey {this["host_ed25519"]}",
            $"PidFile {this["sshd.pid"]}",
            $"AuthorizedKeysFile {this["authorized_keys"]}",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "PermitRootLogin prohibit-password",
            "Subsystem sftp internal-sftp",
            "LogLevel ERROR",
            ""));
        _server = Start();
    }

    public string Root { get; }

    public int Port { get; }

    public string this[string name] => Path.Combine(Root, name);

    public static string User => Environment.UserName;

    /// <summary>The host key as ssh-keyscan prints it (type and base64).</summary>
    public string HostKeyLine => File.ReadAllText(this["host_ed25519.pub"]).Trim().Split(' ') is var p ? $"{p[0]} {p[1]}" : "";

    public string ClientKey => this["client_ed25519"];

    /// <summary>The YAML of an sftp target storing under <paramref name="path"/> on this server.</summary>
    public string TargetYaml(string path, string name = "nas", string? hostKey = null) =>
        $"  - {{ name: {name}, kind: sftp, host: 127.0.0.1, port: {Port}, user: {User}, key: \"file:{ClientKey}\", host_key: \"{hostKey ?? HostKeyLine}\", path: \"{path}\" }}\n";

    private ServerProcess Start()
    {
        var server = new ServerProcess("/usr/sbin/sshd", ["-D", "-e", "-f", this["sshd_config"]], Root, "openssh-server (apt)");
        server.WaitUntil(() =>
        {
            using var c = new System.Net.Sockets.TcpClient();
            c.Connect(System.Net.IPAddress.Loopback, Port);
            return true;
        }, "sshd");
        return server;
    }

    private void Keygen(string name)
    {
        var r = Sandbox.ExecEnv(Root, null, "ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "backstop-test", "-f", this[name]]);
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    /// <summary>Stops sshd (the files stay), as when the NAS goes down.</summary>
    public void Stop() => _server.Kill();

    public void Restart()
    {
        _server.Kill();
        _server = Start();
    }

    public void Dispose()
    {
        _server.Kill();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
