using System.CommandLine;
using System.Net;
using Backstop.Cli.Rendering;
using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Serve;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Backstop.Cli.Verbs;

/// <summary>
/// <c>serve</c>: a foreground process that logs a line per event (systemd and Kubernetes collect them), runs the schedules
/// (<see cref="ServeLoop"/>) and serves <c>/metrics</c>, <c>/api/status</c> and <c>/healthz</c> on loopback by default.
/// SIGTERM and Ctrl-C stop it cleanly: what runs is cancelled and records itself.
/// </summary>
internal static partial class ServeVerb
{
    [LoggerMessage(100, LogLevel.Information, "listening on http://{Endpoint}; {Scheduled} scheduled source(s), parallel {Parallel}")]
    private static partial void Listening(ILogger logger, string endpoint, int scheduled, int parallel);

    /// <summary>The <c>serve</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var serve = new Command("serve",
            "Run the schedules in the foreground (plain log lines for systemd or Kubernetes): backups, drills and deep verifies when due, " +
            "catching up at start, never two of one source at once; notifications; /metrics, /api/status and /healthz on serve.listen (127.0.0.1:8080)");
        serve.SetAction((p, ct) => ServeVerb.ExecuteAsync(Context.From(p), ct));
        return serve;
    }

    public static async Task<int> ExecuteAsync(Context context, CancellationToken cancellationToken)
    {
        var config = context.LoadConfig();
        var endpoint = Listen(config);
        var access = Serve.ServeAccess.For(config.Serve, endpoint);
        using (var catalog = Context.OpenCatalog(config))
        {
            catalog.AddEvent("info", null, null, $"serve started (pid {Environment.ProcessId}), listening on {endpoint}");
        }

        // One line per event on stdout (journald and Kubernetes collect it): the UTC time, the level, serve[event id], the message.
        // Disposed last, which writes out what the console logger still queues.
        using var logging = LoggerFactory.Create(b => b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss'Z' ";
            o.ColorBehavior = Microsoft.Extensions.Logging.Console.LoggerColorBehavior.Disabled;
        }));
        var log = logging.CreateLogger("serve");
        var loop = new ServeLoop(config, Plugins.Registry, () => new PlainObserver(log), log);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders(); // serve's own lines only; a request log would drown them
        builder.WebHost.ConfigureKestrel(k => k.Listen(endpoint));
        await using var app = builder.Build();
        app.Use(async (http, next) =>
        {
            http.Response.Headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'";
            http.Response.Headers["X-Content-Type-Options"] = "nosniff";
            var path = http.Request.Path.Value ?? "/";
            if (path != "/healthz" && !access.HostAllowed(http.Request))
            {
                // DNS rebinding: a page of another site whose name now points here. Only names of this server are served.
                await Results.Text($"refused: the Host '{Core.Text.ServerText.Printable(http.Request.Host.Host)}' is not one of this server's names; " +
                                   "add it to serve.hostnames\n", statusCode: StatusCodes.Status421MisdirectedRequest).ExecuteAsync(http).ConfigureAwait(false);
                return;
            }

            if (access.ReadNeedsToken && path is not ("/healthz" or "/login") && !access.Authenticated(http.Request))
            {
                if (HttpMethods.IsGet(http.Request.Method) && path is not ("/metrics" or "/api/status"))
                {
                    http.Response.Redirect("/login");
                    return;
                }

                http.Response.Headers.WWWAuthenticate = "Bearer realm=\"backstop\"";
                await Results.Text("unauthorized: send serve's token (Authorization: Bearer TOKEN) or log in at /login\n", statusCode: 401).ExecuteAsync(http).ConfigureAwait(false);
                return;
            }

            await next(http).ConfigureAwait(false);
            if (http.Request.Path != "/healthz")
            {
                loop.CollectSoon(); // a status or a scrape leaves ≈10 MiB of garbage: collected when serve is idle
            }
        });
        // Plain request delegates, not minimal-API lambdas: those are compiled from expression trees at start-up, which
        // loads System.Linq.Expressions and JITs code that stays resident (serve idles for days).
        app.MapGet("/healthz", http => Results.Text("ok\n").ExecuteAsync(http));
        string Csrf(HttpContext http)
        {
            var csrf = http.Request.Cookies["backstop_csrf"] is { Length: 32 } c ? c : Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            http.Response.Cookies.Append("backstop_csrf", csrf, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = "/" });
            return csrf;
        }

        app.MapGet("/login", http => Results.Content(Dashboard.Login(Csrf(http), null), "text/html; charset=utf-8").ExecuteAsync(http));
        app.MapPost("/login", async http =>
        {
            var form = await http.Request.ReadFormAsync(http.RequestAborted).ConfigureAwait(false);
            var cookie = http.Request.Cookies["backstop_csrf"] ?? "";
            if (cookie.Length != 32 || !Same(form["csrf"].ToString(), cookie) || !access.TokenMatches(form["token"].ToString()))
            {
                await Task.Delay(TimeSpan.FromSeconds(1), http.RequestAborted).ConfigureAwait(false); // a guess a second, at most
                await Results.Content(Dashboard.Login(Csrf(http), "a wrong token, or a form this server did not render"), "text/html; charset=utf-8", statusCode: 403)
                    .ExecuteAsync(http).ConfigureAwait(false);
                return;
            }

            http.Response.Cookies.Append(Serve.ServeAccess.SessionCookie, access.NewSession(), Serve.ServeAccess.SessionCookieOptions);
            http.Response.Redirect("/");
        });
        app.MapGet("/", http =>
        {
            var csrf = Csrf(http);
            using var catalog = Context.OpenCatalog(config);
            return Results.Content(Dashboard.Index(config, catalog, loop.NextDue, csrf, actions: access.HasToken), "text/html; charset=utf-8").ExecuteAsync(http);
        });
        app.MapGet("/source/{name}", http =>
        {
            if (config.Source(http.Request.RouteValues["name"] as string ?? "") is not { } def)
            {
                return Results.NotFound().ExecuteAsync(http);
            }

            using var catalog = Context.OpenCatalog(config);
            return Results.Content(Dashboard.Source(catalog, def), "text/html; charset=utf-8").ExecuteAsync(http);
        });
        app.MapGet("/runbook/{name}", http =>
        {
            // Only a configured scenario's runbook, by its name (never a path from the request).
            var scenario = config.Recovery.Scenarios.FirstOrDefault(s => s.Name == (http.Request.RouteValues["name"] as string ?? ""));
            var file = scenario is null ? null : Path.Combine(Path.GetDirectoryName(config.CatalogPath)!, "drills", $"runbook-{scenario.Name}.md");
            return file is null || !File.Exists(file)
                ? Results.NotFound().ExecuteAsync(http)
                : Results.Text(File.ReadAllText(file), "text/plain; charset=utf-8").ExecuteAsync(http);
        });
        app.MapPost("/source/{name}/{what}", async http =>
        {
            var result = await ActAsync(http.Request.RouteValues["name"] as string ?? "", http.Request.RouteValues["what"] as string ?? "", http).ConfigureAwait(false);
            await result.ExecuteAsync(http).ConfigureAwait(false);
        });
        async Task<IResult> ActAsync(string name, string what, HttpContext http)
        {
            // Changes state: only with serve's token, and only from a page this server rendered (the CSRF cookie and field agree).
            if (!access.HasToken)
            {
                return Results.Text("read-only: set serve.token to allow run now and drill now\n", statusCode: 403);
            }

            var form = await http.Request.ReadFormAsync(http.RequestAborted).ConfigureAwait(false);
            var cookie = http.Request.Cookies["backstop_csrf"] ?? "";
            if (cookie.Length != 32 || !Same(form["csrf"].ToString(), cookie) || !access.TokenMatches(form["token"].ToString()))
            {
                return Results.Text("refused: a wrong token, or a form this server did not render\n", statusCode: 403);
            }

            if (config.Source(name) is null || what is not ("run" or "drill"))
            {
                return Results.NotFound();
            }

            if (config.Source(name) is { } def && !config.RunsHere(def))
            {
                return Results.Text($"source '{name}' runs on machine '{def.Machine}': ask its agent\n", statusCode: 409);
            }

            loop.Trigger(what, name);
            return Results.Redirect("/", permanent: false);
        }

        app.MapGet("/metrics", async http =>
        {
            http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            using var catalog = Context.OpenCatalog(config);
            await Core.Metrics.MetricsExporter.WriteAsync(config, catalog, http.Response.Body, http.RequestAborted).ConfigureAwait(false);
        });
        app.MapGet("/api/status", http =>
        {
            using var catalog = Context.OpenCatalog(config);
            var statuses = StatusReport.Compute(config, catalog, DateTimeOffset.UtcNow);
            var failing = Core.Notify.Notifier.Failing(catalog).Where(n => config.Notify.Any(d => d.Name == n.Notifier)).ToList();
            var fleet = catalog.IsShared ? catalog.Machines() : null;
            return Results.Text(System.Text.Json.JsonSerializer.Serialize(StatusVerb.Document(config, statuses, failing, ScenarioStatus.Compute(config, catalog), fleet, DateTimeOffset.UtcNow), Core.Text.Json.Options), "application/json").ExecuteAsync(http);
        });

        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new ConfigException($"serve.listen {config.Serve.Listen}: cannot listen there ({e.Message}); choose another address or port");
        }

        Listening(log, endpoint.ToString(), config.Sources.Count(s => s.Schedule is not null), config.Serve.Parallel);
        try
        {
            await loop.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            using var catalog = Context.OpenCatalog(config);
            catalog.AddEvent("info", null, null, cancellationToken.IsCancellationRequested ? "serve stopped by a signal; runs in flight were cancelled and recorded" : "serve stopped");
        }

        return ExitCodes.Ok;
    }

    private static bool Same(string a, string b) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(a), System.Text.Encoding.UTF8.GetBytes(b));

    /// <summary>Where the web side listens: loopback by default; anywhere else only with a token (<see cref="Serve.ServeAccess"/>).</summary>
    private static IPEndPoint Listen(BackstopConfig config)
    {
        var listen = config.Serve.Listen;
        return IPEndPoint.TryParse(listen, out var endpoint) && endpoint.Port != 0
            ? endpoint
            : throw new ConfigException($"serve.listen: '{listen}' is not an address and port like 127.0.0.1:8080");
    }
}
