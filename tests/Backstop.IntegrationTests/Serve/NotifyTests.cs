using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Serve;

/// <summary>
/// Notifications from recorded state, with real receivers: an SMTP server (maildev), a webhook endpoint and a
/// Healthchecks-style ping service on loopback. The audit: backups failing silently for days, and a success e-mail
/// sent after a failed checksum.
/// </summary>
public sealed class NotifyTests : IClassFixture<MailServer>, IDisposable
{
    private readonly MailServer _mail;
    private readonly Sandbox _box = new();
    private readonly string _to = $"ops-{Guid.NewGuid():N}@example.org";

    public NotifyTests(MailServer mail) => _mail = mail;

    public void Dispose() => _box.Dispose();

    private List<(string Subject, List<string> To, string Text)> Mine() => _mail.Messages().Where(m => m.To.Contains(_to)).ToList();

    private string Email(string events = "[failed, stale, degraded, recovered, success]", int? port = null) =>
        $"  - {{ name: ops-mail, kind: email, host: 127.0.0.1, port: {port ?? _mail.SmtpPort}, security: none, from: backstop@example.org, to: [{_to}], events: {events} }}\n";

    /// <summary>A source that fails while the file 'broken' exists, and prints a dump otherwise.</summary>
    private static string Flaky => Yaml.Command("ledger", "test -e broken && { echo 'connection refused by ledger-db' >&2; exit 1; }; echo ledger-data");

