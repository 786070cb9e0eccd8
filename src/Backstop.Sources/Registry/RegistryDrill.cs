using System.Globalization;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Processes;
using Backstop.Sources.Scratch;

namespace Backstop.Sources.Registry;

/// <summary>
/// <c>drill: {registry: URL, user, password}</c>: a registry to push the drill into (under a scratch prefix), with its
/// own credentials (never the source's); by default a throwaway Debian docker-registry.
/// </summary>
public sealed record RegistryDrillOptions(Uri? Registry)
{
    public string? User { get; init; }

    public SecretRef? Password { get; init; }
}

public sealed partial class RegistrySourceKind
{
    public override RegistryDrillOptions? ParseDrill(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var options = new RegistryDrillOptions(map.ServerUrl("registry", "http://127.0.0.1:5000")) { User = map.String("user"), Password = map.Secret("password") };
        if ((options.User is null) != (options.Password is null))
        {
            throw map.Error(options.User is null ? "password" : "user", "give the drill registry's user and password together");
        }

        return options;
    }
}

/// <summary>
/// A registry drill: every repository of the snapshot is pushed through the restore's own path into a scratch prefix
/// (<c>backstop-drill-TOKEN/…</c>) of the drill registry, or of a throwaway <c>docker-registry</c> on a free loopback
/// port with its storage in the drill's folder; then pulled back as a client would — every tag resolved, every
/// manifest and blob read whole and hashed against its digest — and counted against the snapshot's facts. The
/// throwaway registry is stopped; on a drill registry the scratch manifests are deleted (where it allows deletes).
/// </summary>
internal sealed class RegistryDrill(RegistryAccess access, RegistryDrillOptions? drillOptions) : IDrillable
{
    public string? ThrowawayServer => drillOptions?.Registry is null ? "a throwaway docker-registry" : null;

    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var prefix = $"backstop-drill-{scope.Token}";
        if (drillOptions?.Registry is { } configured)
        {
            // drill.user and drill.password, never the source's (unless the drill registry is the source's own).
            var given = drillOptions is { User: { } u, Password: { } p } ? (u, p) : ((string, SecretRef)?)null;
            using var probe = access.ClientFor(configured, given);
            await probe.PingAsync(cancellationToken).ConfigureAwait(false);
            scope.Note($"pushed into {prefix}/ on the drill registry {probe.Where}");
            return new Scratch(access, configured, prefix, null, scope.Artifacts, new Dictionary<string, string>(), given, CredentialsFile(scope, given));
        }

        string program;
        try
        {
            program = ChildProcess.ResolveTool("docker-registry");
        }
        catch (BackupException)
        {
            throw new BackupException($"source '{access.Source}': a registry drill needs a registry to push into: install Debian's docker-registry (a throwaway one is started), or set drill.registry");
        }

