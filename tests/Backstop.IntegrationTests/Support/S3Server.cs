using System.Globalization;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// An S3-compatible server (npm's s3rver, installed by ./test.sh into .tools/) on a free loopback port with one
/// bucket, in a temporary folder; stopped afterwards.
/// </summary>
public sealed class S3Server : IDisposable
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";
    private ServerProcess _server;

    public S3Server()
    {
        var program = Path.Combine(CouchServer.RepoRoot, ".tools", "node_modules", ".bin", "s3rver");
        Assert.True(File.Exists(program), $"{program} is missing: run ./test.sh, which installs s3rver from npm");
        Root = Path.Combine(Path.GetTempPath(), "backstop-s3-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Bucket = "backups";
        Port = PostgresServer.FreePort();
        _server = Start();
    }

    private ServerProcess Start()
    {
        var server = new ServerProcess(Path.Combine(CouchServer.RepoRoot, ".tools", "node_modules", ".bin", "s3rver"),
            ["-d", Root, "-a", "127.0.0.1", "-p", Port.ToString(CultureInfo.InvariantCulture), "--configure-bucket", Bucket, "--silent"],
            Root, "s3rver (npm)");
        using var http = new HttpClient();
        server.WaitUntil(() => (int)http.GetAsync(new Uri(Endpoint + "/")).Result.StatusCode < 500, "s3rver");
        return server;
    }

    /// <summary>Where an object is stored by s3rver on disk (to damage or remove it behind the target's back).</summary>
    public string ObjectFile(string key) => Path.Combine(Root, Bucket, key.Replace('/', Path.DirectorySeparatorChar) + "._S3rver_object");

    public string Root { get; }

    public string Bucket { get; }

    public int Port { get; }

    public string Endpoint => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The YAML of an s3 target on this server (keys from the environment, as a user would).</summary>
    public string TargetYaml(string name = "s3", string prefix = "") =>
        $"  - {{ name: {name}, kind: s3, endpoint: \"{Endpoint}\", bucket: {Bucket}, prefix: \"{prefix}\", access_key: \"env:S3_KEY\", secret_key: \"env:S3_SECRET\" }}\n";

    public static Dictionary<string, string> Env => new() { ["S3_KEY"] = AccessKey, ["S3_SECRET"] = SecretKey };

    /// <summary>Stops the server (the folder stays), as when the service goes down.</summary>
    public void Stop() => _server.Kill();

    /// <summary>Starts it again on the same port and folder.</summary>
    public void Restart()
    {
        _server.Kill();
        _server = Start();
    }

    /// <summary>Freezes the server: the port stays open and nothing answers.</summary>
    public void Freeze() => _server.Signal(Posix.SigStop);

    public void Thaw() => _server.Signal(Posix.SigCont);

    public void Dispose()
    {
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
