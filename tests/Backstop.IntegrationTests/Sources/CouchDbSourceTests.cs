using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>CouchDB with a CouchDB-compatible server (the audit: four CouchDB instances with no backup at all).</summary>
public sealed class CouchDbSourceTests : IClassFixture<CouchServer>, IDisposable
{
    private readonly CouchServer _couch;
    private readonly Sandbox _box = new();

    public CouchDbSourceTests(CouchServer couch) => _couch = couch;

    public void Dispose() => _box.Dispose();

    private static string NewName(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];

    private void Config(string databases, string extra = "", string? url = null) =>
        _box.WriteConfig(Yaml.LocalTarget() + "sources:\n" + $"  - {{ name: couch, kind: couchdb, url: \"{url ?? _couch.Url}\", databases: [{databases}]{extra} }}\n");

    private async Task<string> CreateLedgerAsync(int documents)
    {
        var db = NewName("ledger");
        await _couch.SendAsync(HttpMethod.Put, "/" + db);
        var docs = Enumerable.Range(0, documents).Select(i => new { _id = $"tx-{i:0000}", amount = i * 10, memo = $"transfer {i}" }).ToArray();
        await _couch.SendAsync(HttpMethod.Post, $"/{db}/_bulk_docs", new { docs });
        // A document edited twice (revision history) with an attachment.
        var first = await _couch.SendAsync(HttpMethod.Get, $"/{db}/tx-0007");
        var second = await _couch.SendAsync(HttpMethod.Put, $"/{db}/tx-0007",
            $"{{\"_rev\":\"{first.GetProperty("_rev").GetString()}\",\"amount\":71,\"memo\":\"corrected\"}}");
        await _couch.SendAsync(HttpMethod.Put, $"/{db}/tx-0007", new Dictionary<string, object>
        {
            ["_rev"] = second.GetProperty("rev").GetString()!,
            ["amount"] = 72,
            ["_attachments"] = new Dictionary<string, object>
            {
                ["receipt.txt"] = new { content_type = "text/plain", data = Convert.ToBase64String("receipt #7"u8.ToArray()) },
            },
        });
        return db;
    }

    [Fact]
    public async Task A_120_MB_attachment_streams_through_backup_and_restore_in_bounded_memory()
    {
        // 120 MB: the largest attachment pouchdb-server takes here (200 MB fails inside it with "Invalid array length");
        // the document's line is 160 MB of base64, more than the 150 MiB memory goal, so a held line would show.
        var db = NewName("blobs");
        await _couch.SendAsync(HttpMethod.Put, "/" + db);
        var data = new byte[120_000_000];
        new Random(7).NextBytes(data);
        using (var put = new ByteArrayContent(data))
        {
            put.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
            using var response = await _couch.Http.PutAsync(new Uri($"{_couch.Url}/{db}/scan-001/scan.bin"), put);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }

        await _couch.SendAsync(HttpMethod.Post, $"/{db}/_bulk_docs", new { docs = Enumerable.Range(0, 50).Select(i => new { _id = $"d{i:00}", n = i }).ToArray() });
        Config(db);
        using (var running = _box.Start("run"))
        {
            var (run, peak) = running.WaitMeasuringPeak();
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.True(peak < 150L << 20, $"backup peak RSS {peak >> 20} MiB, goal 150 MiB");
        }

        var copy = NewName("blobs-restored");
        using (var running = _box.Start("restore", "--source", "couch", "--to", $"{_couch.Url}/{copy}"))
        {
            var (restore, peak) = running.WaitMeasuringPeak();
            Assert.True(restore.ExitCode == 0, restore.ToString());
            Assert.Contains("documents=51, as recorded", restore.Stdout, StringComparison.Ordinal);
            Assert.True(peak < 150L << 20, $"restore peak RSS {peak >> 20} MiB, goal 150 MiB");
        }

        var original = await _couch.SendAsync(HttpMethod.Get, $"/{db}/scan-001");
        var restored = await _couch.SendAsync(HttpMethod.Get, $"/{copy}/scan-001");
        Assert.Equal(original.GetProperty("_attachments").GetProperty("scan.bin").GetProperty("digest").GetString(),
            restored.GetProperty("_attachments").GetProperty("scan.bin").GetProperty("digest").GetString());
        Assert.Equal(original.GetProperty("_rev").GetString(), restored.GetProperty("_rev").GetString());
    }