        // The throwaway registry runs as backstop-drill (when Backstop is root) and asks for random credentials: while the
        // drill runs, the restored private images are on a loopback port every local user can reach.
        var user = await ScratchServer.DrillUserAsync(cancellationToken).ConfigureAwait(false);
        var root = ScratchFolders.ReachableBy(scope, user, "registry");
        var port = ScratchServer.FreePort();
        var storage = Path.Combine(root, "storage");
        Directory.CreateDirectory(storage, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var login = (User: "backstop-drill", Password: new SecretRef(Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24)), default));
        var htpasswd = Path.Combine(root, "htpasswd");
        ScratchFolders.WriteSecret(htpasswd, $"{login.User}:{BCrypt.Net.BCrypt.HashPassword(login.Password.Reference, workFactor: 5)}");
        var config = Path.Combine(root, "registry.yml");
        ScratchFolders.WriteSecret(config, $"""
            version: 0.1
            log: {"{"} level: warn {"}"}
            storage:
              filesystem: {"{"} rootdirectory: {storage} {"}"}
              delete: {"{"} enabled: true {"}"}
            auth:
              htpasswd: {"{"} realm: backstop-drill, path: {htpasswd} {"}"}
            http:
              addr: 127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}
            """);
        ScratchServer.GiveTo(user, root);
        var url = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var server = await ScratchServer.StartAsync(scope, "docker-registry", program, ["serve", config], user, async ct =>
        {
            try
            {
                // 401 until the credentials are given: it listens, and asks for them.
                using var r = await http.GetAsync(new Uri(url, "/v2/"), ct).ConfigureAwait(false);
                return r.StatusCode == System.Net.HttpStatusCode.Unauthorized;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        scope.Note($"the throwaway registry asks every client for credentials (401 without them): a random password that only this drill knows");
        using var output = new MemoryStream();
        await ChildProcess.RunToStreamAsync(program, ["--version"], new Dictionary<string, string>(), "/", output, TimeSpan.FromSeconds(30), "docker-registry --version", cancellationToken)
            .ConfigureAwait(false);
        var version = System.Text.Encoding.UTF8.GetString(output.ToArray()).Trim();
        return new Scratch(access, url, prefix, server, scope.Artifacts, new Dictionary<string, string> { ["docker-registry"] = $"{program} {version}" },
            login, CredentialsFile(scope, login));
    }

    /// <summary>The drill registry's credentials in a file of the drill's folder (0600), named in the restore's destination.</summary>
    private static string? CredentialsFile(DrillScope scope, (string User, SecretRef Password)? given)
    {
        if (given is not { } g)
        {
            return null;
        }

        var file = Path.Combine(scope.Folder, "registry-credentials");
        ScratchFolders.WriteSecret(file, $"{g.User}:{g.Password.Resolve()}");
        return file;
    }

    private sealed class Scratch(RegistryAccess source, Uri registry, string prefix, ScratchServer? server, IReadOnlyList<DrillArtifact> artifacts,
        IReadOnlyDictionary<string, string> tools, (string User, SecretRef Password)? credentials, string? credentialsFile) : IDrillScratch
    {
        public string Description => server is null
            ? $"scratch repositories {prefix}/… on the drill registry {registry.Authority}"
            : $"a throwaway docker-registry on {registry.Authority}";

        public IReadOnlyDictionary<string, string> Tools => tools;

        public string Destination(string artifact) =>
            $"{registry.GetLeftPart(UriPartial.Authority)}/{prefix}" + (credentialsFile is null ? "" : "?credentials_file=" + Uri.EscapeDataString(credentialsFile));

        /// <summary>Pulls every repository back as a client would and counts what it finds, every byte hashed.</summary>
        public async Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken)
        {
            using var client = source.ClientFor(registry, credentials);
            var checks = new List<DrillCheck>();
            foreach (var artifact in artifacts)
            {
                var repository = $"{prefix}/{OciLayoutReader.RepositoryOf(artifact.Name)}";
                var pulled = await PullAsync(client, repository, cancellationToken).ConfigureAwait(false);
                foreach (var fact in new[] { "tags", "manifests", "blobs", "bytes" })
                {
                    var expected = artifact.Facts.GetValueOrDefault(fact);
                    checks.Add(new DrillCheck($"{repository} pulled back: {fact}", expected.ToString(CultureInfo.InvariantCulture),
                        pulled[fact].ToString(CultureInfo.InvariantCulture), pulled[fact] == expected));
                }
            }

            return checks;
        }

        private static async Task<Dictionary<string, long>> PullAsync(RegistryClient client, string repository, CancellationToken cancellationToken)
        {
            var manifests = new HashSet<string>(StringComparer.Ordinal);
            var blobs = new Dictionary<string, long>(StringComparer.Ordinal);
            long bytes = 0;
            async Task WalkAsync(string reference)
            {
                var m = await client.ManifestAsync(repository, reference, cancellationToken).ConfigureAwait(false)
                        ?? throw new BackupException($"{repository}@{reference} cannot be pulled back from {client.Where}");
                if (!manifests.Add(m.Digest))
                {
                    return;
                }

                bytes += m.Bytes.Length;
                if (RegistryNames.IsIndex(m.MediaType))
                {
                    foreach (var child in Descriptor.ListOf(m.Bytes, "manifests", repository))
                    {
                        await WalkAsync(child.Digest).ConfigureAwait(false);
                    }

                    return;
                }

                foreach (var (blob, foreign) in RegistrySource.Parts(m.Bytes, repository))
                {
                    if (foreign || blobs.ContainsKey(blob.Digest))
                    {
                        continue;
                    }

                    using var response = await client.BlobAsync(repository, blob.Digest, cancellationToken).ConfigureAwait(false);
                    await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                    await using var hashed = new DigestCheckedStream(body, blob.Size, blob.Digest, $"blob {blob.Digest} pulled back from {repository}");
                    await hashed.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
                    hashed.EnsureComplete();
                    blobs[blob.Digest] = blob.Size;
                    bytes += blob.Size;
                }

                if (await client.ReferrersAsync(repository, m.Digest, cancellationToken).ConfigureAwait(false) is { } referrers)
                {
                    foreach (var r in referrers)
                    {
                        await WalkAsync(r.Digest).ConfigureAwait(false);
                    }
                }
            }

            var tags = await client.TagsAsync(repository, cancellationToken).ConfigureAwait(false);
            foreach (var tag in tags)
            {
                await WalkAsync(tag).ConfigureAwait(false);
            }

            return new Dictionary<string, long>(StringComparer.Ordinal) { ["tags"] = tags.Count, ["manifests"] = manifests.Count, ["blobs"] = blobs.Count, ["bytes"] = bytes };
        }

        public async ValueTask DisposeAsync()
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
                return;
            }

            // On a drill registry: delete what the drill pushed (its tags' manifests), where the registry allows it.
            using var client = source.ClientFor(registry, credentials);
            var kept = new List<string>();
            foreach (var artifact in artifacts)
            {
                var repository = $"{prefix}/{OciLayoutReader.RepositoryOf(artifact.Name)}";
                try
                {
                    foreach (var tag in await client.TagsAsync(repository, CancellationToken.None).ConfigureAwait(false))
                    {
                        if (await client.ManifestAsync(repository, tag, CancellationToken.None).ConfigureAwait(false) is { } m
                            && !await client.Push.DeleteManifestAsync(repository, m.Digest, CancellationToken.None).ConfigureAwait(false))
                        {
                            kept.Add(repository);
                            break;
                        }
                    }
                }
                catch (BackupException)
                {
                    kept.Add(repository);
                }
            }

            if (kept.Count > 0)
            {
                throw new BackupException($"the drill registry {client.Where} did not let the drill delete {string.Join(", ", kept.Distinct())} " +
                                          "(enable storage.delete, or delete them and garbage-collect by hand)");
            }
        }
    }
}
