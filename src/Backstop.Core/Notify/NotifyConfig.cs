using Backstop.Core.Config;

namespace Backstop.Core.Notify;

/// <summary>The events a notifier can be told of.</summary>
public static class NotifyEvents
{
    public const string Failed = "failed";
    public const string Stale = "stale";
    public const string Degraded = "degraded";
    public const string Recovered = "recovered";
    public const string DrillFailed = "drill_failed";
    public const string DoctorFailed = "doctor_failed";
    public const string RehearsalFailed = "rehearsal_failed";
    public const string Success = "success";

    public static IReadOnlyList<string> All { get; } = [Failed, Stale, Degraded, Recovered, DrillFailed, DoctorFailed, RehearsalFailed, Success];

    /// <summary>Every event but <c>success</c>, which is opt-in.</summary>
    public static IReadOnlyList<string> Default { get; } = [Failed, Stale, Degraded, Recovered, DrillFailed, DoctorFailed, RehearsalFailed];
}

/// <summary>
/// One notifier (<c>notify: [{kind, events, …}]</c>, at the top level or a source's own): its name (given, or the kind
/// and its place), the events it wants, and the kind's options. <see cref="Source"/> is null for a top-level one.
/// </summary>
public sealed record NotifierDefinition(string Name, string Kind, IReadOnlySet<string> Events, object Options, ConfigLocation Location, string? Source)
{
    /// <summary><c>digest: "0 8 * * *"</c>: when <c>serve</c> sends this notifier a summary of every source's state.</summary>
    public Schedule? Digest { get; init; }
}

public sealed record EmailNotifier(string Host, int Port, EmailSecurity Security, string? User, SecretRef? Password, string From, IReadOnlyList<string> To);

public enum EmailSecurity
{
    StartTls,
    Tls,
    None,
}

/// <summary>
/// A URL to POST the event to (<c>webhook</c>: JSON; <c>ntfy</c>: the text to a topic), or to ping (<c>healthchecks</c>).
/// The URL is a secret reference: a Slack hook's path, a ping UUID or an ntfy topic is what grants access, so it is
/// never printed whole (only its host).
/// </summary>
public sealed record UrlNotifier(SecretRef Url, SecretRef? Token)
{
    /// <summary>The URL, checked when it is used (an env: or file: reference is only known then).</summary>
    public Uri Resolve()
    {
        var text = Url.Resolve();
        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.UserInfo.Length == 0
            ? uri
            : throw new ConfigException(Url.Location, $"the notifier's url ({Url}) is not an http(s) URL without credentials");
    }
}

public static class NotifyConfig
{
    public static readonly IReadOnlyList<string> Kinds = ["email", "webhook", "healthchecks", "ntfy"];

