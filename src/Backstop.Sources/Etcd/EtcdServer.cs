using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Etcd;

/// <summary>
/// The source's etcd cluster as the parts of the etcd kind reach it (the source's own, or a drill's scratch member):
/// the first endpoint that answers, signed in when the source has a user, with the source's TLS files; requests
/// through the gRPC gateway and their errors said with the cause.
/// </summary>
internal sealed class EtcdServer(string name, EtcdOptions options)
{
    private Uri? _endpoint;
    private string? _token;

    /// <summary>The source (named in every message).</summary>
    public string Source => name;

    public EtcdOptions Options => options;

    /// <summary>The endpoint that answered (<see cref="ConnectAsync"/> first).</summary>
    public Uri Endpoint => _endpoint ?? throw new InvalidOperationException("connect first");

    /// <summary>A server reached at <paramref name="endpoint"/> as it is, without signing in (a scratch member before it has users).</summary>
    public static EtcdServer Open(string name, EtcdOptions options, Uri endpoint) => new(name, options with { Endpoints = [endpoint] }) { _endpoint = endpoint };

    /// <summary>Finds the first endpoint that answers and signs in there; returns the server's version.</summary>
    public async Task<string> ConnectAsync(CancellationToken cancellationToken)
    {
        var failures = new List<string>();
        foreach (var endpoint in options.Endpoints)
        {
            using var http = SourceClient(TimeSpan.FromSeconds(15));
            try
            {
                var version = await http.GetFromJsonAsync<JsonElement>(new Uri(endpoint, "/version"), cancellationToken).ConfigureAwait(false);
                _endpoint = endpoint;
                _token = await AuthenticateAsync(http, cancellationToken).ConfigureAwait(false);
                return version.TryGetProperty("etcdserver", out var v) ? v.GetString() ?? "?" : "?";
            }
            catch (HttpRequestException e)
            {
                failures.Add(Explain(endpoint, e));
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                failures.Add($"{Authority(endpoint)} timed out");
            }
        }

        throw new BackupException($"source '{name}': no etcd endpoint answered: {string.Join("; ", failures)}");
    }

    /// <summary>The live keys and the current revision, from one count-only range over the whole key space.</summary>
    public async Task<(long Keys, long Revision)> CountAsync(HttpClient http, Uri endpoint, CancellationToken ct)
    {
        var count = await PostAsync(http, endpoint, "/v3/kv/range", new
        {
            key = Convert.ToBase64String([0]),
            range_end = Convert.ToBase64String([0]),
            count_only = true,
        }, ct).ConfigureAwait(false);
        var keys = count.TryGetProperty("count", out var c) ? long.Parse(c.GetString() ?? "0", CultureInfo.InvariantCulture) : 0;
        return (keys, long.Parse(count.GetProperty("header").GetProperty("revision").GetString() ?? "0", CultureInfo.InvariantCulture));
    }

    public static HttpClient Client(TimeSpan timeout) => new(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(15) })
    {
        Timeout = timeout,
    };

    /// <summary>
    /// A client for the source's cluster: with <c>cacert</c>, the server's certificate must chain to that CA alone (and
    /// name the host); with <c>cert</c> and <c>key</c>, the client certificate is presented (read from PEM each time).
    /// </summary>
    public HttpClient SourceClient(TimeSpan timeout)
    {
        if (options.CaCert is null && options.Cert is null)
        {
            return Client(timeout);
        }

        var tls = new System.Net.Security.SslClientAuthenticationOptions();
        try
        {
            if (options.CaCert is { } ca)
            {
                var policy = new System.Security.Cryptography.X509Certificates.X509ChainPolicy
                {
                    TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust,
                    RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                };
                policy.CustomTrustStore.AddRange(LoadPem(ca));
                tls.CertificateChainPolicy = policy;
            }

            if (options.Cert is { } cert)
            {
                tls.ClientCertificates = [System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(cert, options.Key)];
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new BackupException($"source '{name}': the TLS files cannot be read ({e.Message}); cacert, cert and key are PEM files this user can read " +
                                      "(k3s keeps them under /var/lib/rancher/k3s/server/tls/etcd/)");
        }

        return new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(15), SslOptions = tls }) { Timeout = timeout };
    }

    private static System.Security.Cryptography.X509Certificates.X509Certificate2Collection LoadPem(string path)
    {
        var all = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        all.ImportFromPemFile(path);
        return all.Count > 0 ? all : throw new CryptographicException($"{path} holds no PEM certificate");
    }

    private async Task<string?> AuthenticateAsync(HttpClient http, CancellationToken ct)
    {
        if (options.User is null)
        {
            return null;
        }

        var auth = await PostAsync(http, Endpoint, "/v3/auth/authenticate", new { name = options.User, password = options.Password!.Resolve() }, ct)
            .ConfigureAwait(false);
        return auth.GetProperty("token").GetString();
    }

    public HttpRequestMessage Request(Uri endpoint, string path, object body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(endpoint, path)) { Content = JsonContent.Create(body) };
        if (_token is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", _token);
        }

        return request;
    }

    public async Task<JsonElement> PostAsync(HttpClient http, Uri endpoint, string path, object body, CancellationToken ct)
    {
        using var request = Request(endpoint, path, body);
        try
        {
            using var response = await http.SendAsync(request, ct).ConfigureAwait(false);
            await EnsureOkAsync(response, path, ct).ConfigureAwait(false);
            return await response.Content.ReadFromJsonAsync<JsonElement>(ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new BackupException($"source '{name}': {Explain(endpoint, e)}");
        }
    }

    public async Task EnsureOkAsync(HttpResponseMessage response, string path, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        var what = text.Contains("authentication failed", StringComparison.OrdinalIgnoreCase) || text.Contains("invalid auth", StringComparison.OrdinalIgnoreCase)
            ? "authentication failed: check 'user' and 'password'"
            : text.Contains("user name is empty", StringComparison.OrdinalIgnoreCase) || response.StatusCode == HttpStatusCode.Unauthorized
                ? "the cluster requires authentication: set 'user' and 'password'"
                : $"HTTP {(int)response.StatusCode}: {text.Trim()[..Math.Min(200, text.Trim().Length)]}";
        throw new BackupException($"source '{name}': etcd answered {path} with {what}");
    }

    public static string Authority(Uri endpoint) => $"{endpoint.Host}:{endpoint.Port}";

    public string Explain(Uri endpoint, HttpRequestException e) =>
        e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused }
            ? $"connection to etcd at {Authority(endpoint)} refused: is the server running and listening there?"
            : e.InnerException is System.Security.Authentication.AuthenticationException
                ? $"etcd at {Authority(endpoint)}: the TLS handshake failed ({e.InnerException.Message}): " +
                  (options.CaCert is null ? "set cacert to the CA that signed the server's certificate" : $"the server's certificate must be signed by {options.CaCert} and name {endpoint.Host}")
                : e.InnerException is IOException && endpoint.Scheme == "https" && options.Cert is null
                    ? $"etcd at {Authority(endpoint)} closed the TLS connection ({e.Message}): a cluster with --client-cert-auth needs a client certificate (cert and key)"
                    : $"etcd at {Authority(endpoint)}: {e.Message}";
}
