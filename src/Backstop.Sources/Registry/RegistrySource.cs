using System.Text.Json;
using Backstop.Core.Config;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Registry;

public sealed record RegistryOptions(Uri Url, string? User, SecretRef? Password, IReadOnlyList<string>? Repositories, IReadOnlyList<string>? Tags,
    bool Referrers, TimeSpan Timeout);

/// <summary>
/// A container registry over the distribution API v2: every repository (or those listed), every tag (or those listed),
/// each repository as an OCI image layout tar (<c>REPO.oci.tar</c>) holding every manifest as the exact bytes the
/// registry sent (so every digest stays the same), every platform of an index, the referrers (signatures,
/// attestations, SBOMs: by the referrers API, or by the cosign tag schema <c>sha256-HEX.sig/.att/.sbom</c>), and every
/// blob, streamed and checked against its digest. Restores with <c>skopeo copy oci:DIR:TAG docker://…</c>.
/// </summary>
public sealed partial class RegistrySourceKind : SourceKind<RegistryOptions, RegistryDrillOptions>
{
    public override int RecoveryOrder => RecoveryStage.Images;

    public override string Kind => "registry";

    public override string Summary => "A container registry (distribution API v2): one OCI image layout per repository.";

    public override string RestoreTo => "http(s)://HOST:PORT[/PREFIX]";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("url", "https://registry.internal:5000", "The registry, without credentials or path"),
        new("user", "backup", "User for basic or token authentication"),
        new("password", "env:REGISTRY_PASSWORD", "Its password (needs a user)"),
        new("repositories", "all", "The repositories: all (the _catalog, paged), or a list"),
        new("tags", "all", "The tags of each repository: all, or a list"),
        new("referrers", "true", "Also keep signatures, attestations and SBOMs (the referrers API, or cosign sha256-….sig tags)"),
        new("timeout", "6h", "The most a whole backup may take"),
        new("drill.registry", "http://127.0.0.1:5001", "Push into this registry (under backstop-drill-…) instead of a throwaway docker-registry") { Default = "a throwaway docker-registry" },
        new("drill.user", "drill", "The drill registry's user (the source's credentials go to the source's own registry only)") { Default = "none" },
        new("drill.password", "env:DRILL_REGISTRY_PASSWORD", "The drill registry user's password") { Default = "none" },
    ];

    public override IReadOnlyList<string> Facts { get; } = ["repositories", "tags", "manifests", "blobs", "bytes"];

    public override IReadOnlyList<string> CountFacts { get; } = ["repositories", "tags", "manifests", "blobs"];

    public override RegistryOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var url = map.RequireString("url");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.UserInfo.Length > 0
            || uri.AbsolutePath.Trim('/').Length > 0 || uri.Query.Length > 0)
        {
            throw map.Error("url", $"'{url}' is not a registry URL without credentials or path, like https://registry.example.org or http://127.0.0.1:5000 (credentials go in user/password)");
        }

        var repositories = map.AllOrList("repositories");
        foreach (var r in repositories ?? [])
        {
            if (!RegistryNames.IsRepository(r))
            {
                throw map.Error("repositories", $"'{r}' is not a repository name (lowercase letters, digits, '.', '_', '-', and '/' between parts)");
            }
        }

        var tags = map.AllOrList("tags");
        foreach (var t in tags ?? [])
        {
            if (!RegistryNames.IsTag(t))
            {
                throw map.Error("tags", $"'{t}' is not a tag (letters, digits, '_', '.', '-'; at most 128)");
            }
        }

        var password = map.Secret("password");
        var user = map.String("user");
        if (password is not null && user is null)
        {
            throw map.Error("password", "a password needs a user");
        }

        return new RegistryOptions(uri, user, password, repositories, tags, map.BoolOr("referrers", true), map.Timeout("timeout", TimeSpan.FromHours(6)));
    }

    public override ISource Create(SourceDefinition definition, RegistryOptions options, RegistryDrillOptions? drill)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var access = new RegistryAccess(definition.Name, options);
        return new RegistrySource(access, new RegistryRestore(access), new RegistryDrill(access, drill), new RegistryHealth(access));
    }
}

/// <summary>
/// A registry source: every image of its repositories captured as an OCI layout per repository, with the format check and
/// stock recipe; its parts for the rest — restore, drill and health — each a type of its own over one <see cref="RegistryAccess"/>.
/// </summary>
internal sealed class RegistrySource(RegistryAccess access, RegistryRestore restore, RegistryDrill drill, RegistryHealth health) : ISource
{
    private static readonly string[] ReferrerSuffixes = ["", ".sig", ".att", ".sbom"];

    public T? Capability<T>() where T : class => restore as T ?? drill as T ?? health as T ?? this as T;

