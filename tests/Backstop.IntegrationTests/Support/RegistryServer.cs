using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// Debian's docker-registry (the distribution registry 2.8) on a free loopback port with its storage in a temporary
/// folder; optionally behind the registry token specification (a <see cref="TokenService"/> that issues JWTs signed
/// by a key whose certificate the registry trusts). Images get in through skopeo.
/// </summary>
public sealed class RegistryServer : IDisposable
{
    private readonly ServerProcess _server;

    public RegistryServer(TokenService? tokens = null, bool delete = true)
    {
        Root = Path.Combine(Path.GetTempPath(), "backstop-registry-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Root);
        Port = PostgresServer.FreePort();
        var auth = tokens is null ? "" : $"""
            auth:
              token:
                realm: {tokens.Url}
                service: backstop-test
                issuer: backstop-test-issuer
                rootcertbundle: {tokens.CertificateFile}
            """;
        File.WriteAllText(Path.Combine(Root, "config.yml"), $"""
            version: 0.1
            log: {"{"} level: warn {"}"}
            storage:
              filesystem: {"{"} rootdirectory: {Storage} {"}"}
              delete: {"{"} enabled: {(delete ? "true" : "false")} {"}"}
            http:
              addr: 127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}
            {auth}
            """);
        _server = new ServerProcess("docker-registry", ["serve", Path.Combine(Root, "config.yml")], Root, "docker-registry (Debian)");
        using var http = new HttpClient();
        _server.WaitUntil(() =>
        {
            try
            {
                var status = (int)http.GetAsync(new Uri($"{Url}/v2/")).Result.StatusCode;
                return status is 200 or 401;
            }
            catch (AggregateException)
            {
                return false;
            }
        }, "docker-registry");
    }

    public string Root { get; }

    public string Storage => Path.Combine(Root, "storage");

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    public string HostPort => $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Copies an OCI layout's tag into the registry with skopeo, every platform, digests preserved.</summary>
    public void Push(string layout, string tag, string repository, string? creds = null)
    {
        var args = new List<string> { "copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "--quiet" };
        if (creds is not null)
        {
            args.AddRange(["--dest-creds", creds]);
        }

        args.AddRange([$"oci:{layout}:{tag}", $"docker://{HostPort}/{repository}:{tag}"]);
        var r = Sandbox.Exec("skopeo", [.. args]);
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    /// <summary>The exact manifest bytes skopeo reads for a reference, and their digest.</summary>
    public string Digest(string repository, string reference)
    {
        var r = Sandbox.Exec("skopeo", "inspect", "--raw", "--tls-verify=false", $"docker://{HostPort}/{repository}:{reference}");
        Assert.True(r.ExitCode == 0, r.ToString());
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(r.Stdout)));
    }

    /// <summary>The file the filesystem driver keeps a blob's bytes in.</summary>
    public string BlobFile(string digest)
    {
        var hex = digest["sha256:".Length..];
        return Path.Combine(Storage, "docker", "registry", "v2", "blobs", "sha256", hex[..2], hex, "data");
    }

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

/// <summary>
/// A token service as the registry token specification describes it, on a free loopback port: GET
/// <c>?service=…&amp;scope=…</c> with basic credentials answers <c>{"token": JWT}</c>, the JWT signed (RS256) by a
/// self-signed certificate carried in its <c>x5c</c> header, which the registry trusts as its root bundle. Wrong or
/// missing credentials get 401. Every request is kept.
/// </summary>
public sealed class TokenService : IDisposable
{
    private readonly System.Net.HttpListener _listener = new();
    private readonly RSA _key = RSA.Create(2048);
    private readonly X509Certificate2 _certificate;
    private readonly string _folder;
    private readonly List<string> _requests = [];

    public TokenService(string user, string password)
    {
        _folder = Path.Combine(Path.GetTempPath(), "backstop-tokens-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_folder);
        var request = new CertificateRequest("CN=backstop-test-token-signer", _key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        _certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        CertificateFile = Path.Combine(_folder, "root.pem");
        File.WriteAllText(CertificateFile, _certificate.ExportCertificatePem());
        var port = PostgresServer.FreePort();
        Url = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/token";
        _listener.Prefixes.Add($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
        _listener.Start();
        var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
        _ = Task.Run(async () =>
        {
            while (true)
            {
                System.Net.HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is System.Net.HttpListenerException or ObjectDisposedException)
                {
                    return;
                }

                var query = context.Request.QueryString;
                lock (_requests)
                {
                    _requests.Add(context.Request.Url!.Query);
                }

                if (context.Request.Headers["Authorization"] != expected)
                {
                    context.Response.StatusCode = 401;
                    context.Response.Close();
                    continue;
                }

                var scopes = query.GetValues("scope") ?? [];
                var body = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { token = Jwt(user, query["service"] ?? "", scopes) }));
                context.Response.ContentType = "application/json";
                context.Response.OutputStream.Write(body);
                context.Response.Close();
            }
        });
    }

    public string Url { get; }

    public string CertificateFile { get; }

    public List<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    private string Jwt(string subject, string service, string[] scopes)
    {
        static string B64(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var header = JsonSerializer.Serialize(new Dictionary<string, object> { ["typ"] = "JWT", ["alg"] = "RS256", ["x5c"] = new[] { Convert.ToBase64String(_certificate.RawData) } });
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var access = scopes.SelectMany(s => s.Split(' ')).Select(s => s.Split(':')).Where(p => p.Length == 3)
            .Select(p => new { type = p[0], name = p[1], actions = p[2].Split(',') }).ToArray();
        var claims = JsonSerializer.Serialize(new { iss = "backstop-test-issuer", sub = subject, aud = service, exp = now + 300, nbf = now - 10, iat = now, jti = Guid.NewGuid().ToString("N"), access });
        var signingInput = B64(Encoding.UTF8.GetBytes(header)) + "." + B64(Encoding.UTF8.GetBytes(claims));
        var signature = _key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return signingInput + "." + B64(signature);
    }

    public void Dispose()
    {
        _listener.Close();
        _certificate.Dispose();
        _key.Dispose();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// Test images written as an OCI image layout folder, by hand and tiny: a single-platform image (config and two
/// gzip'd tar layers), a two-platform index, and a cosign-style signature (a manifest tagged <c>sha256-HEX.sig</c>).
/// </summary>
public sealed class OciImages
{
    private readonly string _dir;
    private readonly List<(string MediaType, string Digest, long Size, string Tag)> _index = [];

    public OciImages(string dir)
    {
        _dir = dir;
        Directory.CreateDirectory(Path.Combine(dir, "blobs", "sha256"));
        File.WriteAllText(Path.Combine(dir, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
    }

    public string Dir => _dir;

    private (string Digest, long Size) Blob(byte[] bytes)
    {
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
        File.WriteAllBytes(Path.Combine(_dir, "blobs", "sha256", digest[7..]), bytes);
        return (digest, bytes.Length);
    }

    private static byte[] Layer(string file, string text)
    {
        using var raw = new MemoryStream();
        using (var gz = new GZipStream(raw, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gz, TarEntryFormat.Ustar))
        {
            tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, file)
            {
                DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)), ModificationTime = DateTimeOffset.UnixEpoch,
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
            });
        }

        return raw.ToArray();
    }

    private static object Desc(string mediaType, (string Digest, long Size) b) => new { mediaType, digest = b.Digest, size = b.Size };

    /// <summary>An image manifest for one platform; returns its digest and size.</summary>
    /// <param name="extra">One more layer on top (its bytes, stored as an uncompressed tar layer): an image that gained a layer.</param>
    public (string Digest, long Size) Image(string name, string arch, byte[]? extra = null)
    {
        var config = Blob(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            architecture = arch, os = "linux", config = new { Cmd = new[] { "/bin/" + name } },
            rootfs = new { type = "layers", diff_ids = extra is null ? Array.Empty<string>() : ["sha256:" + Convert.ToHexStringLower(SHA256.HashData(extra))] },
        })));
        var l1 = Blob(Layer($"etc/{name}.conf", $"{name} {arch} settings\n"));
        var l2 = Blob(Layer($"bin/{name}", $"#!/bin/sh\necho {name} on {arch}\n"));
        var layers = new List<object> { Desc("application/vnd.oci.image.layer.v1.tar+gzip", l1), Desc("application/vnd.oci.image.layer.v1.tar+gzip", l2) };
        if (extra is not null)
        {
            layers.Add(Desc("application/vnd.oci.image.layer.v1.tar", Blob(extra)));
        }

        return Blob(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            schemaVersion = 2,
            mediaType = "application/vnd.oci.image.manifest.v1+json",
            config = Desc("application/vnd.oci.image.config.v1+json", config),
            layers,
        })));
    }

    /// <summary>Tags a single-platform image (with one more layer when <paramref name="extra"/> is given).</summary>
    public string Tag(string tag, string name, string arch = "amd64", byte[]? extra = null)
    {
        var m = Image(name, arch, extra);
        _index.Add(("application/vnd.oci.image.manifest.v1+json", m.Digest, m.Size, tag));
        Save();
        return m.Digest;
    }

    /// <summary>Tags a two-platform index (amd64 and arm64).</summary>
    public string TagIndex(string tag, string name)
    {
        var amd = Image(name, "amd64");
        var arm = Image(name, "arm64");
        var index = Blob(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            schemaVersion = 2,
            mediaType = "application/vnd.oci.image.index.v1+json",
            manifests = new object[]
            {
                new { mediaType = "application/vnd.oci.image.manifest.v1+json", digest = amd.Digest, size = amd.Size, platform = new { architecture = "amd64", os = "linux" } },
                new { mediaType = "application/vnd.oci.image.manifest.v1+json", digest = arm.Digest, size = arm.Size, platform = new { architecture = "arm64", os = "linux" } },
            },
        })));
        _index.Add(("application/vnd.oci.image.index.v1+json", index.Digest, index.Size, tag));
        Save();
        return index.Digest;
    }

    /// <summary>A cosign-style signature of <paramref name="digest"/>: a manifest tagged sha256-HEX.sig.</summary>
    public string Sign(string digest)
    {
        var config = Blob("{}"u8.ToArray());
        var payload = Blob(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { critical = new { image = new { docker_manifest_digest = digest }, type = "cosign container image signature" } })));
        var manifest = Blob(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
        {
            schemaVersion = 2,
            mediaType = "application/vnd.oci.image.manifest.v1+json",
            config = Desc("application/vnd.oci.image.config.v1+json", config),
            layers = new[]
            {
                new { mediaType = "application/vnd.dev.cosign.simplesigning.v1+json", digest = payload.Digest, size = payload.Size,
                      annotations = new Dictionary<string, string> { ["dev.cosignproject.cosign/signature"] = "MEUCIQDtest" } },
            },
        })));
        var tag = "sha256-" + digest[7..] + ".sig";
        _index.Add(("application/vnd.oci.image.manifest.v1+json", manifest.Digest, manifest.Size, tag));
        Save();
        return tag;
    }

    private void Save() => File.WriteAllText(Path.Combine(_dir, "index.json"), JsonSerializer.Serialize(new
    {
        schemaVersion = 2,
        manifests = _index.Select(i => new { mediaType = i.MediaType, digest = i.Digest, size = i.Size, annotations = new Dictionary<string, string> { ["org.opencontainers.image.ref.name"] = i.Tag } }),
    }));
}
