using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Restoring;

namespace Backstop.Sources.Etcd;

public sealed record EtcdOptions(IReadOnlyList<Uri> Endpoints, string? User, SecretRef? Password, TimeSpan Timeout)
{
    /// <summary><c>cacert</c>: the CA that signed the server's certificate (k3s: server-ca.crt), trusted for these endpoints only.</summary>
    public string? CaCert { get; init; }

    /// <summary><c>cert</c> and <c>key</c>: the client certificate presented to a cluster that asks for one (<c>--client-cert-auth</c>).</summary>
    public string? Cert { get; init; }

    public string? Key { get; init; }

    /// <summary><c>k3s_config</c>: k3s' configuration file, which says whether and when k3s takes its own etcd snapshots (doctor checks them).</summary>
    public string K3sConfig { get; init; } = "/etc/rancher/k3s/config.yaml";
}

/// <summary>
/// An etcd cluster through its v3 JSON gateway: <c>POST /v3/maintenance/snapshot</c> streamed into the artifact
/// <c>snapshot.db</c> (the first endpoint that answers). Facts: revision and key count; the snapshot's own
/// trailing SHA-256 is checked while it streams.
/// </summary>
public sealed class EtcdSourceKind : SourceKind<EtcdOptions>
{
    public override int RecoveryOrder => RecoveryStage.ClusterState;

    public override string Kind => "etcd";

    public override string Summary => "An etcd cluster: `snapshot.db` through etcdctl.";

    public override string RestoreTo => "a folder";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("endpoints", "[\"https://10.0.0.5:2379\"]", "The cluster's client URLs; the snapshot is taken from the first that answers") { Default = "http://127.0.0.1:2379" },
        new("user", "root", "An etcd user (with password)"),
        new("password", "env:ETCD_PASSWORD", "Its password; only ever in etcdctl's environment"),
        new("timeout", "1h", "The most the snapshot may take"),
        new("cacert", "/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt", "The CA that signed the servers' certificates (PEM), trusted for these endpoints only") { Default = "the system's CAs" },
        new("cert", "/var/lib/rancher/k3s/server/tls/etcd/client.crt", "A client certificate (PEM) for a cluster started with --client-cert-auth (k3s' own)"),
        new("key", "/var/lib/rancher/k3s/server/tls/etcd/client.key", "The client certificate's private key (PEM); never copied"),
        new("k3s_config", "/etc/rancher/k3s/config.yaml", "For k3s' etcd (certificates under DATA/server/tls/etcd/): k3s' configuration, from which doctor learns whether and when k3s takes its own etcd snapshots, and checks the newest is recent"),
    ];

    public override IReadOnlyList<string> Facts { get; } = ["keys", "revision"];

    public override IReadOnlyList<string> CountFacts { get; } = ["keys"];

    public override EtcdOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var endpoints = new List<Uri>();
        foreach (var e in map.StringList("endpoints") ?? ["http://127.0.0.1:2379"])
        {
            if (!Uri.TryCreate(e, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            {
                throw map.Error("endpoints", $"'{e}' is not an http(s) URL like http://127.0.0.1:2379");
            }

            endpoints.Add(uri);
        }

        var timeout = map.Timeout("timeout", TimeSpan.FromHours(1));

        var user = map.String("user");
        var password = map.Secret("password");
        if ((user is null) != (password is null))
        {
            throw map.Error(user is null ? "password" : "user", "etcd authentication needs both 'user' and 'password'");
        }

        var cacert = map.PathValue("cacert");
        var cert = map.PathValue("cert");
        var key = map.PathValue("key");
        if ((cert is null) != (key is null))
        {
            throw map.Error(cert is null ? "key" : "cert", "a client certificate needs both 'cert' and 'key'");
        }

        if ((cacert ?? cert) is not null && endpoints.FirstOrDefault(e => e.Scheme != "https") is { } plain)
        {
            throw map.Error(cacert is not null ? "cacert" : "cert", $"certificates go with https endpoints; {plain} is http");
        }

        var k3s = map.PathValue("k3s_config") ?? "/etc/rancher/k3s/config.yaml";
        return new EtcdOptions(endpoints, user, password, timeout) { CaCert = cacert, Cert = cert, Key = key, K3sConfig = k3s };
    }

    public override ISource Create(SourceDefinition definition, EtcdOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        return new EtcdSource(new EtcdServer(definition.Name, options), new EtcdDrill(definition.Name, options), new EtcdHealth(definition.Name, options),
            definition.StateDirectory);
    }
}