    [Fact]
    public async Task Documents_with_revisions_and_attachments_round_trip_through_bulk_docs_new_edits_false()
    {
        var db = await CreateLedgerAsync(120);
        Config(db, ", expect: { min_documents: 100 }");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(120, _box.Snapshots()[0].GetProperty("facts").GetProperty("documents").GetInt64());

        var stored = Directory.GetFiles(_box["backups/couch"], db + ".jsonl.zst", SearchOption.AllDirectories).Single();
        var lines = _box.Shell($"zstd -dc '{stored}'").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var docs = lines.Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        var copy = NewName("restored");
        await _couch.SendAsync(HttpMethod.Put, "/" + copy);
        await _couch.SendAsync(HttpMethod.Post, $"/{copy}/_bulk_docs", new { new_edits = false, docs });

        Assert.Equal(120, (await _couch.SendAsync(HttpMethod.Get, "/" + copy)).GetProperty("doc_count").GetInt64());
        var original = await _couch.SendAsync(HttpMethod.Get, $"/{db}/tx-0007?revs=true");
        var restored = await _couch.SendAsync(HttpMethod.Get, $"/{copy}/tx-0007?revs=true");
        Assert.Equal(original.GetProperty("_rev").GetString(), restored.GetProperty("_rev").GetString());
        Assert.Equal(3, restored.GetProperty("_revisions").GetProperty("ids").GetArrayLength());
        var attachment = await _couch.Http.GetStringAsync(new Uri($"/{copy}/tx-0007/receipt.txt", UriKind.Relative));
        Assert.Equal("receipt #7", attachment);
    }

    [Fact]
    public async Task All_databases_each_get_an_artifact()
    {
        var a = await CreateLedgerAsync(10);
        var b = await CreateLedgerAsync(12);
        Config("all");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var artifacts = _box.Snapshots()[0].GetProperty("artifacts").EnumerateArray().Select(x => x.GetProperty("name").GetString()).ToList();
        Assert.Contains(a + ".jsonl", artifacts);
        Assert.Contains(b + ".jsonl", artifacts);
    }