    /// <summary>Keys of every notifier, then each kind's.</summary>
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("kind", "email", "One of: " + string.Join(", ", Kinds)),
        new("name", "ops-mail", "Its name in `notify test` and the events") { Default = "KIND#N (KIND@SOURCE#N for a source's)" },
        new("events", "[failed, stale, recovered]", "The events it is told: failed, degraded, stale, recovered, drill_failed, doctor_failed, rehearsal_failed, success") { Default = "all but success (healthchecks: every run, it is pinged)" },
        new("digest", "\"0 8 * * 1\"", "Send one digest on this schedule instead of one message per event (cron)") { Type = "cron schedule" },
        new("schedule_timezone", "Europe/Paris", "The zone of digest") { Default = "UTC" },
    ];

    public static IReadOnlyList<(string Kind, IReadOnlyList<KeyDoc> Keys)> KindKeys { get; } =
    [
        ("email", [
            new("host", "smtp.example.com", "The SMTP server") { Default = "required" },
            new("port", "587", "Its port") { Default = "465 with security: tls, else 587" },
            new("security", "starttls", "starttls, tls (implicit, port 465) or none (loopback relays only)"),
            new("user", "backstop", "SMTP user (with password)"),
            new("password", "env:SMTP_PASSWORD", "SMTP password (with user)"),
            new("from", "backstop@example.com", "The sender's address") { Default = "required" },
            new("to", "[ops@example.com]", "Recipients (at least one)") { Default = "required" },
        ]),
        ("webhook", [new("url", "env:WEBHOOK_URL", "An http(s) URL that gets a JSON POST per event (env:NAME keeps a secret path out of the file)") { Default = "required" }]),
        ("healthchecks", [new("url", "https://hc-ping.com/your-uuid", "A healthchecks.io-style ping URL (/start, /fail)") { Default = "required" }]),
        ("ntfy", [
            new("url", "https://ntfy.example.com/backups", "The ntfy topic's URL") { Default = "required" },
            new("token", "env:NTFY_TOKEN", "An access token"),
        ]),
    ];

    /// <summary>Parses a <c>notify:</c> list (the top level's, or a source's when <paramref name="source"/> is set).</summary>
    public static IReadOnlyList<NotifierDefinition> Parse(ConfigMap parent, string? source)
    {
        ArgumentNullException.ThrowIfNull(parent);
        var list = new List<NotifierDefinition>();
        foreach (var map in parent.MapList("notify"))
        {
            var kind = map.RequireString("kind");
            if (!Kinds.Contains(kind))
            {
                throw map.Error("kind", $"unknown notifier kind '{kind}'; known kinds: {string.Join(", ", Kinds)}");
            }

            if (map.Has("on"))
            {
                throw map.Error("on", "the key is 'events' (YAML 1.1 tools, Helm's among them, read 'on' as true)");
            }

            var events = map.StringList("events") ?? (kind == "healthchecks" ? [] : NotifyEvents.Default);
            foreach (var e in events.Where(e => !NotifyEvents.All.Contains(e)))
            {
                throw map.Error("events", $"unknown event '{e}'; events are: {string.Join(", ", NotifyEvents.All)}");
            }

            object options = kind switch
            {
                "email" => Email(map),
                _ => Url(map, kind),
            };
            var name = map.String("name") ?? $"{kind}{(source is null ? "" : $"@{source}")}#{list.Count(n => n.Kind == kind) + 1}";
            var digest = Schedule.Parse(map, "digest", Schedule.ParseZone(map, TimeZoneInfo.Utc));
            map.EnsureAllKeysKnown(KeyRows.Hint(kind, Keys.Concat(KindKeys.Single(k => k.Kind == kind).Keys)));
            list.Add(new NotifierDefinition(name, kind, events.ToHashSet(StringComparer.Ordinal), options, map.Location, source) { Digest = digest });
        }

        return list;
    }

    private static EmailNotifier Email(ConfigMap map)
    {
        var security = map.EnumOr("security", EmailSecurity.StartTls, ("starttls", EmailSecurity.StartTls), ("tls", EmailSecurity.Tls), ("none", EmailSecurity.None));
        var to = map.StringList("to");
        if (to is null || to.Count == 0)
        {
            throw new ConfigException(map.LocationOf("to"), $"{map.Path}.to: name at least one recipient");
        }

        var from = map.String("from") ?? throw new ConfigException(map.Location, $"{map.Path}: 'from' (the sender's address) is required");
        foreach (var address in to.Append(from).Where(a => !MimeKit.MailboxAddress.TryParse(a, out _)))
        {
            throw map.Error(to.Contains(address) ? "to" : "from", $"'{address}' is not an e-mail address");
        }

        var user = map.String("user");
        var password = map.Secret("password");
        if ((user is null) != (password is null))
        {
            throw map.Error(user is null ? "password" : "user", "SMTP authentication needs both 'user' and 'password'");
        }

        if (password is not null && security == EmailSecurity.None)
        {
            // The password would cross the network in the clear (AUTH over a plain connection).
            throw map.Error("security", "a password is never sent without TLS: use security: starttls or tls, or no user and password");
        }

        var host = map.String("host") ?? throw new ConfigException(map.Location, $"{map.Path}: 'host' (the SMTP server) is required");
        return new EmailNotifier(host, map.Int("port", 1, 65535) ?? (security == EmailSecurity.Tls ? 465 : 587), security, user, password, from, to);
    }

    private static UrlNotifier Url(ConfigMap map, string kind)
    {
        var url = map.Secret("url") ?? throw new ConfigException(map.Location, $"{map.Path}: 'url' is required (env:NAME keeps a hook's secret path out of the file)");
        var notifier = new UrlNotifier(url, kind == "ntfy" ? map.Secret("token") : null);
        if (!url.Reference.StartsWith("env:", StringComparison.Ordinal) && !url.Reference.StartsWith("file:", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(url.Reference, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw map.Error("url", "not an http(s) URL");
            }

            if (uri.UserInfo.Length > 0)
            {
                throw map.Error("url", "leave credentials out of the URL; ntfy takes token: env:NAME");
            }
        }

        return notifier;
    }
}
