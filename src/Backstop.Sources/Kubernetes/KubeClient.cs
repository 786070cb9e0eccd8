using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Backstop.Core.Plugins;
using k8s;
using k8s.Autorest;

namespace Backstop.Sources.Kubernetes;

/// <summary>A kind of object the API server serves: where it lives (group, version, plural) and whether it is namespaced.</summary>
internal sealed record KubeResource(string Group, string Version, string Plural, string Kind, bool Namespaced, IReadOnlyList<string> Verbs)
{
    public string GroupVersion => Group.Length == 0 ? Version : $"{Group}/{Version}";

    /// <summary><c>Deployment.apps</c>, or <c>ConfigMap</c> for the core group: the folder name in the tar.</summary>
    public string KindGroup => Group.Length == 0 ? Kind : $"{Kind}.{Group}";

    public string Prefix => Group.Length == 0 ? $"/api/{Version}" : $"/apis/{Group}/{Version}";

    public string Path(string? ns) => ns is null || !Namespaced ? $"{Prefix}/{Plural}" : $"{Prefix}/namespaces/{Uri.EscapeDataString(ns)}/{Plural}";

    /// <summary>Whether a filter entry names this kind: <c>Deployment</c>, <c>Deployment.apps</c> or <c>deployments</c> (any case).</summary>
    public bool Matches(string name) =>
        name.Equals(Kind, StringComparison.OrdinalIgnoreCase) || name.Equals(KindGroup, StringComparison.OrdinalIgnoreCase)
        || name.Equals(Plural, StringComparison.OrdinalIgnoreCase) || name.Equals(Group.Length == 0 ? Plural : $"{Plural}.{Group}", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// The official Kubernetes client (KubernetesClient): its configuration (kubeconfig and context, or the pod's service
/// account), TLS and credentials, used for the generic calls a backup of every kind needs — discovery of every API
/// group at its preferred version, lists paged with <c>limit</c>/<c>continue</c>, and create, replace, get and delete,
/// with <c>dryRun=All</c> — on JSON objects, so that custom resources go the same way as built-in ones. An error
/// answer is read as the API's <c>Status</c> object: its reason and message name the cause.
/// </summary>
internal sealed class KubeClient : k8s.Kubernetes
{
    private KubeClient(KubernetesClientConfiguration config) : base(config) => Server = config.Host;

    public string Server { get; }

    /// <summary>The largest answer taken (a page of 100 objects; an object is at most 1.5 MiB in etcd).</summary>
    private const long MaxAnswer = 256L << 20;

    /// <summary>From a kubeconfig (and context), or, without one, the pod's service account.</summary>
    public static KubeClient Create(string? kubeconfig, string? context)
    {
        try
        {
            KubernetesClientConfiguration config;
            if (kubeconfig is not null)
            {
                config = KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig, context);
            }
            else if (KubernetesClientConfiguration.IsInCluster())
            {
                config = KubernetesClientConfiguration.InClusterConfig();
            }
            else
            {
                throw new BackupException("no kubeconfig is set and this is not a pod with a service account; set kubeconfig (and context) on the source");
            }

            return new KubeClient(config);
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or IOException or FormatException or UnauthorizedAccessException or YamlDotNet.Core.YamlException)
        {
            throw new BackupException($"the kubeconfig {kubeconfig} cannot be used{(context is null ? "" : $" with context '{context}'")}: {e.Message}", e);
        }
    }

    /// <summary>One request; the answer's status and body (an error is not thrown: the caller reads its Status).</summary>
    public async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpMethod method, string pathAndQuery, JsonNode? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(BaseUri, pathAndQuery.TrimStart('/')));
        var text = "";
        if (body is not null)
        {
            text = body.ToJsonString();
            request.Content = new StringContent(text, Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        try
        {
            using var response = await SendRequestRaw(text, request, cancellationToken).ConfigureAwait(false);
            if (response.Content.Headers.ContentLength > MaxAnswer)
            {
                throw new BackupException($"the Kubernetes API server {Server} answered {KubeClient.Printable(pathAndQuery)} with {response.Content.Headers.ContentLength} bytes, more than the {MaxAnswer} taken");
            }

            return (response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (HttpOperationException e)
        {
            return (e.Response?.StatusCode ?? HttpStatusCode.InternalServerError, e.Response?.Content ?? e.Message);
        }
        catch (HttpRequestException e)
        {
            throw new BackupException($"the Kubernetes API server {Server} cannot be reached ({e.Message}); is the cluster up, and the kubeconfig's server right?", e);
        }
    }

    /// <summary>A successful JSON answer, or the API's reason as an error.</summary>
    public async Task<JsonObject> GetAsync(string path, CancellationToken cancellationToken)
    {
        var (status, body) = await SendAsync(HttpMethod.Get, path, null, cancellationToken).ConfigureAwait(false);
        if ((int)status is < 200 or > 299)
        {
            throw new BackupException($"the Kubernetes API server {Server} answered GET {path} with {Reason(status, body)}");
        }

        return Parse(body, path);
    }

    private JsonObject Parse(string body, string path)
    {
        try
        {
            return JsonNode.Parse(body) as JsonObject ?? throw new BackupException($"the Kubernetes API server {Server} answered {path} with something that is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new BackupException($"the Kubernetes API server {Server} answered {path} with something that is not JSON ({e.Message})");
        }
    }

    /// <summary>"404 NotFound: namespaces "x" not found", from a Status object (or the bare status code).</summary>
    public static string Reason(HttpStatusCode status, string body)
    {
        var code = ((int)status).ToString(CultureInfo.InvariantCulture);
        try
        {
            if (JsonNode.Parse(body) is JsonObject o && o["kind"].Str() == "Status")
            {
                var reason = o["reason"].Str();
                var message = o["message"].Str();
                return $"{code} {reason}{(message is null ? "" : ": " + Printable(message))}".Trim();
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
        }

        return $"{code} {status}";
    }

    /// <summary>Every resource the server lists, each API group at its preferred version; subresources and kinds without list left out.</summary>
    public async Task<IReadOnlyList<KubeResource>> DiscoverAsync(CancellationToken cancellationToken)
    {
        var groupVersions = new List<(string Group, string Version)>();
        var core = await GetAsync("/api", cancellationToken).ConfigureAwait(false);
        if (core["versions"] is JsonArray versions && versions.Select(v => v.Str()).Contains("v1"))
        {
            groupVersions.Add(("", "v1"));
        }

        var groups = await GetAsync("/apis", cancellationToken).ConfigureAwait(false);
        foreach (var g in groups["groups"] as JsonArray ?? [])
        {
            var name = g?["name"].Str();
            var preferred = g?["preferredVersion"]?["version"].Str() ?? (g?["versions"] as JsonArray)?.FirstOrDefault()?["version"].Str();
            if (name is not null && preferred is not null && KubeNames.IsGroup(name) && KubeNames.IsVersion(preferred))
            {
                groupVersions.Add((name, preferred));
            }
        }

        var resources = new List<KubeResource>();
        foreach (var (group, version) in groupVersions)
        {
            var path = group.Length == 0 ? "/api/v1" : $"/apis/{group}/{version}";
            JsonObject list;
            try
            {
                list = await GetAsync(path, cancellationToken).ConfigureAwait(false);
            }
            catch (BackupException) when (group.Length > 0)
            {
                continue; // an aggregated API that is down (metrics-server): its kinds are not stored objects
            }

            foreach (var r in list["resources"] as JsonArray ?? [])
            {
                var plural = r?["name"].Str() ?? "";
                var verbs = (r?["verbs"] as JsonArray ?? []).Select(v => v.Str() ?? "").ToList();
                if (plural.Contains('/', StringComparison.Ordinal) || !verbs.Contains("list") || !KubeNames.IsPlural(plural))
                {
                    continue;
                }

                var kind = r?["kind"].Str() ?? "";
                if (!KubeNames.IsKind(kind))
                {
                    throw new BackupException($"the Kubernetes API server {Server} lists a kind named '{Printable(kind)}' in {path}, which is not a kind name");
                }

                resources.Add(new KubeResource(group, version, plural, kind, r?["namespaced"].Flag() ?? false, verbs));
            }
        }

        return resources;
    }

    /// <summary>Every object of a resource (in a namespace, or in all), paged with limit and continue, with a label selector.</summary>
    public async IAsyncEnumerable<JsonObject> ListAsync(KubeResource resource, string? ns, string? labelSelector,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? next = null;
        var pages = 0;
        do
        {
            var query = $"{resource.Path(ns)}?limit=100" + (labelSelector is null ? "" : "&labelSelector=" + Uri.EscapeDataString(labelSelector))
                        + (next is null ? "" : "&continue=" + Uri.EscapeDataString(next));
            var page = await GetAsync(query, cancellationToken).ConfigureAwait(false);
            foreach (var item in page["items"] as JsonArray ?? [])
            {
                if (item is JsonObject o)
                {
                    // Lists leave apiVersion and kind out of their items.
                    o["apiVersion"] = resource.GroupVersion;
                    o["kind"] = resource.Kind;
                    yield return o;
                }
            }

            next = page["metadata"]?["continue"].Str() is { Length: > 0 } c ? c : null;
            if (++pages > 100_000)
            {
                throw new BackupException($"the Kubernetes API server {Server} keeps paging {resource.Path(ns)}; stopped after 100,000 pages");
            }
        }
        while (next is not null);
    }

    internal static string Printable(string text) => Backstop.Core.Text.ServerText.Printable(text);
}

/// <summary>Values read from what a server or an archive sends: the wrong type is "absent", never an exception.</summary>
internal static class JsonAccess
{
    public static string? Str(this JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    public static bool? Flag(this JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValueKind() == JsonValueKind.True : null;
}

/// <summary>The names Kubernetes allows, checked on what a server sends before any becomes a path in the tar.</summary>
internal static partial class KubeNames
{
    [System.Text.RegularExpressions.GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial System.Text.RegularExpressions.Regex Subdomain();

    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z][A-Za-z0-9]*$")]
    private static partial System.Text.RegularExpressions.Regex KindPattern();

    [System.Text.RegularExpressions.GeneratedRegex("^v[0-9]+((alpha|beta)[0-9]+)?$")]
    private static partial System.Text.RegularExpressions.Regex VersionPattern();

    /// <summary>An object or namespace name: a DNS subdomain (at most 253), the widest rule any built-in kind uses.</summary>
    public static bool IsName(string name) => name.Length is > 0 and <= 253 && Subdomain().IsMatch(name) || IsColonName(name);

    /// <summary>RBAC objects allow ':' (system:controller:…); nothing else of the path alphabet.</summary>
    private static bool IsColonName(string name) =>
        name.Length is > 0 and <= 253 && !name.StartsWith('.') && !name.Contains("..", StringComparison.Ordinal)
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or ':' or '_' or '@');

    public static bool IsGroup(string group) => group.Length <= 253 && Subdomain().IsMatch(group);

    public static bool IsKind(string kind) => kind.Length <= 100 && KindPattern().IsMatch(kind);

    public static bool IsPlural(string plural) => plural.Length is > 0 and <= 100 && plural.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');

    public static bool IsVersion(string version) => VersionPattern().IsMatch(version);
}
