namespace Backstop.IntegrationTests.Support;

/// <summary>
/// A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, made by openssl in a temporary
/// folder (PEM files, as k3s keeps them): for servers started with TLS and client-certificate authentication. The
/// server certificate is for client use too, as etcd's gateway presents it to its own gRPC server (k3s' is the same).
/// </summary>
public sealed class TestCertificates : IDisposable
{
    public TestCertificates(string name = "test")
    {
        Root = Path.Combine(Path.GetTempPath(), "backstop-tls-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        File.WriteAllText(Path.Combine(Root, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
        File.WriteAllText(Path.Combine(Root, "client.ext"), "extendedKeyUsage=clientAuth\n");
        var script = $"""
            set -e
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj /CN={name}-ca -days 2 2>/dev/null
            for who in server client; do
              openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $who.key -out $who.csr -subj /CN={name}-$who 2>/dev/null
              openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $who.crt -days 2 -extfile $who.ext 2>/dev/null
            done
            chmod 0644 *.crt *.key
            """;
        var r = Sandbox.ExecIn(Root, "/bin/sh", "-c", script);
        Assert.True(r.ExitCode == 0, "openssl failed: " + r);
    }

    public string Root { get; }

    public string CaCert => Path.Combine(Root, "ca.crt");

    public string ServerCert => Path.Combine(Root, "server.crt");

    public string ServerKey => Path.Combine(Root, "server.key");

    public string ClientCert => Path.Combine(Root, "client.crt");

    public string ClientKey => Path.Combine(Root, "client.key");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