    public async Task<SourcePreflight> PreflightAsync(CancellationToken cancellationToken)
    {
        using var client = access.Client();
        var version = await client.PingAsync(cancellationToken).ConfigureAwait(false);
        return new SourcePreflight(new Dictionary<string, string> { ["registry"] = $"{client.Where} {version}" }, 0);
    }

    public async Task CaptureAsync(ICaptureSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        using var client = access.Client();
        var repositories = access.Options.Repositories ?? (await client.RepositoriesAsync(cancellationToken).ConfigureAwait(false)).Order(StringComparer.Ordinal).ToList();
        foreach (var repository in repositories)
        {
            await CaptureRepositoryAsync(client, repository, sink, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task CaptureRepositoryAsync(RegistryClient client, string repository, ICaptureSink sink, CancellationToken cancellationToken)
    {
        var all = await client.TagsAsync(repository, cancellationToken).ConfigureAwait(false);
        var allTags = all.ToHashSet(StringComparer.Ordinal);
        var wanted = new List<string>();
        foreach (var tag in access.Options.Tags ?? [.. all.Order(StringComparer.Ordinal)])
        {
            if (!allTags.Contains(tag))
            {
                throw new BackupException($"source '{access.Source}': repository {repository} on {client.Where} has no tag '{tag}' (listed in tags:)");
            }

            wanted.Add(tag);
        }

        var artifactName = OciLayoutReader.ArtifactName(repository);
        var external = new HashSet<string>(StringComparer.Ordinal);
        long externalBytes = 0;
        await using var artifact = await sink.BeginArtifactAsync(artifactName, cancellationToken).ConfigureAwait(false);
        await using var layout = await OciLayoutWriter.CreateAsync(artifact.Content, cancellationToken).ConfigureAwait(false);
        var index = new List<Descriptor>();
        var untagged = new Dictionary<string, Descriptor>(StringComparer.Ordinal);
        var manifests = 0;
        var blobs = new HashSet<string>(StringComparer.Ordinal);
        bool? referrersApi = access.Options.Referrers ? null : false;
        var done = new HashSet<string>(StringComparer.Ordinal);

        async Task<Descriptor?> StoreAsync(string reference, Descriptor? expected, int depth)
        {
            if (depth > 8)
            {
                throw new BackupException($"source '{access.Source}': manifests in {repository} are nested more than 8 deep at {reference}");
            }

            if (await client.ManifestAsync(repository, reference, cancellationToken).ConfigureAwait(false) is not { } m)
            {
                return expected is null ? null
                    : throw new BackupException($"source '{access.Source}': {repository}@{reference} is named by an index but the registry at {client.Where} does not have it");
            }

            if (expected is not null && (expected.Size != m.Bytes.Length || (RegistryNames.IsManifest(expected.MediaType) && expected.MediaType != m.MediaType)))
            {
                throw new BackupException($"source '{access.Source}': {repository}@{reference} is {m.Bytes.Length} bytes of {m.MediaType}; its descriptor says {expected.Size} of {expected.MediaType}");
            }

            if (done.Add(m.Digest))
            {
                var what = $"{repository}@{m.Digest}";
                if (RegistryNames.IsIndex(m.MediaType))
                {
                    foreach (var child in Descriptor.ListOf(m.Bytes, "manifests", what))
                    {
                        await StoreAsync(child.Digest, child, depth + 1).ConfigureAwait(false);
                    }
                }
                else
                {
                    foreach (var (blob, foreign) in Parts(m.Bytes, what))
                    {
                        if (foreign)
                        {
                            sink.Warn($"{repository}: layer {blob.Digest} of {m.Digest} is a foreign (non-distributable) layer the registry does not hold; not stored");
                            continue;
                        }

                        var blobWhat = $"blob {blob.Digest} of {repository} from {client.Where}";
                        if (sink.Blobs is { } shared)
                        {
                            // Stored once per target, shared by every snapshot: read from the registry only when a target lacks it.
                            if (external.Add(blob.Digest))
                            {
                                await shared.PutAsync(artifactName, blob.Digest, blob.Size, !IsCompressed(blob.MediaType), async ct =>
                                {
                                    var response = await client.BlobAsync(repository, blob.Digest, ct).ConfigureAwait(false);
                                    try
                                    {
                                        var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                                        return new DigestCheckedStream(body, blob.Size, blob.Digest, blobWhat, response);
                                    }
                                    catch
                                    {
                                        response.Dispose();
                                        throw;
                                    }
                                }, cancellationToken).ConfigureAwait(false);
                                externalBytes += blob.Size;
                            }
                        }
                        else if (!layout.Has(blob.Digest))
                        {
                            using var response = await client.BlobAsync(repository, blob.Digest, cancellationToken).ConfigureAwait(false);
                            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                            await layout.AddAsync(blob.Digest, blob.Size, body, blobWhat, cancellationToken).ConfigureAwait(false);
                        }

                        blobs.Add(blob.Digest);
                    }
                }

                await layout.AddAsync(m.Digest, m.Bytes, cancellationToken).ConfigureAwait(false);
                manifests++;

                if (referrersApi != false)
                {
                    var referrers = await client.ReferrersAsync(repository, m.Digest, cancellationToken).ConfigureAwait(false);
                    referrersApi = referrers is not null;
                    foreach (var r in referrers ?? [])
                    {
                        if (await StoreAsync(r.Digest, r, depth + 1).ConfigureAwait(false) is { } stored)
                        {
                            untagged.TryAdd(stored.Digest, stored with { Annotations = r.Annotations, ArtifactType = r.ArtifactType });
                        }
                    }
                }
            }

            return new Descriptor(m.MediaType, m.Digest, m.Bytes.Length, new Dictionary<string, string>());
        }

        var queue = new Queue<string>(wanted);
        var taken = new HashSet<string>(wanted, StringComparer.Ordinal);
        while (queue.Count > 0)
        {
            var tag = queue.Dequeue();
            if (await StoreAsync(tag, null, 0).ConfigureAwait(false) is not { } d)
            {
                sink.Warn($"{repository}:{tag} was deleted between the tag list and its read; not stored");
                continue;
            }

            index.Add(d with { Annotations = new Dictionary<string, string> { [OciLayoutWriter.RefName] = tag } });

            // The cosign tag schema: signatures, attestations and SBOMs of a manifest are tags named after its digest.
            if (access.Options.Referrers)
            {
                foreach (var digest in done.ToList())
                {
                    foreach (var suffix in ReferrerSuffixes)
                    {
                        var referrer = "sha256-" + digest["sha256:".Length..] + suffix;
                        if (allTags.Contains(referrer) && taken.Add(referrer))
                        {
                            queue.Enqueue(referrer);
                        }
                    }
                }
            }
        }

        foreach (var d in untagged.Values.Where(u => index.All(i => i.Digest != u.Digest)))
        {
            index.Add(d);
        }

        await layout.FinishAsync(index, new Dictionary<string, string> { ["io.backstop.repository"] = repository }, cancellationToken).ConfigureAwait(false);
        await layout.DisposeAsync().ConfigureAwait(false);
        await artifact.CompleteAsync(new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["repositories"] = 1,
            ["tags"] = index.Count(i => i.Annotations.ContainsKey(OciLayoutWriter.RefName)),
            ["manifests"] = manifests,
            ["blobs"] = blobs.Count,
            ["bytes"] = layout.Bytes + externalBytes,
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A layer already compressed (gzip, zstd…): stored as it is; an uncompressed tar layer (and a config) goes through zstd.</summary>
    internal static bool IsCompressed(string mediaType) =>
        mediaType.EndsWith("gzip", StringComparison.Ordinal) || mediaType.EndsWith("zstd", StringComparison.Ordinal);

    /// <summary>An image manifest's config and layers; a layer with <c>urls</c> is foreign (non-distributable).</summary>
    internal static IReadOnlyList<(Descriptor Blob, bool Foreign)> Parts(byte[] manifest, string what)
    {
        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(manifest);
        }
        catch (JsonException e)
        {
            throw new BackupException($"{what} is not JSON ({e.Message})");
        }

        using var document = json;
        if (json.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new BackupException($"{what} is JSON but not an object, which every image manifest is");
        }

        var parts = new List<(Descriptor, bool)>();
        try
        {
            if (json.RootElement.TryGetProperty("config", out var config))
            {
                parts.Add((Descriptor.From(config, what), false));
            }

            if (json.RootElement.TryGetProperty("layers", out var layers) && layers.ValueKind == JsonValueKind.Array)
            {
                parts.AddRange(layers.EnumerateArray().Select(l => (Descriptor.From(l, what), l.ValueKind == JsonValueKind.Object && l.TryGetProperty("urls", out _))));
            }
        }
        catch (InvalidOperationException e)
        {
            // JsonDocument checks a string's UTF-8 only when it is read: damaged bytes inside a string.
            throw new BackupException($"{what} holds a string that is not UTF-8 ({e.Message})");
        }

        return parts;
    }

    public IArtifactValidator? ValidatorFor(string artifactName) => new LayoutValidator(artifactName);

    private sealed class LayoutValidator(string artifact) : IArtifactValidator
    {
        public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken) =>
            (await OciLayoutReader.ReadAsync(content, null, artifact, cancellationToken).ConfigureAwait(false)).Facts;
    }

    /// <summary>
    /// The stock recipe: unpack the layout (oci-layout, index.json, the manifests) into a fresh folder, put in the
    /// configs and layers the snapshot's MANIFEST lists for this artifact from the source's shared BLOBS folder (each
    /// decrypted and decompressed as its name says, the name held to HEX[.zst][.age]), then <c>skopeo copy</c> each tag
    /// with every platform and the manifests' own bytes (<c>--preserve-digests</c>; skopeo checks every digest).
    /// REGISTRY is host:port[/prefix]; TLS_VERIFY is false for a plain-http registry (log in first with
    /// <c>skopeo login</c> when it needs credentials).
    /// </summary>
    public string RestoreRecipe(string artifactName, string storedFile)
    {
        var repository = OciLayoutReader.RepositoryOf(artifactName) ?? "REPOSITORY";
        var sealedBlobs = storedFile.TrimEnd('\'', '"').EndsWith(".age", StringComparison.Ordinal);
        var copy = sealedBlobs
            ? "case \"$f\" in *.zst.age) age -d -i KEY_FILE BLOBS/\"$f\" | zstd -dc ;; *) age -d -i KEY_FILE BLOBS/\"$f\" ;; esac"
            : "case \"$f\" in *.zst) zstd -dc BLOBS/\"$f\" ;; *) cat BLOBS/\"$f\" ;; esac";
        return $"d=$(mktemp -d) && zstd -dc {storedFile} | tar -x -C \"$d\" && " +
               $"(for f in $(jq -r --arg a {Core.Text.ShellWord.Quote(artifactName)} '.artifacts[] | select(.name == $a) | (.blobs // [])[].file' MANIFEST); " +
               $"do printf %s \"$f\" | grep -qxE '[0-9a-f]{{64}}(\\.zst)?(\\.age)?' && {copy} > \"$d/blobs/sha256/${{f%%.*}}\" || exit 1; done) && " +
               $"(for t in $(jq -r '.manifests[].annotations[\"{OciLayoutWriter.RefName}\"] // empty' \"$d/index.json\"); " +
               $"do skopeo copy --all --preserve-digests --dest-tls-verify=TLS_VERIFY oci:\"$d\":\"$t\" docker://REGISTRY/{repository}:\"$t\" || exit 1; done); s=$?; rm -rf \"$d\"; [ $s = 0 ]";
    }

    public IReadOnlyDictionary<string, string> RecipePlaces(string destination)
    {
        var (uri, prefix) = Destination(destination);
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["REGISTRY"] = uri.Authority + (prefix.Length > 0 ? "/" + prefix : ""),
            ["URL"] = uri.GetLeftPart(UriPartial.Authority),
            ["HOST"] = uri.Host,
            ["PORT"] = uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["TLS_VERIFY"] = uri.Scheme == "https" ? "true" : "false",
        };
    }

    internal const string DestinationExample = "http(s)://HOST:PORT[/PREFIX]";

    /// <summary>
    /// <c>--to http(s)://HOST:PORT[/PREFIX]</c>: the registry, and a repository prefix (itself a repository path).
    /// <c>?credentials_file=PATH</c> names a file (<c>user:password</c>, one line, read only by this user) with the
    /// destination's own credentials; without it the source's are used for the source's own registry only.
    /// </summary>
    internal static (Uri Url, string Prefix) Destination(string destination) => Destination(destination, out _);

    internal static (Uri Url, string Prefix) Destination(string destination, out (string User, SecretRef Password)? credentials)
    {
        credentials = null;
        if (!Uri.TryCreate(destination, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
        {
            throw new ConfigException($"--to {destination}: a registry source restores into a registry named like {DestinationExample}");
        }

        if (uri.UserInfo.Length > 0)
        {
            throw new ConfigException("--to: leave the credentials out of the URL (every user would see them): name a file with ?credentials_file=PATH (user:password)");
        }

        if (uri.Query.Length > 0)
        {
            var query = System.Web.HttpUtility.ParseQueryString(uri.Query);
            if (query.Count != 1 || query["credentials_file"] is not { Length: > 0 } file)
            {
                throw new ConfigException($"--to {destination}: the only option a registry destination takes is ?credentials_file=PATH");
            }

            var line = new SecretRef("file:" + file, default).Resolve();
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            credentials = colon > 0 ? (line[..colon], new SecretRef(line[(colon + 1)..], default))
                : throw new ConfigException($"--to: {file} must hold user:password on one line");
        }

        var prefix = uri.AbsolutePath.Trim('/');
        if (prefix.Length > 0 && !RegistryNames.IsRepository(prefix))
        {
            throw new ConfigException($"--to {destination}: '{prefix}' is not a repository prefix (lowercase letters, digits, '.', '_', '-', '/')");
        }

        return (new Uri(uri.GetLeftPart(UriPartial.Authority)), prefix);
    }
}
