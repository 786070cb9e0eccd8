using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using static Backstop.Sources.Registry.RegistryNames;

namespace Backstop.Sources.Registry;

/// <summary>
/// One registry as Backstop talks to it: the HTTP connection, and authentication — HTTP basic, or the bearer token flow
/// of the registry token specification (a 401 with <c>WWW-Authenticate: Bearer realm=…,service=…,scope=…</c> sends the
/// credentials to the realm and retries with the token), credentials only ever to the registry's own origin — and the
/// errors it answers, read with a bound.
/// </summary>
internal sealed class RegistrySession : IDisposable
{
    private readonly HttpClient _http;
    private readonly Uri _base;
    private readonly string? _user;
    private readonly SecretRef? _password;
    private readonly Dictionary<string, string> _tokens = new(StringComparer.Ordinal);
    private bool _basicChallenged;

    public RegistrySession(Uri url, string? user, SecretRef? password, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(url);
        _base = new Uri(url.GetLeftPart(UriPartial.Authority) + "/");
        _user = user;
        _password = password;
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(15), AllowAutoRedirect = true, MaxAutomaticRedirections = 5 })
        {
            Timeout = timeout,
        };
    }

    /// <summary>host:port, for messages.</summary>
    public string Where => $"{_base.Host}:{_base.Port.ToString(CultureInfo.InvariantCulture)}";

    public Uri BaseUri => _base;

    public static string Scope(string repository, string actions) => $"repository:{repository}:{actions}";

    /// <summary>
    /// Sends a request with the credentials the registry asked for: the bearer token for the scope when one was
    /// issued, basic credentials when it asked for them; on a 401 the challenge is answered once and the request sent again.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> make, string scope, CancellationToken cancellationToken,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var request = make();
            // Credentials and tokens go to the registry's own origin only: an upload location or a link it sends may
            // name another host, which gets the request without them.
            var own = request.RequestUri is not { IsAbsoluteUri: true } uri
                      || Uri.Compare(uri, _base, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
            if (own && _tokens.TryGetValue(scope, out var token))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            else if (own && _basicChallenged && _user is not null)
            {
                request.Headers.Authorization = Basic();
            }

            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new BackupException($"the registry at {Where} cannot be reached ({e.Message}); is it running and listening there?", e);
            }
            catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new BackupException($"the registry at {Where} did not answer within {_http.Timeout.TotalSeconds:0} s", e);
            }

            if (response.StatusCode != HttpStatusCode.Unauthorized || attempt > 0)
            {
                return response;
            }

            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
            response.Dispose();
            if (challenge is null)
            {
                throw new BackupException($"the registry at {Where} refused the request (401) without saying how to authenticate");
            }

            if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
            {
                if (_user is null)
                {
                    throw new BackupException($"the registry at {Where} requires credentials: set user and password on the source");
                }

                _basicChallenged = true;
                continue;
            }

            if (!challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            {
                throw new BackupException($"the registry at {Where} asks for {Printable(challenge.Scheme)} authentication, which Backstop does not speak (basic and bearer tokens only)");
            }

            _tokens[scope] = await TokenAsync(challenge.Parameter ?? "", scope, cancellationToken).ConfigureAwait(false);
        }
    }

    private AuthenticationHeaderValue Basic() =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_user}:{_password?.Resolve() ?? ""}")));

    /// <summary>The registry token specification: GET realm?service=…&amp;scope=… (with basic credentials), JSON {token | access_token}.</summary>
    private async Task<string> TokenAsync(string parameters, string scope, CancellationToken cancellationToken)
    {
        var fields = ParseChallenge(parameters);
        if (!fields.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri) || realmUri.Scheme is not ("http" or "https"))
        {
            throw new BackupException($"the registry at {Where} asks for a token without a usable realm ({Printable(parameters)})");
        }

        var query = new List<string>();
        if (fields.TryGetValue("service", out var service))
        {
            query.Add("service=" + Uri.EscapeDataString(service));
        }

        foreach (var s in (fields.TryGetValue("scope", out var asked) ? asked : scope).Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            query.Add("scope=" + Uri.EscapeDataString(s));
        }

        var url = new UriBuilder(realmUri) { Query = string.Join('&', query) }.Uri;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        // Credentials go only over TLS, or in clear to the host of a registry itself reached in clear: a registry cannot
        // send them elsewhere, nor down from TLS to plain HTTP.
        if (_user is not null && (realmUri.Scheme == "https" || (_base.Scheme == "http" && realmUri.Host == _base.Host)))
        {
            request.Headers.Authorization = Basic();
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new BackupException($"the token service {realmUri.GetLeftPart(UriPartial.Authority)} of the registry at {Where} cannot be reached ({e.Message})", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BackupException($"the token service {realmUri.GetLeftPart(UriPartial.Authority)} of the registry at {Where} did not answer in time", e);
        }

        using (response)
        {
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                throw new BackupException($"the token service of the registry at {Where} refused {(_user is null ? "an anonymous request: set user and password on the source" : $"the credentials of '{_user}'")} (HTTP {(int)response.StatusCode})");
            }

            await EnsureAsync(response, realmUri.AbsolutePath, cancellationToken).ConfigureAwait(false);
            var body = await ReadLimitedAsync(response, 1 << 20, "token", cancellationToken).ConfigureAwait(false);
            try
            {
                using var json = JsonDocument.Parse(body);
                foreach (var name in json.RootElement.ValueKind == JsonValueKind.Object ? new[] { "token", "access_token" } : [])
                {
                    if (json.RootElement.TryGetProperty(name, out var t) && t.ValueKind == JsonValueKind.String && t.GetString() is { Length: > 0 } value)
                    {
                        return value;
                    }
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                // not JSON, or a string in it that is not UTF-8: no token
            }

            throw new BackupException($"the token service of the registry at {Where} answered without a token");
        }
    }

    /// <summary><c>realm="…",service="…",scope="…"</c> into its fields.</summary>
    internal static Dictionary<string, string> ParseChallenge(string parameters)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (Match m in Regex.Matches(parameters, "(\\w+)=(?:\"([^\"]*)\"|([^,\\s]*))", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
        {
            fields[m.Groups[1].Value] = m.Groups[2].Success ? m.Groups[2].Value : m.Groups[3].Value;
        }

        return fields;
    }

    public async Task EnsureAsync(HttpResponseMessage response, string what, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var detail = "";
        try
        {
            var body = await ReadLimitedAsync(response, 64 << 10, what, cancellationToken).ConfigureAwait(false);
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
            {
                detail = ": " + string.Join("; ", errors.EnumerateArray().Select(e =>
                    $"{(e.TryGetProperty("code", out var c) ? c.GetString() : "")} {(e.TryGetProperty("message", out var m) ? m.GetString() : "")}".Trim()).Select(Printable));
            }
        }
        catch (Exception e) when (e is JsonException or BackupException or HttpRequestException or IOException or InvalidOperationException)
        {
        }

        var hint = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized => " (the credentials were refused: check user and password)",
            HttpStatusCode.Forbidden => " (the credentials lack the right for this)",
            HttpStatusCode.NotFound => " (no such repository or object)",
            _ => "",
        };
        throw new BackupException($"the registry at {Where} answered {Printable(what)} with HTTP {(int)response.StatusCode}{detail}{hint}");
    }

    public async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, int limit, string what, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > limit)
        {
            throw new BackupException($"the registry at {Where} sent {Printable(what)} of {response.Content.Headers.ContentLength} bytes, more than the {limit} taken");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        return await Core.Text.ServerText.ReadAtMostAsync(stream, limit,
            () => new BackupException($"the registry at {Where} sent more than {limit} bytes for {Printable(what)}; refused"), cancellationToken).ConfigureAwait(false);
    }

    public void Dispose() => _http.Dispose();
}
