using System.Collections.Concurrent;
using System.Net;
using System.Net.NetworkInformation;
using System.Security.Cryptography;
using System.Text;
using Backstop.Core.Config;
using Microsoft.AspNetCore.Http;

namespace Backstop.Cli.Serve;

/// <summary>
/// Who may read and act on serve's web side. A Host header not in <c>serve.hostnames</c> (by default: the loopback
/// names, this machine's name, the listen address, and this machine's addresses when it listens on all of them) is
/// refused, so that a page on another site cannot reach it by DNS rebinding. Off loopback, every page,
/// <c>/api/status</c> and <c>/metrics</c> need the token: as <c>Authorization: Bearer TOKEN</c> (Prometheus sends it
/// with <c>authorization:</c>) or as a session cookie given by the login form; <c>/healthz</c> stays open and says only
/// ok. On loopback the read side is open as before. An empty token is no token.
/// </summary>
internal sealed class ServeAccess
{
    public const string SessionCookie = "backstop_session";

    /// <summary>How long a login lasts.</summary>
    private static readonly TimeSpan SessionLifetime = TimeSpan.FromHours(12);

    private readonly string? _token;
    private readonly HashSet<string> _hostnames;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _sessions = new(StringComparer.Ordinal);

    private ServeAccess(string? token, bool readNeedsToken, HashSet<string> hostnames) => (_token, ReadNeedsToken, _hostnames) = (token, readNeedsToken, hostnames);

    /// <summary>Whether reading (pages, status, metrics) needs the token: when serve listens beyond loopback.</summary>
    public bool ReadNeedsToken { get; }

    /// <summary>Whether a token is set (the buttons that change state exist only then).</summary>
    public bool HasToken => _token is not null;

    /// <summary>The Host names allowed, as a person reads them in an error.</summary>
    public IEnumerable<string> Hostnames => _hostnames.Order(StringComparer.Ordinal);

    /// <summary>Resolves the token (refusing an empty one off loopback) and the allowed host names.</summary>
    public static ServeAccess For(ServeOptions serve, IPEndPoint endpoint)
    {
        ArgumentNullException.ThrowIfNull(serve);
        ArgumentNullException.ThrowIfNull(endpoint);
        var token = serve.Token?.Resolve();
        var loopback = IPAddress.IsLoopback(endpoint.Address);
        if (token is not null && token.Trim().Length == 0)
        {
            if (!loopback)
            {
                throw new ConfigException(serve.Token!.Location, $"serve.token ({serve.Token}) is empty, and serve listens on {serve.Listen}, beyond loopback: " +
                                                                 "set it to a long random secret (openssl rand -hex 32)");
            }

            token = null; // an empty token is no token: read-only on loopback
        }

        if (!loopback && token is null)
        {
            throw new ConfigException($"serve.listen: {serve.Listen} is reachable from other hosts; set serve.token (env:NAME) first, or listen on 127.0.0.1");
        }

        var hostnames = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "localhost", "127.0.0.1", "::1", "[::1]", Dns.GetHostName() };
        if (serve.Hostnames is { } configured)
        {
            hostnames = new HashSet<string>(configured, StringComparer.OrdinalIgnoreCase) { "localhost", "127.0.0.1", "[::1]" };
        }

        hostnames.Add(endpoint.Address.ToString());
        if (endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any))
        {
            foreach (var address in NetworkInterface.GetAllNetworkInterfaces().SelectMany(i => i.GetIPProperties().UnicastAddresses).Select(a => a.Address))
            {
                hostnames.Add(address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString());
            }
        }

        return new ServeAccess(token, !loopback, hostnames);
    }

    /// <summary>Whether the request's Host header names this server (its host part, without the port).</summary>
    public bool HostAllowed(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var host = request.Host;
        return host.HasValue && _hostnames.Contains(host.Host);
    }

    /// <summary>Whether the request carries the token (Bearer) or a live session cookie.</summary>
    public bool Authenticated(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_token is null)
        {
            return false;
        }

        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && TokenMatches(header["Bearer ".Length..].Trim()))
        {
            return true;
        }

        return request.Cookies[SessionCookie] is { Length: 64 } session && _sessions.TryGetValue(session, out var until) && until > DateTimeOffset.UtcNow;
    }

    /// <summary>Whether a token given (a form's, a header's) is serve's, compared in constant time.</summary>
    public bool TokenMatches(string given) =>
        _token is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(_token));

    /// <summary>A new session after a login with the right token: its cookie value.</summary>
    public string NewSession()
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var old in _sessions.Where(s => s.Value <= now).Select(s => s.Key).ToList())
        {
            _sessions.TryRemove(old, out _);
        }

        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _sessions[id] = now + SessionLifetime;
        return id;
    }

    public static CookieOptions SessionCookieOptions => new() { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/", MaxAge = SessionLifetime };
}