/// <summary>An etcd source: the snapshot captured with its check and stock recipe, and staged for a restore; drill and health are parts of their own.</summary>
internal sealed class EtcdSource(EtcdServer server, EtcdDrill drill, EtcdHealth health, string stateDirectory = "") : ISource, IStagedRestorable
{
    public T? Capability<T>() where T : class => drill as T ?? health as T ?? this as T;

    /// <summary>The run's staging folder while capturing (the format check spools the snapshot there for etcdctl).</summary>
    private string? _staging;

    /// <summary>Writes <c>snapshot.db</c> into a folder, for <c>etcdctl snapshot restore</c>; its trailing hash is checked.</summary>
    public Task<StagedRestore> StageAsync(string artifactName, Stream content, string destination, bool force, CancellationToken cancellationToken) =>
        RestoreDestination.CheckedFileInFolderAsync(destination, Artifact, force, content, Validator(), cancellationToken);

    /// <summary>
    /// The tool whose <c>snapshot status</c> reads the revision out of a snapshot file: etcdutl (etcd 3.5 and later; 3.6
    /// dropped it from etcdctl), else etcdctl; null when neither is installed.
    /// </summary>
    internal static string? Etcdctl()
    {
        foreach (var tool in new[] { "etcdutl", "etcdctl" })
        {
            try
            {
                return ChildProcess.ResolveTool(tool);
            }
            catch (BackupException)
            {
                // the next one
            }
        }

        return null;
    }

    private SnapshotValidator Validator() =>
        Etcdctl() is { } tool && (_staging ?? (stateDirectory.Length > 0 ? stateDirectory : null)) is { } folder
            ? new SnapshotValidator(tool, folder, isPrivate: _staging is null)
            : new SnapshotValidator();

    internal const string Artifact = "snapshot.db";

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        var version = await server.ConnectAsync(cancellationToken).ConfigureAwait(false);
        return new SourcePreflight(new Dictionary<string, string> { ["etcd"] = version, ["endpoint"] = server.Endpoint.ToString() }, 0);
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var endpoint = server.Endpoint;
        _staging = sink.StagingDirectory;
        using var http = server.SourceClient(server.Options.Timeout);
        var (keys, revision) = await server.CountAsync(http, endpoint, cancellationToken).ConfigureAwait(false);

        await using var artifact = await sink.BeginArtifactAsync(Artifact, cancellationToken).ConfigureAwait(false);
        using var request = server.Request(endpoint, "/v3/maintenance/snapshot", new { });
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            await server.EnsureOkAsync(response, "/v3/maintenance/snapshot", cancellationToken).ConfigureAwait(false);
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var reader = new StreamReader(body, Encoding.UTF8);
            long remaining = -1;
            // The gateway streams one JSON message a line: {"result":{"remaining_bytes":"…","blob":"<base64>"}}.
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                if (line.Length == 0)
                {
                    continue;
                }

                using var message = JsonDocument.Parse(line);
                if (message.RootElement.TryGetProperty("error", out var error))
                {
                    throw new BackupException($"source '{server.Source}': etcd at {EtcdServer.Authority(endpoint)} stopped the snapshot: {error}");
                }

                var result = message.RootElement.GetProperty("result");
                if (result.TryGetProperty("blob", out var blob))
                {
                    await artifact.Content.WriteAsync(blob.GetBytesFromBase64(), cancellationToken).ConfigureAwait(false);
                }

