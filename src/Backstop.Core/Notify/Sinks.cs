using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Backstop.Core.Notify;

/// <summary>
/// What is sent: the event, about which source (or none, for the whole run or doctor), its state, snapshot and error,
/// and a text a person reads (also the field Slack, Mattermost and Discord incoming webhooks show).
/// </summary>
public sealed record Notification(string Event, string? Source, string? Kind, string? State, string? Snapshot, string? Error, DateTimeOffset At, string Text);

/// <summary>One place notifications go. Throws with the reason when a delivery fails; never with a secret in it.</summary>
internal interface ISink
{
    Task SendAsync(Notification notification, CancellationToken cancellationToken);
}

/// <summary>E-mail through MailKit: STARTTLS, TLS or plain SMTP, authenticated when a user is configured.</summary>
internal sealed class EmailSink(EmailNotifier o) : ISink
{
    public async Task SendAsync(Notification n, CancellationToken ct)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(o.From));
        foreach (var to in o.To)
        {
            message.To.Add(MailboxAddress.Parse(to));
        }

        message.Subject = $"[backstop] {n.Event}{(n.Source is null ? "" : $": {n.Source}")}{(n.State is null ? "" : $" is {n.State}")}";
        message.Body = new TextPart("plain") { Text = n.Text + "\n\n-- \nbackstop on " + Environment.MachineName + "\n" };
        using var smtp = new SmtpClient { Timeout = 30_000 };
        var security = o.Security switch
        {
            EmailSecurity.Tls => SecureSocketOptions.SslOnConnect,
            EmailSecurity.None => SecureSocketOptions.None,
            _ => SecureSocketOptions.StartTls,
        };
        try
        {
            await smtp.ConnectAsync(o.Host, o.Port, security, ct).ConfigureAwait(false);
            if (o.User is not null)
            {
                await smtp.AuthenticateAsync(o.User, o.Password!.Resolve(), ct).ConfigureAwait(false);
            }

            await smtp.SendAsync(message, ct).ConfigureAwait(false);
            await smtp.DisconnectAsync(quit: true, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is MailKit.Net.Smtp.SmtpCommandException or SmtpProtocolException or AuthenticationException or SslHandshakeException
                                       or System.Net.Sockets.SocketException or IOException or MailKit.ServiceNotConnectedException)
        {
            throw new NotifyException($"SMTP {o.Host}:{o.Port}: {e.Message}");
        }
    }
}

/// <summary>A JSON POST: <c>{"event", "source", "kind", "state", "snapshot", "error", "at", "text"}</c>.</summary>
internal sealed class WebhookSink(UrlNotifier o, HttpClient http) : ISink
{
    public async Task SendAsync(Notification n, CancellationToken ct)
    {
        var url = o.Resolve();
        using var response = await Http.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, url)
        {
            // Serialized first: sent with a Content-Length, never chunked (some receivers refuse chunked requests).
            Content = new ByteArrayContent(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(
                new { @event = n.Event, source = n.Source, kind = n.Kind, state = n.State, snapshot = n.Snapshot, error = n.Error, at = Text.Json.Time(n.At), text = n.Text }))
            {
                Headers = { ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json") { CharSet = "utf-8" } },
            },
        }, url, ct).ConfigureAwait(false);
    }
}

/// <summary>ntfy: the text POSTed to the topic URL, with a title, tags and a priority by event.</summary>
internal sealed class NtfySink(UrlNotifier o, HttpClient http) : ISink
{
    public async Task SendAsync(Notification n, CancellationToken ct)
    {
        var url = o.Resolve();
        using var response = await Http.SendAsync(http, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(n.Text, Encoding.UTF8, "text/plain") };
            request.Headers.TryAddWithoutValidation("Title", $"backstop: {n.Event}{(n.Source is null ? "" : $" {n.Source}")}");
            request.Headers.TryAddWithoutValidation("Tags", n.Event is NotifyEvents.Recovered or NotifyEvents.Success ? "white_check_mark" : "warning");
            request.Headers.TryAddWithoutValidation("Priority", n.Event is NotifyEvents.Failed or NotifyEvents.Stale or NotifyEvents.DrillFailed ? "high" : "default");
            if (o.Token is { } token)
            {
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token.Resolve());
            }

            return request;
        }, url, ct).ConfigureAwait(false);
    }
}

/// <summary>
/// A Healthchecks.io-style check: <c>/start</c> when a run begins, the bare URL when it succeeded, <c>/fail</c> with
/// the log tail when it did not; the pinged service notices a run that never came. Events go to <c>/log</c>.
/// </summary>
internal sealed class HealthchecksSink(UrlNotifier o, HttpClient http) : ISink
{
    public Task SendAsync(Notification n, CancellationToken ct) => PingAsync("log", n.Text, ct);

    public async Task PingAsync(string? what, string? body, CancellationToken ct)
    {
        var url = o.Resolve();
        var target = what is null ? url : new Uri(url.ToString().TrimEnd('/') + "/" + what);
        using var response = await Http.SendAsync(http, () => new HttpRequestMessage(HttpMethod.Post, target)
        {
            Content = new StringContent(Tail(body ?? ""), Encoding.UTF8, "text/plain"),
        }, url, ct).ConfigureAwait(false);
    }

    /// <summary>Healthchecks keeps the first 100 KB of a ping's body; the end of a log is what explains a failure.</summary>
    private static string Tail(string text) => text.Length <= 90_000 ? text : "…" + text[^90_000..];
}

internal static class Http
{
    /// <summary>Sends, and fails on a non-2xx answer; the error names the host only (the path may be the secret).</summary>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient http, Func<HttpRequestMessage> request, Uri url, CancellationToken ct)
    {
        HttpResponseMessage response;
        using var message = request();
        try
        {
            response = await http.SendAsync(message, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new NotifyException($"{url.Scheme}://{url.Authority}: {e.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new NotifyException($"{url.Scheme}://{url.Authority}: no answer within {http.Timeout.TotalSeconds:0}s");
        }

        if (!response.IsSuccessStatusCode)
        {
            response.Dispose();
            throw new NotifyException($"{url.Scheme}://{url.Authority} answered HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
        }

        return response;
    }
}

/// <summary>A notification that could not be delivered: recorded and shown, never raised over what it reported.</summary>
public sealed class NotifyException(string message) : Exception(message);