    [Fact]
    public void A_failed_run_mails_the_source_and_the_reason_once_and_never_a_success_mail_then_recovery_is_told()
    {
        _box.Write("broken", "");
        _box.WriteConfig(Yaml.LocalTarget() + "notify:\n" + Email() + "sources:\n" + Flaky);
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        RunningCli.WaitUntil(() => Mine().Count >= 1, "the failure mail");
        var failure = Assert.Single(Mine());
        Assert.Contains("failed: ledger", failure.Subject, StringComparison.Ordinal);
        Assert.Contains("connection refused by ledger-db", failure.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(Mine(), m => m.Subject.Contains("success", StringComparison.Ordinal));

        // Failing again is no news: one message per change of state.
        Assert.Equal(1, _box.Run("run").ExitCode);
        Assert.Single(Mine());

        File.Delete(_box["broken"]);
        Assert.Equal(0, _box.Run("run").ExitCode);
        RunningCli.WaitUntil(() => Mine().Count >= 3, "the success and recovery mails");
        Assert.Contains(Mine(), m => m.Subject.Contains("success: ledger", StringComparison.Ordinal) && m.Text.Contains("verified on local", StringComparison.Ordinal));
        Assert.Contains(Mine(), m => m.Subject.Contains("recovered: ledger", StringComparison.Ordinal) && m.Text.Contains("is ok again", StringComparison.Ordinal));
    }

    [Fact]
    public void An_smtp_server_that_refuses_changes_neither_the_result_nor_the_exit_code_and_status_shows_it()
    {
        var closed = PostgresServer.FreePort();
        _box.Write("broken", "");
        _box.WriteConfig(Yaml.LocalTarget() + "notify:\n" + Email(port: closed) + "sources:\n" + Flaky);
        var failed = _box.Run("run");
        Assert.True(failed.ExitCode == 1, failed.ToString()); // the backup's own result, not the notifier's
        File.Delete(_box["broken"]);
        var ok = _box.Run("run");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Contains("notifier 'ops-mail' could not deliver", ok.All, StringComparison.Ordinal);
        var status = _box.Json("status");
        Assert.Equal("ok", status.GetProperty("sources")[0].GetProperty("state").GetString());
        var notifier = status.GetProperty("notifiers").EnumerateArray().Single();
        Assert.Equal("ops-mail", notifier.GetProperty("name").GetString());
        Assert.Contains($"127.0.0.1:{closed}", notifier.GetProperty("failing").GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("notifier 'ops-mail' failed", _box.Run("status").Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_webhook_gets_the_json_event_and_a_failing_one_never_prints_its_secret_path()
    {
        using var hook = new HttpReceiver();
        var url = hook.Url("/services/T000/B000/secret-token-123");
        _box.Write("broken", "");
        _box.WriteConfig(Yaml.LocalTarget() + "notify:\n  - { kind: webhook, url: \"env:HOOK_URL\" }\nsources:\n" + Flaky);
        var env = new Dictionary<string, string> { ["HOOK_URL"] = url };
        Assert.Equal(1, _box.Run(["run"], env).ExitCode);
        RunningCli.WaitUntil(() => hook.Requests.Count >= 1, "the webhook");
        var (method, path, body) = hook.Requests.Single();
        Assert.Equal("POST", method);
        Assert.Equal("/services/T000/B000/secret-token-123", path);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.Equal("failed", json.GetProperty("event").GetString());
        Assert.Equal("ledger", json.GetProperty("source").GetString());
        Assert.Equal("command", json.GetProperty("kind").GetString());
        // The state as status names it, and the snapshot that failed (not the last valid one); sent whole, with a Content-Length.
        Assert.Equal(_box.Json("status").GetProperty("sources")[0].GetProperty("state").GetString(), json.GetProperty("state").GetString());
        Assert.Equal(_box.Snapshots().Last().GetProperty("snapshot").GetString(), json.GetProperty("snapshot").GetString());
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(body), hook.ContentLengths.Single());
        Assert.Contains("connection refused by ledger-db", json.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("ledger", json.GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.True(json.TryGetProperty("at", out _));

        // A hook that answers 500: told and recorded, with the host only.
        using var down = new HttpReceiver(status: 500);
        var test = _box.Run(["notify", "test"], new Dictionary<string, string> { ["HOOK_URL"] = down.Url("/services/T000/B000/secret-token-123") });
        Assert.Equal(1, test.ExitCode);
        Assert.Contains("HTTP 500", test.All, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-token-123", test.All, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-token-123", _box.Run(["status", "--json"], env).All, StringComparison.Ordinal);
    }

    [Fact]
    public void A_healthchecks_check_is_pinged_at_start_and_with_the_log_tail_on_failure_and_bare_on_success()
    {
        using var ping = new HttpReceiver();
        _box.Write("broken", "");
        _box.WriteConfig(Yaml.LocalTarget() + $"notify:\n  - {{ kind: healthchecks, url: \"{ping.Url("/ping/0b7e2c")}\" }}\nsources:\n" + Flaky);
        Assert.Equal(1, _box.Run("run").ExitCode);
        RunningCli.WaitUntil(() => ping.Requests.Count >= 2, "the pings");
        Assert.Equal(["/ping/0b7e2c/start", "/ping/0b7e2c/fail"], ping.Requests.Select(r => r.Path));
        Assert.Contains("connection refused by ledger-db", ping.Requests[1].Body, StringComparison.Ordinal);

        File.Delete(_box["broken"]);
        Assert.Equal(0, _box.Run("run").ExitCode);
        RunningCli.WaitUntil(() => ping.Requests.Count >= 4, "the pings");
        Assert.Equal(["/ping/0b7e2c/start", "/ping/0b7e2c"], ping.Requests.Skip(2).Select(r => r.Path));
    }

    [Fact]
    public void Notify_test_sends_a_test_message_to_every_notifier()
    {
        using var hook = new HttpReceiver();
        _box.WriteConfig(Yaml.LocalTarget() + "notify:\n" + Email() + $"  - {{ name: chat, kind: webhook, url: \"{hook.Url("/hook")}\" }}\n" + "sources:\n" + Flaky);
        var r = _box.Run("notify", "test");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("delivered ops-mail", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("delivered chat", r.Stdout, StringComparison.Ordinal);
        RunningCli.WaitUntil(() => Mine().Count >= 1, "the test mail");
        Assert.Contains("Nothing is wrong", Mine()[0].Text, StringComparison.Ordinal);
        Assert.Equal("test", JsonDocument.Parse(hook.Requests.Single().Body).RootElement.GetProperty("event").GetString());
    }

    [Fact]
    public void A_notifier_written_with_on_is_refused_for_what_yaml_makes_of_it()
    {
        _box.WriteConfig(Yaml.LocalTarget() + "notify:\n  - { kind: webhook, url: \"http://127.0.0.1:9/x\", on: [failed] }\nsources:\n" + Flaky);
        var r = _box.Run("config", "check");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("the key is 'events'", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("backstop.yaml:", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_drill_and_a_failing_doctor_are_told_and_a_source_of_its_own_notifier_is_told_only_of_itself()
    {
        using var hook = new HttpReceiver();
        using var own = new HttpReceiver();
        _box.WriteConfig(Yaml.LocalTarget() + $"notify:\n  - {{ name: ops, kind: webhook, url: \"{hook.Url("/ops")}\" }}\n" +
                         "doctor: { crontabs: [], systemd: [] }\nsources:\n" +
                         Yaml.Command("app", "echo data", $", drill: {{ command: [/bin/false] }}, notify: [{{ name: app-team, kind: webhook, url: \"{own.Url("/app")}\" }}]") +
                         Yaml.Command("other", "echo other"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.Equal(1, _box.Run("drill", "--source", "app").ExitCode);
        RunningCli.WaitUntil(() => hook.Requests.Any(r => r.Body.Contains("drill_failed", StringComparison.Ordinal)), "the drill_failed event");
        var drill = JsonDocument.Parse(hook.Requests.First(r => r.Body.Contains("drill_failed", StringComparison.Ordinal)).Body).RootElement;
        Assert.Equal("app", drill.GetProperty("source").GetString());
        Assert.Contains("drill.command /bin/false", drill.GetProperty("error").GetString(), StringComparison.Ordinal);
        // The source's own notifier hears of its source, never of another.
        Assert.Contains(own.Requests, r => r.Body.Contains("drill_failed", StringComparison.Ordinal));
        Assert.DoesNotContain(own.Requests, r => r.Body.Contains("\"other\"", StringComparison.Ordinal));

        // doctor: a target gone (its folder removed) fails a check, told once; passing again is told as recovered.
        Directory.Move(_box["backups"], _box["backups.away"]);
        Assert.Equal(1, _box.Run("doctor").ExitCode);
        Assert.Equal(1, _box.Run("doctor").ExitCode);
        RunningCli.WaitUntil(() => hook.Requests.Any(r => r.Body.Contains("doctor_failed", StringComparison.Ordinal)), "the doctor_failed event");
        Assert.Single(hook.Requests, r => r.Body.Contains("doctor_failed", StringComparison.Ordinal));
        Assert.DoesNotContain(own.Requests, r => r.Body.Contains("doctor_failed", StringComparison.Ordinal)); // doctor is the top level's
    }
}