    [Fact]
    public void A_closed_port_fails_naming_host_and_port()
    {
        var closed = PostgresServer.FreePort();
        Config("x", url: $"http://127.0.0.1:{closed}");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"connection to CouchDB at 127.0.0.1:{closed} refused", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_empty_database_fails_min_documents()
    {
        var db = NewName("empty");
        await _couch.SendAsync(HttpMethod.Put, "/" + db);
        try
        {
            Config(db, ", expect: { min_documents: 1 }");
            var run = _box.Run("run");
            Assert.Equal(1, run.ExitCode);
            Assert.Contains("the source reported 0 documents, fewer than expect.min_documents 1", run.All, StringComparison.Ordinal);
        }
        finally
        {
            // The server is the class's: an empty database left on it fails every later "databases: all" run (an empty dump is never a backup).
            await _couch.SendAsync(HttpMethod.Delete, "/" + db);
        }
    }

    [Fact]
    public void A_database_that_does_not_exist_fails_naming_it()
    {
        Config("no-such-db");
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("/no-such-db does not exist", run.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Restore_into_a_new_database_keeps_revisions_and_refuses_a_full_one()
    {
        var db = await CreateLedgerAsync(40);
        Config(db);
        Assert.Equal(0, _box.Run("run").ExitCode);
        var copy = NewName("restored");
        var to = $"{_couch.Url}/{copy}";
        var r = _box.Run("restore", "--source", "couch", "--to", to);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("documents=40, as recorded", r.Stdout, StringComparison.Ordinal);
        var original = await _couch.SendAsync(HttpMethod.Get, $"/{db}/tx-0007");
        var restored = await _couch.SendAsync(HttpMethod.Get, $"/{copy}/tx-0007");
        Assert.Equal(original.GetProperty("_rev").GetString(), restored.GetProperty("_rev").GetString());

        var again = _box.Run("restore", "--source", "couch", "--to", to);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already holds 40 documents", again.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_password_fails_saying_so_and_the_right_one_works()
    {
        using var secured = new CouchServer(); // its own server: an admin changes what anonymous requests may do
        await secured.SendAsync(HttpMethod.Put, "/books");
        await secured.SendAsync(HttpMethod.Post, "/books", new { title = "one" });
        await secured.SendAsync(HttpMethod.Put, "/_config/admins/admin", "\"Couch-Secret-3\"");
        var env = new Dictionary<string, string> { ["COUCH_PASSWORD"] = "Couch-Secret-3" };
        Config("books", ", user: admin, password: \"env:COUCH_PASSWORD\"", secured.Url);
        var good = _box.Run(["run"], env);
        Assert.True(good.ExitCode == 0, good.ToString());

        Config("books", ", user: admin, password: not-it", secured.Url);
        var bad = _box.Run("run");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("refused the credentials: check 'user' and 'password'", bad.All, StringComparison.Ordinal);
        Assert.DoesNotContain("not-it", bad.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_dies_mid_transfer_fails_the_snapshot_and_stores_nothing()
    {
        var db = NewName("scans");
        await _couch.SendAsync(HttpMethod.Put, "/" + db);
        var scan = Convert.ToBase64String(new byte[64 * 1024]);
        var docs = Enumerable.Range(0, 20).Select(i => new Dictionary<string, object>
        {
            ["_id"] = $"scan-{i:00}",
            ["_attachments"] = new Dictionary<string, object> { ["page.bin"] = new { content_type = "application/octet-stream", data = scan } },
        }).ToArray();
        await _couch.SendAsync(HttpMethod.Post, $"/{db}/_bulk_docs", new { docs });
        using var proxy = new FaultProxy(_couch.Port, budget: 300 * 1024); // a few documents pass, then the server is gone
        Config(db, url: $"http://127.0.0.1:{proxy.Port}");
        var run = _box.Run("run");
        Assert.True(proxy.Tripped, "the transfer was smaller than the proxy's budget");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"CouchDB at 127.0.0.1:{proxy.Port} broke off the connection while sending /{db}/scan-", run.All, StringComparison.Ordinal);
        Assert.Empty(Sandbox.FilesUnder(_box["backups"]));
        Assert.Equal("failed", _box.Snapshots()[0].GetProperty("state").GetString());
    }

    /// <summary>The restore --explain recipe (curl and jq) run as printed: the same documents and revisions.</summary>
    [Fact]
    public async Task The_explain_recipe_run_literally_restores_the_same_documents_and_revisions()
    {
        var db = await CreateLedgerAsync(15);
        Config(db);
        Assert.Equal(0, _box.Run("run").ExitCode);
        var copy = NewName("explained");
        var explain = _box.Run("restore", "--source", "couch", "--explain", "--to", $"{_couch.Url}/{copy}");
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var recipe = explain.Stdout.Split('\n').Single(l => l.StartsWith("curl", StringComparison.Ordinal));
        var r = _box.Shell(recipe);
        Assert.True(r.ExitCode == 0, r.ToString() + "\n" + recipe);
        Assert.Equal(15, (await _couch.SendAsync(HttpMethod.Get, "/" + copy)).GetProperty("doc_count").GetInt32());
        Assert.Equal((await _couch.SendAsync(HttpMethod.Get, $"/{db}/tx-0007")).GetProperty("_rev").GetString(),
            (await _couch.SendAsync(HttpMethod.Get, $"/{copy}/tx-0007")).GetProperty("_rev").GetString());
    }
}
