using Backstop.Core.Sealing.Age;

namespace Backstop.Core.Config;

/// <summary><c>compression:</c> the zstd level and threads.</summary>
internal static class CompressionBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("compression.level", "3", "zstd level"),
        new("compression.workers", "2", "zstd threads (0: one)") { Default = "the cores, at most 8" },
    ];

    public static CompressionOptions Default => new(3, Math.Min(Environment.ProcessorCount, 8));

    public static CompressionOptions Parse(ConfigMap top)
    {
        var map = top.Map("compression");
        var options = new CompressionOptions(map?.IntOr("level", 3, 1, 19) ?? 3, map?.Int("workers", 0, 64) ?? Default.Workers);
        map?.EnsureAllKeysKnown(KeyRows.Hint("compression", Keys, "compression."));
        return options;
    }
}

/// <summary><c>encryption:</c> age recipients (or a passphrase), and the identities that open what they sealed.</summary>
internal static class EncryptionBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("encryption.recipients", "[age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]", "age recipients; every artifact is stored in the age format (.zst.age). `backstop keygen` makes one"),
        new("encryption.identities", "[\"file:/etc/backstop/key.txt\"]", "age identity files, to restore and to verify --deep (files only, never an inline key)"),
        new("encryption.passphrase", "env:BACKSTOP_PASSPHRASE", "A passphrase (age scrypt) instead of recipients") { Instead = "encryption.recipients" },
    ];

    public static EncryptionOptions? Parse(ConfigMap top)
    {
        var map = top.Map("encryption");
        if (map is null)
        {
            return null;
        }

        var recipients = map.StringList("recipients") ?? [];
        foreach (var r in recipients)
        {
            try
            {
                AgeRecipient.Parse(r);
            }
            catch (AgeException e)
            {
                throw map.Error("recipients", e.Message + "; 'backstop keygen' makes a key and prints its recipient");
            }
        }

        var passphrase = map.Secret("passphrase");
        if (passphrase is not null && recipients.Count > 0)
        {
            throw map.Error("passphrase", "a passphrase cannot be combined with recipients (the age format allows an scrypt stanza only alone); use one or the other");
        }

        if (passphrase is null && recipients.Count == 0)
        {
            throw map.Error("recipients", "give at least one recipient (age1…, from 'backstop keygen') or a passphrase (env:NAME or file:/path)");
        }

        var identities = new List<SecretRef>();
        foreach (var i in map.StringList("identities") ?? [])
        {
            if (!i.StartsWith("file:", StringComparison.Ordinal))
            {
                throw map.Error("identities", "identities are files (file:/path/to/key.txt), never inline keys (the value is not shown: it may be a key)");
            }

            identities.Add(new SecretRef("file:" + map.ResolvePath(i[5..]), map.LocationOf("identities")));
        }

        map.EnsureAllKeysKnown();
        return new EncryptionOptions(recipients, passphrase, identities);
    }
}

/// <summary><c>serve:</c> the long-running process: how many sources at once, where its web side listens and for whom.</summary>
internal static class ServeBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("serve.parallel", "1", "Sources that serve runs at the same time"),
        new("serve.listen", "127.0.0.1:8080", "Where serve's dashboard, /api/status and /metrics listen"),
        new("serve.token", "env:BACKSTOP_TOKEN", "A bearer token the web side requires (needed to listen beyond loopback, where every page, /api/status and /metrics ask for it; never empty)"),
        new("serve.hostnames", "[backstop.example.org]", "The Host names the web side answers to (others are refused: DNS rebinding)")
            { Default = "localhost, 127.0.0.1, [::1], this machine's name, the listen address (and this machine's addresses when listening on all)" },
        new("serve.jitter", "5m", "A random delay up to this before each scheduled start (RandomizedDelaySec for timers)"),
    ];

    public static ServeOptions Parse(ConfigMap top)
    {
        var map = top.Map("serve");
        var options = new ServeOptions(map?.IntOr("parallel", 1, 1, 64) ?? 1, map?.StringOr("listen", ServeOptions.Default.Listen) ?? ServeOptions.Default.Listen,
            map?.Secret("token"), map?.DurationOr("jitter", TimeSpan.Zero) ?? TimeSpan.Zero) { Hostnames = map?.StringList("hostnames") };
        if (options.Token is { Reference.Length: 0 })
        {
            throw map!.Error("token", "an empty token is no token: set a long random secret (env:NAME), or leave the key out");
        }

        map?.EnsureAllKeysKnown(KeyRows.Hint("serve", Keys, "serve."));
        return options;
    }
}

/// <summary><c>verify:</c> when serve downloads and checks every copy.</summary>
internal static class VerifyBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("verify.deep_schedule", "\"0 5 * * 6\"", "When serve runs verify --deep (every copy downloaded and checked)") { Type = "cron schedule" },
        new("verify.schedule_timezone", "UTC", "The zone of deep_schedule") { Default = "policy.schedule_timezone" },
    ];

    /// <summary>The deep verify's schedule, in its own zone or the policy's (<paramref name="zone"/>).</summary>
    public static Schedule? Parse(ConfigMap top, TimeZoneInfo zone)
    {
        var map = top.Map("verify");
        var schedule = map is null ? null : Schedule.Parse(map, "deep_schedule", Schedule.ParseZone(map, zone));
        map?.EnsureAllKeysKnown(KeyRows.Hint("verify", Keys, "verify."));
        return schedule;
    }
}

/// <summary><c>doctor:</c> where doctor looks for backup jobs Backstop does not know.</summary>
internal static class DoctorBlock
{
    public static IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("doctor.crontabs", "[/etc/crontab, \"/etc/cron.d/*\"]", "Crontabs doctor reads for backup jobs Backstop does not know (globs allowed)") { Default = "/etc/crontab, /etc/cron.d/*, /var/spool/cron/crontabs/*" },
        new("doctor.systemd", "[/etc/systemd/system]", "Folders of systemd units doctor reads") { Default = "/etc/systemd/system" },
    ];

    public static DoctorOptions Parse(ConfigMap top)
    {
        var map = top.Map("doctor");
        var options = new DoctorOptions(
            map?.StringList("crontabs")?.Select(c => map.ResolvePath(c)).ToList() ?? DoctorOptions.Default.Crontabs,
            map?.StringList("systemd")?.Select(c => map.ResolvePath(c)).ToList() ?? DoctorOptions.Default.SystemdFolders);
        map?.EnsureAllKeysKnown("doctor keys are: crontabs (files, globs allowed), systemd (folders of unit files)");
        return options;
    }
}