                remaining = result.TryGetProperty("remaining_bytes", out var r) ? long.Parse(r.GetString() ?? "0", CultureInfo.InvariantCulture) : 0;
            }

            if (remaining != 0)
            {
                throw new BackupException($"source '{server.Source}': the snapshot stream from {EtcdServer.Authority(endpoint)} ended with {remaining} bytes still to come");
            }
        }
        catch (HttpRequestException e)
        {
            throw new BackupException($"source '{server.Source}': {server.Explain(endpoint, e)}");
        }
        catch (IOException e)
        {
            throw new BackupException($"source '{server.Source}': the snapshot stream from {EtcdServer.Authority(endpoint)} broke off: {e.Message}");
        }

        // With etcdctl the revision is read from the snapshot itself (the one asked before it may be older on a busy
        // cluster); the live key count is the server's word (the snapshot's totalKey counts every revision).
        var facts = new Dictionary<string, long> { ["keys"] = keys };
        if (Etcdctl() is null)
        {
            facts["revision"] = revision;
        }

        await artifact.CompleteAsync(facts, cancellationToken).ConfigureAwait(false);
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => Validator();

    public string RestoreRecipe(string artifactName, string storedFile) =>
        $"mkdir -p DEST && zstd -d < {storedFile} > DEST/snapshot.db && ETCDCTL_API=3 etcdctl snapshot restore DEST/snapshot.db --data-dir DEST/data  # then: etcd --data-dir DEST/data";

    /// <summary>
    /// An etcd snapshot ends with the SHA-256 of everything before it (what <c>etcdctl snapshot restore</c> checks). With
    /// etcdctl, the bytes are also spooled (0600) and <c>etcdctl snapshot status</c> reads the revision out of them.
    /// </summary>
    private sealed class SnapshotValidator(string? etcdctl = null, string? folder = null, bool isPrivate = false) : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
        {
            if (etcdctl is null || folder is null)
            {
                return await CheckAsync(content, null, cancellationToken).ConfigureAwait(false);
            }

            return await CheckSpool.RunAsync(folder, isPrivate, ".db", spool => CheckAsync(content, spool, cancellationToken), async path =>
            {
                using var report = new MemoryStream();
                try
                {
                    await ChildProcess.RunToStreamAsync(etcdctl, ["snapshot", "status", path, "-w", "json"], new Dictionary<string, string> { ["ETCDCTL_API"] = "3" },
                        folder, report, TimeSpan.FromMinutes(30), $"{Path.GetFileName(etcdctl)} snapshot status", cancellationToken).ConfigureAwait(false);
                    using var status = JsonDocument.Parse(report.ToArray());
                    return (IReadOnlyDictionary<string, long>)new Dictionary<string, long> { ["revision"] = status.RootElement.GetProperty("revision").GetInt64() };
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or BackupException && e is not CheckToolException)
                {
                    // The snapshot's own hash passed above: a tool that cannot read it is the tool's problem.
                    throw new CheckToolException($"{etcdctl} snapshot status did not give the snapshot's revision: {e.Message}");
                }
            }).ConfigureAwait(false);
        }

        /// <summary>The trailing SHA-256 while streaming, each block also written to <paramref name="copy"/> when given.</summary>
        private static async Task<IReadOnlyDictionary<string, long>> CheckAsync(Stream content, Stream? copy, CancellationToken cancellationToken)
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 17];
            var tail = new byte[32];
            var tailLength = 0;
            var joined = new byte[64];
            long total = 0;
            int n;
            while ((n = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (copy is not null)
                {
                    await copy.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }

                total += n;
                if (n >= 32)
                {
                    sha.AppendData(tail, 0, tailLength);
                    sha.AppendData(buffer, 0, n - 32);
                    buffer.AsSpan(n - 32, 32).CopyTo(tail);
                    tailLength = 32;
                }
                else
                {
                    tail.AsSpan(0, tailLength).CopyTo(joined);
                    buffer.AsSpan(0, n).CopyTo(joined.AsSpan(tailLength));
                    var length = tailLength + n;
                    var release = Math.Max(0, length - 32);
                    sha.AppendData(joined, 0, release);
                    joined.AsSpan(release, length - release).CopyTo(tail);
                    tailLength = length - release;
                }
            }

            if (tailLength < 32 || !sha.GetHashAndReset().AsSpan().SequenceEqual(tail))
            {
                throw new BackupException($"the etcd snapshot ({total} bytes) does not end with the SHA-256 of its content: it is cut short or damaged");
            }

            return new Dictionary<string, long>();
        }
    }
}
