using System.Globalization;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Scratch;

namespace Backstop.Sources.Etcd;

/// <summary>
/// An etcd drill: <c>snapshot.db</c> is restored into a scratch folder (its trailing hash checked), then
/// <c>etcdutl</c>/<c>etcdctl snapshot restore</c> makes a member's data from it and a scratch <c>etcd</c> runs that member
/// on free loopback ports (the load phase); its revision and key count are compared with the snapshot's.
/// </summary>
internal sealed class EtcdDrill(string name, EtcdOptions options) : IDrillable
{
    public string? ThrowawayServer => "a scratch etcd member";

    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var etcd = ScratchServerDrill.Resolve(name, "runs the snapshot in a scratch etcd member", "etcd-server", null, "etcd");
        var restoreTool = EtcdSource.Etcdctl() ?? throw new BackupException(
            $"source '{name}': the drill needs etcdutl or etcdctl to turn the snapshot into a member's data (apt-get install etcd-client)");
        var version = await ScratchServerDrill.VersionAsync(etcd, cancellationToken).ConfigureAwait(false);
        // The scratch member runs as backstop-drill (when Backstop is root), its data in a folder that user can reach.
        var user = await ScratchServer.DrillUserAsync(cancellationToken).ConfigureAwait(false);
        var folder = FolderScratch.Create(scope, "etcd");
        var data = Path.Combine(ScratchFolders.ReachableBy(scope, user, "etcd-member"), "member");
        var clientPort = 0;
        // A member restored from a cluster without authentication would answer anyone on loopback: it gets a root user
        // with a random password, and authentication on, as soon as it listens.
        var checking = options;

        return ScratchServerDrill.Loading($"a scratch etcd member ({version}) restored from {folder}/{EtcdSource.Artifact}", folder,
            new Dictionary<string, string> { ["etcd"] = $"{etcd} {version}", ["restore"] = restoreTool }, start: async ct =>
            {
                clientPort = ScratchServer.FreePort();
                var peerPort = ScratchServer.FreePort();
                var peer = $"http://127.0.0.1:{peerPort.ToString(CultureInfo.InvariantCulture)}";
                var client = $"http://127.0.0.1:{clientPort.ToString(CultureInfo.InvariantCulture)}";
                var env = new Dictionary<string, string> { ["ETCDCTL_API"] = "3" };
                await ChildProcess.RunToStreamAsync(restoreTool,
                    ["snapshot", "restore", Path.Combine(folder, EtcdSource.Artifact), "--data-dir", data, "--name", "drill", "--initial-cluster", $"drill={peer}",
                     "--initial-advertise-peer-urls", peer],
                    env, scope.Folder, Stream.Null, options.Timeout, $"source '{name}': {Path.GetFileName(restoreTool)} snapshot restore", ct).ConfigureAwait(false);
                ScratchServer.GiveTo(user, Path.GetDirectoryName(data)!);
                var running = await ScratchServer.StartAsync(scope, "etcd", etcd,
                    ["--name", "drill", "--data-dir", data, "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
                     "--initial-advertise-peer-urls", peer, "--initial-cluster", $"drill={peer}", "--initial-cluster-state", "existing"],
                    user, c => HealthyAsync(client, c), TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
                try
                {
                    if (options.User is null)
                    {
                        checking = await LockAsync(new Uri(client), scope, ct).ConfigureAwait(false);
                    }
                }
                catch
                {
                    // Not handed back yet, so the scratch's end would not stop it: a cancelled or failed lock stops it here.
                    await running.DisposeAsync().ConfigureAwait(false);
                    throw;
                }

                return running;
            }, check: async ct =>
            {
                var scratch = new EtcdServer(name, checking with { Endpoints = [new Uri($"http://127.0.0.1:{clientPort.ToString(CultureInfo.InvariantCulture)}")] });
                await scratch.ConnectAsync(ct).ConfigureAwait(false); // connects, and logs in with the source's user when the snapshot has auth on
                using var http = EtcdServer.Client(TimeSpan.FromMinutes(5));
                var (keys, revision) = await scratch.CountAsync(http, scratch.Endpoint, ct).ConfigureAwait(false);
                return ScratchServerDrill.Compare(scope, EtcdSource.Artifact, "the scratch etcd member", ("keys", keys), ("revision", revision));
            });
    }

    /// <summary>Whether the member at <paramref name="client"/> answers its health endpoint yet.</summary>
    private static async Task<bool> HealthyAsync(string client, CancellationToken c)
    {
        try
        {
            using var http = EtcdServer.Client(TimeSpan.FromSeconds(2));
            using var health = await http.GetAsync(new Uri($"{client}/health"), c).ConfigureAwait(false);
            return health.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException) when (!c.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Turns authentication on in the scratch member: a root user with a random password; the options to reach it.</summary>
    private async Task<EtcdOptions> LockAsync(Uri client, DrillScope scope, CancellationToken ct)
    {
        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24));
        var open = EtcdServer.Open(name, options, client);
        using var http = EtcdServer.Client(TimeSpan.FromSeconds(30));
        try
        {
            await open.PostAsync(http, client, "/v3/auth/user/add", new { name = "root", password }, ct).ConfigureAwait(false);
            await open.PostAsync(http, client, "/v3/auth/user/grant", new { user = "root", role = "root" }, ct).ConfigureAwait(false);
            await open.PostAsync(http, client, "/v3/auth/enable", new { }, ct).ConfigureAwait(false);
        }
        catch (BackupException e)
        {
            scope.Note($"authentication could not be turned on in the scratch member ({e.Message}), so it answers anyone on loopback while the drill runs");
            return options;
        }

        return options with { User = "root", Password = new Core.Config.SecretRef(password, default) };
    }
}
