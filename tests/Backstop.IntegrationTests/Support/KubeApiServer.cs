using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// A Kubernetes API server fixture (nothing here can run a real one): plain HTTP on a free loopback port, as an API
/// server is reached through <c>kubectl proxy</c> (a wrong bearer token is refused, none is let in), and the API conventions for the kinds the tests use — discovery (<c>/api</c>, <c>/apis</c>, resource
/// lists, custom resources served once their CustomResourceDefinition exists), lists paged with <c>limit</c> and an
/// opaque <c>continue</c>, label selectors (equality), get, create (<c>dryRun=All</c> validates without storing;
/// namespace must exist; 409 AlreadyExists), replace, delete (a namespace with its objects), and errors as
/// <c>Status</c> objects. An object labelled <c>fixture/refuse: "true"</c> is refused as Invalid (422), as an admission
/// webhook would. kubectl itself is run against it in the tests, to hold it to the protocol the real client expects.
/// </summary>
public sealed class KubeApiServer : IDisposable
{
    public const string Token = "fixture-token-5f1c";

    private static readonly (string Group, string Version, string Plural, string Kind, bool Namespaced)[] Builtin =
    [
        ("", "v1", "namespaces", "Namespace", false),
        ("", "v1", "configmaps", "ConfigMap", true),
        ("", "v1", "secrets", "Secret", true),
        ("", "v1", "services", "Service", true),
        ("", "v1", "serviceaccounts", "ServiceAccount", true),
        ("", "v1", "pods", "Pod", true),
        ("", "v1", "events", "Event", true),
        ("", "v1", "endpoints", "Endpoints", true),
        ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true),
        ("", "v1", "persistentvolumes", "PersistentVolume", false),
        ("", "v1", "nodes", "Node", false),
        ("apps", "v1", "deployments", "Deployment", true),
        ("apps", "v1", "replicasets", "ReplicaSet", true),
        ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false),
        ("coordination.k8s.io", "v1", "leases", "Lease", true),
    ];

    private readonly HttpListener _listener = new();
    private readonly Dictionary<string, JsonObject> _objects = new(StringComparer.Ordinal); // "group/plural/ns/name" → object
    private readonly List<string> _requests = [];
    private long _version = 1000;

    public KubeApiServer()
    {
        Port = PostgresServer.FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/");
        _listener.Start();
        _ = Task.Run(LoopAsync);
        Add(new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = "default" } });
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Page size the server uses when a list asks for more (small, so that paging is exercised).</summary>
    public int MaxPage { get; set; } = 3;

    public List<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>A kubeconfig for this server (context "fixture", and "other" pointing at <paramref name="other"/> when given).</summary>
    public string WriteKubeconfig(string path, KubeApiServer? other = null)
    {
        var clusters = $"- name: fixture\n  cluster: {{ server: \"{Url}\" }}\n" + (other is null ? "" : $"- name: other\n  cluster: {{ server: \"{other.Url}\" }}\n");
        var contexts = "- name: fixture\n  context: { cluster: fixture, user: backstop }\n" + (other is null ? "" : "- name: other\n  context: { cluster: other, user: backstop }\n");
        File.WriteAllText(path, $"apiVersion: v1\nkind: Config\ncurrent-context: fixture\nclusters:\n{clusters}contexts:\n{contexts}users:\n- name: backstop\n  user: {{ token: {Token} }}\n");
        return path;
    }

    /// <summary>Stores an object as the server would (uid, resourceVersion, timestamps, a status).</summary>
    public void Add(JsonObject o)
    {
        lock (_objects)
        {
            var (group, plural, ns) = Where(o);
            var meta = o["metadata"]!.AsObject();
            meta["uid"] = Guid.NewGuid().ToString();
            meta["resourceVersion"] = (++_version).ToString(CultureInfo.InvariantCulture);
            meta["creationTimestamp"] = "2026-11-01T10:00:00Z";
            meta["managedFields"] = new JsonArray(new JsonObject { ["manager"] = "kubectl", ["operation"] = "Apply" });
            o["status"] ??= new JsonObject { ["phase"] = "Active" };
            _objects[$"{group}/{plural}/{ns}/{meta["name"]}"] = o;
        }
    }

    public JsonObject? Get(string group, string plural, string? ns, string name)
    {
        lock (_objects)
        {
            return _objects.GetValueOrDefault($"{group}/{plural}/{ns}/{name}")?.DeepClone().AsObject();
        }
    }

    public List<JsonObject> All(string group, string plural)
    {
        lock (_objects)
        {
            return _objects.Where(kv => kv.Key.StartsWith($"{group}/{plural}/", StringComparison.Ordinal)).Select(kv => kv.Value.DeepClone().AsObject()).ToList();
        }
    }

    private (string Group, string Plural, string Ns) Where(JsonObject o)
    {
        var apiVersion = o["apiVersion"]!.GetValue<string>();
        var group = apiVersion.Contains('/', StringComparison.Ordinal) ? apiVersion[..apiVersion.IndexOf('/', StringComparison.Ordinal)] : "";
        var kind = o["kind"]!.GetValue<string>();
        var r = Resources().First(r => r.Group == group && r.Kind == kind);
        return (group, r.Plural, r.Namespaced ? o["metadata"]?["namespace"]?.GetValue<string>() ?? "default" : "");
    }

    /// <summary>Built-in kinds, and the custom resources of every stored CustomResourceDefinition.</summary>
    private List<(string Group, string Version, string Plural, string Kind, bool Namespaced)> Resources()
    {
        lock (_objects)
        {
            var list = Builtin.ToList();
            foreach (var crd in _objects.Where(kv => kv.Key.StartsWith("apiextensions.k8s.io/customresourcedefinitions/", StringComparison.Ordinal)).Select(kv => kv.Value))
            {
                var spec = crd["spec"]!;
                list.Add((spec["group"]!.GetValue<string>(), spec["versions"]![0]!["name"]!.GetValue<string>(), spec["names"]!["plural"]!.GetValue<string>(),
                    spec["names"]!["kind"]!.GetValue<string>(), spec["scope"]!.GetValue<string>() == "Namespaced"));
            }

            return list;
        }
    }

    private async Task LoopAsync()
    {
        while (true)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
            {
                return;
            }

            try
            {
                var (status, body) = Handle(context.Request);
                var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
                context.Response.StatusCode = status;
                context.Response.ContentType = "application/json";
                await context.Response.OutputStream.WriteAsync(bytes);
            }
            catch (Exception e)
            {
                context.Response.StatusCode = 500;
                await context.Response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes(Status(500, "InternalError", e.Message).ToJsonString()));
            }

            context.Response.Close();
        }
    }

    private static JsonObject Status(int code, string reason, string message) => new()
    {
        ["kind"] = "Status", ["apiVersion"] = "v1", ["metadata"] = new JsonObject(), ["status"] = "Failure", ["message"] = message, ["reason"] = reason, ["code"] = code,
    };

    private (int, JsonNode) Handle(HttpListenerRequest request)
    {
        var path = request.Url!.AbsolutePath.TrimEnd('/');
        var query = request.QueryString;
        lock (_requests)
        {
            _requests.Add($"{request.HttpMethod} {request.Url.PathAndQuery}");
        }

        // A wrong token is refused; none at all is let in, as behind `kubectl proxy` (kubectl sends no token over plain HTTP).
        if (request.Headers["Authorization"] is { } auth && auth != "Bearer " + Token)
        {
            return (401, Status(401, "Unauthorized", "Unauthorized"));
        }

        var resources = Resources();
        if (request.HttpMethod == "GET")
        {
            switch (path)
            {
                case "/version":
                    return (200, new JsonObject { ["major"] = "1", ["minor"] = "30", ["gitVersion"] = "v1.30.0-fixture" });
                case "/openapi/v3":
                {
                    // The OpenAPI v3 index, one document per group-version: enough for kubectl to see that the server
                    // takes fieldValidation (so it validates server-side, not against schemas the fixture does not have).
                    var paths = new JsonObject();
                    foreach (var gv in resources.Select(r => r.Group.Length == 0 ? "api/v1" : $"apis/{r.Group}/{r.Version}").Distinct())
                    {
                        paths[gv] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/{gv}?hash=fixture" };
                    }

                    return (200, new JsonObject { ["paths"] = paths });
                }

                case "/api":
                    return (200, new JsonObject { ["kind"] = "APIVersions", ["versions"] = new JsonArray("v1"), ["serverAddressByClientCIDRs"] = new JsonArray() });
                case "/apis":
                    var groups = new JsonArray();
                    foreach (var g in resources.Where(r => r.Group.Length > 0).GroupBy(r => (r.Group, r.Version)).Select(g => g.Key))
                    {
                        var gv = new JsonObject { ["groupVersion"] = $"{g.Group}/{g.Version}", ["version"] = g.Version };
                        groups.Add(new JsonObject { ["name"] = g.Group, ["versions"] = new JsonArray(gv.DeepClone()), ["preferredVersion"] = gv });
                    }

                    return (200, new JsonObject { ["kind"] = "APIGroupList", ["apiVersion"] = "v1", ["groups"] = groups });
            }

            if (path.StartsWith("/openapi/v3/", StringComparison.Ordinal))
            {
                var gv = path["/openapi/v3/".Length..];
                var docPaths = new JsonObject();
                foreach (var r in resources.Where(r => (r.Group.Length == 0 ? "api/v1" : $"apis/{r.Group}/{r.Version}") == gv))
                {
                    var gvk = new JsonObject { ["group"] = r.Group, ["version"] = r.Version, ["kind"] = r.Kind };
                    JsonObject Op() => new()
                    {
                        ["parameters"] = new JsonArray(new JsonObject { ["name"] = "fieldValidation", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string" } }),
                        ["responses"] = new JsonObject { ["200"] = new JsonObject { ["description"] = "OK" } },
                        ["x-kubernetes-group-version-kind"] = gvk.DeepClone(),
                    };
                    var collection = "/" + gv + (r.Namespaced ? "/namespaces/{namespace}/" : "/") + r.Plural;
                    docPaths[collection] = new JsonObject { ["post"] = Op() };
                    docPaths[collection + "/{name}"] = new JsonObject { ["put"] = Op(), ["patch"] = Op() };
                }

                return (200, new JsonObject
                {
                    ["openapi"] = "3.0.0", ["info"] = new JsonObject { ["title"] = "Kubernetes", ["version"] = "v1.30.0" }, ["paths"] = docPaths,
                    ["components"] = new JsonObject { ["schemas"] = new JsonObject() },
                });
            }

            if (path == "/api/v1" || (path.StartsWith("/apis/", StringComparison.Ordinal) && path.Count(c => c == '/') == 3))
            {
                var (group, version) = path == "/api/v1" ? ("", "v1") : (path.Split('/')[2], path.Split('/')[3]);
                var list = new JsonArray();
                foreach (var r in resources.Where(r => r.Group == group && r.Version == version))
                {
                    list.Add(new JsonObject
                    {
                        ["name"] = r.Plural, ["singularName"] = r.Kind.ToLowerInvariant(), ["namespaced"] = r.Namespaced, ["kind"] = r.Kind,
                        ["verbs"] = new JsonArray("create", "delete", "get", "list", "patch", "update", "watch"),
                    });
                    list.Add(new JsonObject { ["name"] = r.Plural + "/status", ["namespaced"] = r.Namespaced, ["kind"] = r.Kind, ["verbs"] = new JsonArray("get", "patch", "update") });
                }

                return list.Count == 0
                    ? (404, Status(404, "NotFound", "the server could not find the requested resource"))
                    : (200, new JsonObject { ["kind"] = "APIResourceList", ["apiVersion"] = "v1", ["groupVersion"] = group.Length == 0 ? "v1" : $"{group}/{version}", ["resources"] = list });
            }
        }

        // /api/v1[/namespaces/NS]/PLURAL[/NAME] or /apis/G/V[/namespaces/NS]/PLURAL[/NAME]
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).ToList();
        string grp;
        if (parts.Count >= 2 && parts[0] == "api")
        {
            grp = "";
            parts.RemoveRange(0, 2);
        }
        else if (parts.Count >= 3 && parts[0] == "apis")
        {
            grp = parts[1];
            parts.RemoveRange(0, 3);
        }
        else
        {
            return (404, Status(404, "NotFound", "the server could not find the requested resource"));
        }

        string? ns = null;
        if (parts.Count >= 3 && parts[0] == "namespaces")
        {
            ns = parts[1];
            parts.RemoveRange(0, 2);
        }

        var res = resources.FirstOrDefault(r => r.Group == grp && parts.Count > 0 && r.Plural == parts[0]);
        if (res.Plural is null)
        {
            return (404, Status(404, "NotFound", "the server could not find the requested resource"));
        }

        var objectName = parts.Count > 1 ? parts[1] : null;
        var key = $"{grp}/{res.Plural}/{(res.Namespaced ? ns : "")}/";
        lock (_objects)
        {
            switch (request.HttpMethod)
            {
                case "GET" when objectName is null:
                {
                    var selector = (query["labelSelector"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => s.Split('=')).ToList();
                    var items = _objects.Where(kv => kv.Key.StartsWith($"{grp}/{res.Plural}/", StringComparison.Ordinal) && (ns is null || kv.Key.StartsWith(key, StringComparison.Ordinal)))
                        .OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value)
                        .Where(o => selector.All(s => o["metadata"]?["labels"]?[s[0]]?.GetValue<string>() == s[1])).ToList();
                    var offset = query["continue"] is { } c ? int.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(c)), CultureInfo.InvariantCulture) : 0;
                    var limit = Math.Min(int.TryParse(query["limit"], out var l) && l > 0 ? l : int.MaxValue, MaxPage);
                    var page = items.Skip(offset).Take(limit).Select(o =>
                    {
                        var copy = o.DeepClone().AsObject();
                        copy.Remove("apiVersion"); // as a real list: items without apiVersion and kind
                        copy.Remove("kind");
                        return (JsonNode)copy;
                    }).ToArray();
                    var meta = new JsonObject { ["resourceVersion"] = _version.ToString(CultureInfo.InvariantCulture) };
                    if (offset + limit < items.Count)
                    {
                        meta["continue"] = Convert.ToBase64String(Encoding.UTF8.GetBytes((offset + limit).ToString(CultureInfo.InvariantCulture)));
                    }

                    return (200, new JsonObject { ["kind"] = res.Kind + "List", ["apiVersion"] = grp.Length == 0 ? "v1" : $"{grp}/{res.Version}", ["metadata"] = meta, ["items"] = new JsonArray(page) });
                }

                case "GET":
                    return _objects.TryGetValue(key + objectName, out var found)
                        ? (200, found.DeepClone())
                        : (404, Status(404, "NotFound", $"{res.Plural} \"{objectName}\" not found"));

                case "POST":
                {
                    using var reader = new StreamReader(request.InputStream);
                    var o = JsonNode.Parse(reader.ReadToEnd())!.AsObject();
                    var name = o["metadata"]?["name"]?.GetValue<string>();
                    if (string.IsNullOrEmpty(name))
                    {
                        return (422, Status(422, "Invalid", $"{res.Kind} \"\" is invalid: metadata.name: Required value: name or generateName is required"));
                    }

                    if (res.Namespaced && (ns is null || !_objects.ContainsKey($"/namespaces//{ns}")))
                    {
                        return (404, Status(404, "NotFound", $"namespaces \"{ns}\" not found"));
                    }

                    if (o["metadata"]?["labels"]?["fixture/refuse"]?.GetValue<string>() == "true")
                    {
                        return (422, Status(422, "Invalid", $"{res.Kind} \"{name}\" is invalid: refused by the admission webhook policy.example.org"));
                    }

                    if (_objects.ContainsKey(key + name))
                    {
                        return (409, Status(409, "AlreadyExists", $"{res.Plural} \"{name}\" already exists"));
                    }

                    if (query["dryRun"] == "All")
                    {
                        return (201, o);
                    }

                    if (res.Namespaced)
                    {
                        o["metadata"]!["namespace"] = ns;
                    }

                    Add(o);
                    return (201, o.DeepClone());
                }

                case "PUT":
                {
                    using var reader = new StreamReader(request.InputStream);
                    var o = JsonNode.Parse(reader.ReadToEnd())!.AsObject();
                    if (!_objects.TryGetValue(key + objectName, out var existing))
                    {
                        return (404, Status(404, "NotFound", $"{res.Plural} \"{objectName}\" not found"));
                    }

                    if (o["metadata"]?["resourceVersion"]?.GetValue<string>() != existing["metadata"]!["resourceVersion"]!.GetValue<string>())
                    {
                        return (409, Status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again"));
                    }

                    if (query["dryRun"] == "All")
                    {
                        return (200, o);
                    }

                    Add(o);
                    return (200, o.DeepClone());
                }

                case "PATCH":
                {
                    // Merge semantics (RFC 7386) for merge and strategic-merge patches: enough for kubectl apply's annotation patch.
                    using var reader = new StreamReader(request.InputStream);
                    var patch = JsonNode.Parse(reader.ReadToEnd())!.AsObject();
                    if (!_objects.TryGetValue(key + objectName, out var existing))
                    {
                        return (404, Status(404, "NotFound", $"{res.Plural} \"{objectName}\" not found"));
                    }

                    var merged = existing.DeepClone().AsObject();
                    Merge(merged, patch);
                    if (query["dryRun"] != "All")
                    {
                        _objects[key + objectName] = merged;
                    }

                    return (200, merged.DeepClone());
                }

                case "DELETE":
                    if (!_objects.Remove(key + objectName))
                    {
                        return (404, Status(404, "NotFound", $"{res.Plural} \"{objectName}\" not found"));
                    }

                    if (res.Plural == "namespaces")
                    {
                        foreach (var k in _objects.Keys.Where(k => k.Split('/')[2] == objectName).ToList())
                        {
                            _objects.Remove(k);
                        }
                    }

                    return (200, Status(200, "", "deleted"));
            }
        }

        return (405, Status(405, "MethodNotAllowed", $"{request.HttpMethod} is not supported by this fixture"));
    }

    private static void Merge(JsonObject target, JsonObject patch)
    {
        foreach (var (k, v) in patch.ToList())
        {
            if (v is null)
            {
                target.Remove(k);
            }
            else if (v is JsonObject po && target[k] is JsonObject to)
            {
                Merge(to, po);
            }
            else
            {
                target[k] = v.DeepClone();
            }
        }
    }

    public void Dispose() => _listener.Close();
}
