using Backstop.IntegrationTests.Support;
using Microsoft.Playwright;

namespace Backstop.IntegrationTests.Serve;

/// <summary>serve's dashboard in Debian's headless Chromium, through Playwright: what a person sees equals status --json.</summary>
public sealed class DashboardTests : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly int _port = PostgresServer.FreePort();

    public void Dispose() => _box.Dispose();

    private string Url(string path) => $"http://127.0.0.1:{_port}{path}";

    [Fact]
    public async Task Chromium_renders_the_status_table_as_status_json_says_with_a_failing_source_failing_and_nothing_from_elsewhere()
    {
        Assert.True(File.Exists("/usr/bin/chromium"), "/usr/bin/chromium is missing: run ./test.sh, which installs Debian's chromium");
        _box.WriteConfig(Yaml.LocalTarget() + $"serve: {{ listen: \"127.0.0.1:{_port}\" }}\nsources:\n" +
                         Yaml.Command("app", "echo data", ", rto: 10m") + Yaml.Command("ledger", "test -e broken && exit 4; echo ledger"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        Assert.Equal(0, _box.Run("drill", "--source", "app").ExitCode);
        _box.Write("broken", "");
        Assert.Equal(1, _box.Run("run", "--source", "ledger").ExitCode);
        Assert.Equal(0, _box.Run("run", "--source", "app").ExitCode); // a history of two for the charts
        var expected = _box.Json("status").GetProperty("sources").EnumerateArray()
            .ToDictionary(s => s.GetProperty("name").GetString()!, s => s.GetProperty("state").GetString()!);
        Assert.Equal("failing", expected["ledger"]);

        using var serve = _box.Start("serve");
        RunningCli.WaitUntil(() => Sandbox.Exec("curl", "-sf", Url("/healthz")).ExitCode == 0, "serve listening", TimeSpan.FromSeconds(30));
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium", Headless = true, Args = ["--no-sandbox"],
        });
        var page = await browser.NewPageAsync();
        var requested = new List<string>();
        page.Request += (_, r) => requested.Add(r.Url);
        var response = await page.GotoAsync(Url("/"));
        Assert.Equal(200, response!.Status);
        Assert.Contains("default-src 'none'", (await response.AllHeadersAsync())["content-security-policy"], StringComparison.Ordinal);

        var rows = await page.Locator("#status tbody tr").AllAsync();
        var seen = new Dictionary<string, string>();
        foreach (var row in rows)
        {
            seen[(await row.GetAttributeAsync("data-source"))!] = (await row.GetAttributeAsync("data-state"))!;
        }

        Assert.Equal(expected.OrderBy(e => e.Key), seen.OrderBy(e => e.Key));
        var ledgerState = page.Locator("tr[data-source='ledger'] td.failing");
        Assert.Equal("failing", (await ledgerState.InnerTextAsync()).Trim());
        Assert.Equal("rgb(207, 34, 46)", await ledgerState.EvaluateAsync<string>("e => getComputedStyle(e).color")); // shown in red
        Assert.Contains("passed", await page.Locator("tr[data-source='app']").InnerTextAsync(), StringComparison.Ordinal);

        var artifacts = Path.Combine(CouchServer.RepoRoot, "tests", "artifacts");
        Directory.CreateDirectory(artifacts);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "dashboard.png"), FullPage = true });

        await page.GotoAsync(Url("/source/app"));
        Assert.Equal(2, await page.Locator("svg").CountAsync()); // stored size and duration over time
        Assert.Contains("passed", await page.Locator("body").InnerTextAsync(), StringComparison.Ordinal);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(artifacts, "dashboard-source.png"), FullPage = true });

        // Nothing was asked of another host, and without a token the page is read-only.
        Assert.All(requested, u => Assert.StartsWith($"http://127.0.0.1:{_port}/", u, StringComparison.Ordinal));
        Assert.Equal(0, await page.Locator("form").CountAsync());
        var post = Sandbox.Exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", Url("/source/app/run"));
        Assert.Equal("403", post.Stdout);
        serve.Signal("TERM");
        serve.Wait(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task With_a_token_run_now_is_a_post_that_needs_the_token_and_the_pages_csrf_field()
    {
        _box.WriteConfig(Yaml.LocalTarget() + $"serve: {{ listen: \"127.0.0.1:{_port}\", token: \"env:SERVE_TOKEN\" }}\nsources:\n" + Yaml.Command("app", "echo data"));
        Assert.Equal(0, _box.Run("run").ExitCode);
        using var serve = _box.Start(["serve"], new Dictionary<string, string> { ["SERVE_TOKEN"] = "t0ken-for-tests" });
        RunningCli.WaitUntil(() => Sandbox.Exec("curl", "-sf", Url("/healthz")).ExitCode == 0, "serve listening", TimeSpan.FromSeconds(30));
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = "/usr/bin/chromium", Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync();
        await page.GotoAsync(Url("/"));

        // A forged POST (no CSRF cookie and field of a rendered page) is refused even with the token.
        var forged = Sandbox.Exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-d", "token=t0ken-for-tests&csrf=x", Url("/source/app/run"));
        Assert.Equal("403", forged.Stdout);

        var form = page.Locator("tr[data-source='app'] form[action='/source/app/run']");
        await form.Locator("input[name='token']").FillAsync("wrong");
        await form.Locator("button").ClickAsync();
        Assert.Contains("refused", await page.Locator("body").InnerTextAsync(), StringComparison.Ordinal);

        await page.GotoAsync(Url("/"));
        form = page.Locator("tr[data-source='app'] form[action='/source/app/run']");
        await form.Locator("input[name='token']").FillAsync("t0ken-for-tests");
        await form.Locator("button").ClickAsync();
        RunningCli.WaitUntil(() => _box.Snapshots().Count(s => s.GetProperty("valid").GetBoolean()) >= 2, "the run asked for", TimeSpan.FromSeconds(60));
        serve.Signal("TERM");
        var r = serve.Wait(TimeSpan.FromSeconds(30));
        Assert.Contains("run app: asked for now", r.Stdout, StringComparison.Ordinal);
    }
}
