using System.Text.Json;
using System.Text.Json.Nodes;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Sources;

/// <summary>
/// The kubernetes source against <see cref="KubeApiServer"/> (an API server fixture: nothing here can run a real
/// cluster), with kubectl — the real client — run against the same fixture to hold it to the protocol, and to run the
/// stock recipe (the audit: "cluster secrets and configmaps never backed up, cron script failing").
/// </summary>
public sealed class KubernetesSourceTests : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly KubeApiServer _api = new();

    public void Dispose()
    {
        _api.Dispose();
        _box.Dispose();
    }

    private static string Kubectl
    {
        get
        {
            var path = Path.Combine(CouchServer.RepoRoot, ".tools", "bin", "kubectl");
            Assert.True(File.Exists(path), $"{path} is missing: run ./test.sh, which installs kubectl");
            return path;
        }
    }

    private static JsonObject Obj(string apiVersion, string kind, string? ns, string name, JsonObject? extra = null, JsonObject? labels = null)
    {
        var meta = new JsonObject { ["name"] = name };
        if (ns is not null)
        {
            meta["namespace"] = ns;
        }

        if (labels is not null)
        {
            meta["labels"] = labels;
        }

        var o = new JsonObject { ["apiVersion"] = apiVersion, ["kind"] = kind, ["metadata"] = meta };
        foreach (var (k, v) in extra ?? [])
        {
            o[k] = v?.DeepClone();
        }

        return o;
    }

    /// <summary>The second audit's estate, small: two namespaces, config, a secret, a service, a deployment and what its controller made, a ledger CRD and its objects, and what must never be stored.</summary>
    private static void Populate(KubeApiServer api)
    {
        foreach (var ns in new[] { "shop", "ledger" })
        {
            api.Add(Obj("v1", "Namespace", null, ns, labels: new JsonObject { ["team"] = "platform" }));
        }

        api.Add(Obj("v1", "ConfigMap", "shop", "settings", new JsonObject { ["data"] = new JsonObject { ["mode"] = "on", ["retries"] = "3", ["motd"] = "line one\nline two: yes\n" } }));
        api.Add(Obj("v1", "ConfigMap", "shop", "flags", new JsonObject { ["data"] = new JsonObject { ["beta"] = "true" } }, new JsonObject { ["app"] = "shop" }));
        api.Add(Obj("v1", "ConfigMap", "ledger", "peers", new JsonObject { ["data"] = new JsonObject { ["count"] = "9" } }));
        api.Add(Obj("v1", "Secret", "shop", "db-password", new JsonObject { ["type"] = "Opaque", ["data"] = new JsonObject { ["password"] = "c2VjcmV0LXZhbHVl" } }));
        api.Add(Obj("v1", "Secret", "shop", "default-token-x1", new JsonObject { ["type"] = "kubernetes.io/service-account-token" }));
        api.Add(Obj("v1", "Service", "shop", "web", new JsonObject { ["spec"] = new JsonObject { ["clusterIP"] = "10.43.0.17", ["ports"] = new JsonArray(new JsonObject { ["port"] = 80 }) } }));
        api.Add(Obj("apps/v1", "Deployment", "shop", "web", new JsonObject { ["spec"] = new JsonObject { ["replicas"] = 2 } }, new JsonObject { ["app"] = "shop" }));
        var owner = new JsonArray(new JsonObject { ["apiVersion"] = "apps/v1", ["kind"] = "Deployment", ["name"] = "web", ["uid"] = "u-1", ["controller"] = true });
        api.Add(Obj("apps/v1", "ReplicaSet", "shop", "web-5d9", new JsonObject { ["spec"] = new JsonObject { ["replicas"] = 2 } }));
        var rs = Obj("apps/v1", "ReplicaSet", "shop", "web-5d9b");
        rs["metadata"]!["ownerReferences"] = owner.DeepClone();
        api.Add(rs);
        var pod = Obj("v1", "Pod", "shop", "web-5d9b-x7", new JsonObject { ["spec"] = new JsonObject { ["containers"] = new JsonArray() } });
        pod["metadata"]!["ownerReferences"] = new JsonArray(new JsonObject { ["apiVersion"] = "apps/v1", ["kind"] = "ReplicaSet", ["name"] = "web-5d9b", ["uid"] = "u-2", ["controller"] = true });
        api.Add(pod);
        api.Add(Obj("v1", "Pod", "shop", "debug", new JsonObject { ["spec"] = new JsonObject { ["containers"] = new JsonArray() } })); // a bare pod: kept
        api.Add(Obj("v1", "Event", "shop", "web.17a", new JsonObject { ["reason"] = "Scheduled" }));
        api.Add(Obj("coordination.k8s.io/v1", "Lease", "shop", "leader"));
        api.Add(Obj("v1", "Node", null, "k3s-node-1"));
        api.Add(Obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", null, "channels.ledger.example.org", new JsonObject
        {
            ["spec"] = new JsonObject
            {
                ["group"] = "ledger.example.org", ["scope"] = "Namespaced",
                ["names"] = new JsonObject { ["plural"] = "channels", ["kind"] = "Channel" },
                ["versions"] = new JsonArray(new JsonObject { ["name"] = "v1", ["served"] = true, ["storage"] = true }),
            },
        }));
        foreach (var c in new[] { "orders", "payments", "audit", "settlement" })
        {
            api.Add(Obj("ledger.example.org/v1", "Channel", "ledger", c, new JsonObject { ["spec"] = new JsonObject { ["orderers"] = 3 } }));
        }
    }

    private void Config(string extra = "", bool encrypted = true)
    {
        var kubeconfig = _api.WriteKubeconfig(_box["kubeconfig"]);
        var encryption = "";
        if (encrypted)
        {
            Assert.Equal(0, _box.Run("keygen", "-o", "key.txt").ExitCode);
            var recipient = File.ReadAllLines(_box["key.txt"]).First(l => l.StartsWith("# public key: ", StringComparison.Ordinal))["# public key: ".Length..];
            encryption = $"encryption: {{ recipients: [{recipient}], identities: [\"file:{_box["key.txt"]}\"] }}\n";
        }

        _box.WriteConfig(Yaml.LocalTarget() + encryption + "sources:\n" + $"  - {{ name: cluster, kind: kubernetes, kubeconfig: {kubeconfig}{extra} }}\n");
    }

    private JsonElement Facts() =>
        JsonDocument.Parse(_box.Run("list", "--json").Stdout).RootElement.GetProperty("snapshots")[0].GetProperty("artifacts")[0].GetProperty("facts");

    [Fact]
    public void The_fixture_speaks_the_protocol_kubectl_expects()
    {
        Populate(_api);
        var kubeconfig = _api.WriteKubeconfig(_box["kubeconfig"]);
        var get = Sandbox.Exec(Kubectl, "--kubeconfig", kubeconfig, "get", "configmaps", "-A", "-o", "name", "--chunk-size=2");
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(["configmap/flags", "configmap/peers", "configmap/settings"], get.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
        Assert.Contains(_api.Requests, r => r.Contains("continue=", StringComparison.Ordinal)); // kubectl paged with the fixture's continue token
        var crs = Sandbox.Exec(Kubectl, "--kubeconfig", kubeconfig, "get", "channels.ledger.example.org", "-n", "ledger", "-o", "name");
        Assert.True(crs.ExitCode == 0, crs.ToString()); // discovery of a custom resource, as kubectl does it
        Assert.Equal(4, crs.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        var missing = Sandbox.Exec(Kubectl, "--kubeconfig", kubeconfig, "get", "configmap", "nope", "-n", "shop");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("configmaps \"nope\" not found", missing.Stderr, StringComparison.Ordinal); // a Status object, read by kubectl
    }

    [Fact]
    public void Every_kind_is_stored_as_yaml_without_the_servers_fields_and_the_stock_recipe_applies_it_with_kubectl()
    {
        Populate(_api);
        Config(", cluster_resources: true");
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var facts = Facts();
        Assert.Equal(3, facts.GetProperty("namespaces").GetInt64());      // default, shop, ledger
        Assert.Equal(1, facts.GetProperty("secrets").GetInt64());           // the service-account token is the cluster's, not stored
        Assert.Equal(4, facts.GetProperty("Channel.ledger.example.org").GetInt64());
        Assert.Equal(2, facts.GetProperty("ReplicaSet.apps").GetInt64() + facts.GetProperty("Pod").GetInt64()); // web-5d9 and the bare pod; owned ones left out
        Assert.False(facts.TryGetProperty("Event", out _));
        Assert.False(facts.TryGetProperty("Lease.coordination.k8s.io", out _));
        Assert.False(facts.TryGetProperty("Node", out _));
        Assert.Equal(1, facts.GetProperty("CustomResourceDefinition.apiextensions.k8s.io").GetInt64()); // cluster-scoped: with cluster_resources
        Assert.Contains(_api.Requests, r => r.Contains("limit=100", StringComparison.Ordinal) && r.Contains("continue=", StringComparison.Ordinal));

        // The stock recipe, run literally into an empty cluster with kubectl: decrypt, unpack, apply.
        using var fresh = new KubeApiServer();
        var explain = _box.Run("restore", "--source", "cluster", "--explain", "--to", "restored");
        Assert.True(explain.ExitCode == 0, explain.ToString());
        var lines = explain.Stdout.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var kubectlDir = Path.GetDirectoryName(Kubectl)!;
        var script = $"export PATH={kubectlDir}:$PATH KUBECONFIG={fresh.WriteKubeconfig(_box["fresh.kubeconfig"])}\n" + string.Join("\n", lines.Select(l => l + " || exit 1"));
        var r = _box.Shell(script);
        Assert.True(r.ExitCode == 0, r.ToString());

        var settings = fresh.Get("", "configmaps", "shop", "settings")!;
        Assert.Equal("line one\nline two: yes\n", settings["data"]!["motd"]!.GetValue<string>()); // strings kept as strings ("on", "3", a multi-line value)
        Assert.Equal("on", settings["data"]!["mode"]!.GetValue<string>());
        var yaml = File.ReadAllText(_box["restored/shop/ConfigMap/settings.yaml"]);
        foreach (var serverField in new[] { "uid:", "resourceVersion:", "creationTimestamp:", "managedFields:", "status:" })
        {
            Assert.DoesNotContain(serverField, yaml, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("10.43.0.17", File.ReadAllText(_box["restored/shop/Service/web.yaml"]), StringComparison.Ordinal); // the cluster gives a new address
        Assert.Equal("c2VjcmV0LXZhbHVl", fresh.Get("", "secrets", "shop", "db-password")!["data"]!["password"]!.GetValue<string>());
        Assert.Equal(4, fresh.All("ledger.example.org", "channels").Count);
    }

    [Fact]
    public void Restore_dry_runs_every_object_creates_in_order_skips_what_exists_and_names_what_the_api_refuses()
    {
        Populate(_api);
        _api.Add(Obj("v1", "ConfigMap", "shop", "blocked", new JsonObject { ["data"] = new JsonObject { ["x"] = "1" } }, new JsonObject { ["fixture/refuse"] = "true" }));
        Config(", cluster_resources: true");
        Assert.Equal(0, _box.Run("run").ExitCode);

        using var other = new KubeApiServer();
        _api.WriteKubeconfig(_box["kubeconfig"], other); // context "other" in the source's kubeconfig
        other.Add(Obj("v1", "Namespace", null, "shop"));
        other.Add(Obj("v1", "ConfigMap", "shop", "settings", new JsonObject { ["data"] = new JsonObject { ["mode"] = "changed-there" } }));
        var restore = _box.Run("restore", "--source", "cluster", "--to", "kube://other");
        Assert.Equal(1, restore.ExitCode);
        Assert.Contains("skipped  ConfigMap shop/settings: it exists (--force replaces it)", restore.Stdout, StringComparison.Ordinal);
        Assert.Contains("created  Channel.ledger.example.org ledger/orders", restore.Stdout, StringComparison.Ordinal);
        Assert.Contains("failed   ConfigMap shop/blocked: refused by the dry run: 422 Invalid", restore.Stdout, StringComparison.Ordinal);
        Assert.Contains("admission webhook", restore.Stderr, StringComparison.Ordinal);
        Assert.Equal("changed-there", other.Get("", "configmaps", "shop", "settings")!["data"]!["mode"]!.GetValue<string>()); // not replaced without --force
        Assert.NotNull(other.Get("", "secrets", "shop", "db-password"));
        Assert.Null(other.Get("", "configmaps", "shop", "blocked"));

        // Velero's order: the definition before its objects, namespaces before what is in them, config before workloads.
        var posts = other.Requests.Where(r => r.StartsWith("POST", StringComparison.Ordinal) && !r.Contains("dryRun", StringComparison.Ordinal)).ToList();
        int At(string fragment) => posts.FindIndex(p => p.Contains(fragment, StringComparison.Ordinal));
        Assert.True(At("/customresourcedefinitions") < At("/namespaces/ledger/channels"), string.Join("\n", posts));
        Assert.True(At("/api/v1/namespaces?") < 0 || At("/api/v1/namespaces") < At("/namespaces/shop/secrets"));
        Assert.True(At("/namespaces/shop/configmaps") < At("/namespaces/shop/deployments"), string.Join("\n", posts));
        Assert.True(other.Requests.Count(r => r.Contains("dryRun=All", StringComparison.Ordinal)) >= posts.Count); // every object dry-run first

        // --force replaces what exists.
        var forced = _box.Run("restore", "--source", "cluster", "--to", "kube://other", "--force");
        Assert.Contains("updated  ConfigMap shop/settings", forced.Stdout, StringComparison.Ordinal);
        Assert.Equal("on", other.Get("", "configmaps", "shop", "settings")!["data"]!["mode"]!.GetValue<string>());
    }

    [Fact]
    public void Secrets_without_encryption_are_a_config_error_saying_why_and_excluding_them_is_the_way_out()
    {
        Config(encrypted: false);
        var check = _box.Run("config", "check");
        Assert.Equal(2, check.ExitCode);
        Assert.Contains("would store the cluster's Secrets", check.Stderr, StringComparison.Ordinal);
        Assert.Contains("exclude_kinds: [Secret]", check.Stderr, StringComparison.Ordinal);

        Populate(_api);
        Config(", exclude_kinds: [Secret], namespaces: [shop], label_selector: \"app=shop\"", encrypted: false);
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var facts = Facts();
        Assert.Equal(0, facts.GetProperty("secrets").GetInt64());
        Assert.Equal(1, facts.GetProperty("ConfigMap").GetInt64()); // flags (app=shop), not settings
        Assert.Equal(1, facts.GetProperty("Deployment.apps").GetInt64());
        Assert.Contains(_api.Requests, r => r.Contains("labelSelector=app%3Dshop", StringComparison.Ordinal));
    }

    [Fact]
    public void A_name_from_the_server_that_is_not_a_name_fails_the_backup_and_nothing_counts()
    {
        Populate(_api);
        _api.Add(Obj("v1", "ConfigMap", "shop", "../../etc/cron.d/x"));
        Config();
        var run = _box.Run("run");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("which is not an object name", run.Stdout + run.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(_box["backups/cluster"]) && Directory.EnumerateFiles(_box["backups/cluster"], "*.yaml", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public void A_drill_restores_one_namespace_into_a_scratch_namespace_counts_it_and_deletes_it()
    {
        Populate(_api);
        Config(", drill: { namespace: ledger }");
        Assert.Equal(0, _box.Run("run").ExitCode);
        var drill = _box.Run("drill", "--source", "cluster");
        Assert.True(drill.ExitCode == 0, drill.ToString());
        var evidence = File.ReadAllText(Directory.GetFiles(_box["state/drills"], "*.md").Single());
        Assert.Contains("backstop-drill-", evidence, StringComparison.Ordinal);
        Assert.Contains(_api.Requests, r => r.StartsWith("POST /apis/ledger.example.org/v1/namespaces/backstop-drill-", StringComparison.Ordinal));
        Assert.DoesNotContain(_api.All("", "namespaces"), n => n["metadata"]!["name"]!.GetValue<string>().StartsWith("backstop-drill-", StringComparison.Ordinal));
        Assert.Contains(_api.Requests, r => r.StartsWith("DELETE /api/v1/namespaces/backstop-drill-", StringComparison.Ordinal));
    }

    [Fact]
    public void A_scratch_namespace_left_by_a_drill_killed_with_sigkill_is_deleted_by_the_next_drill_and_a_forged_record_is_ignored()
    {
        Populate(_api);
        Config(", drill: { namespace: ledger }");
        Assert.Equal(0, _box.Run("run").ExitCode);
        // What a drill killed with -9 leaves: its folder (named after a process that is gone), naming the source, with the
        // scratch namespace it made (holding copies of production Secrets) and lines that are not Backstop's.
        _api.Add(Obj("v1", "Namespace", null, "backstop-drill-0123456789ab"));
        _api.Add(Obj("v1", "Namespace", null, "kube-system-important"));
        var dead = _box["state/staging/.backstop-drill-999999999-deadbeef"];
        Directory.CreateDirectory(dead);
        File.WriteAllText(Path.Combine(dead, "source"), "cluster");
        File.WriteAllText(Path.Combine(dead, "leftovers"),
            "ns:backstop-drill-0123456789ab\nns:kube-system-important\ndir:/etc\nrm -rf /; echo \u001b[31m\n");
        var drill = _box.Run("drill", "--source", "cluster");
        Assert.True(drill.ExitCode == 0, drill.ToString());
        Assert.Contains("DELETE /api/v1/namespaces/backstop-drill-0123456789ab", _api.Requests);
        Assert.DoesNotContain(_api.Requests, r => r.Contains("kube-system-important", StringComparison.Ordinal));
        Assert.Contains("'ns:kube-system-important', which is not a drill's scratch namespace; left alone", drill.All, StringComparison.Ordinal);
        Assert.Contains("which is not a line Backstop writes: ignored", drill.All, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", drill.All, StringComparison.Ordinal);
        Assert.True(Directory.Exists("/etc"));
        Assert.False(Directory.Exists(dead));
    }

    [Fact]
    public void Volume_data_on_this_node_is_backed_up_per_claim_and_what_is_elsewhere_is_named_not_skipped_silently()
    {
        Populate(_api);
        // A k3s local-path volume on this node (node-a), one on node-b, an NFS volume, and a claim not bound yet.
        var here = "/var/lib/rancher/k3s/storage/pvc-11_ledger_data";
        Directory.CreateDirectory(_box[$"hostfs{here}/blocks"]);
        File.WriteAllText(_box[$"hostfs{here}/blocks/000001.ldb"], "ledger block one");
        File.WriteAllText(_box[$"hostfs{here}/CURRENT"], "MANIFEST-000002");
        JsonObject Affinity(string node) => new()
        {
            ["required"] = new JsonObject
            {
                ["nodeSelectorTerms"] = new JsonArray(new JsonObject
                {
                    ["matchExpressions"] = new JsonArray(new JsonObject { ["key"] = "kubernetes.io/hostname", ["operator"] = "In", ["values"] = new JsonArray(node) }),
                }),
            },
        };
        _api.Add(Obj("v1", "PersistentVolume", null, "pvc-11", new JsonObject { ["spec"] = new JsonObject { ["hostPath"] = new JsonObject { ["path"] = here }, ["nodeAffinity"] = Affinity("node-a") } }));
        _api.Add(Obj("v1", "PersistentVolume", null, "pvc-12", new JsonObject { ["spec"] = new JsonObject { ["local"] = new JsonObject { ["path"] = "/var/lib/rancher/k3s/storage/pvc-12_ledger_peer" }, ["nodeAffinity"] = Affinity("node-b") } }));
        _api.Add(Obj("v1", "PersistentVolume", null, "nfs-1", new JsonObject { ["spec"] = new JsonObject { ["nfs"] = new JsonObject { ["server"] = "nas", ["path"] = "/export" } } }));
        foreach (var (claim, bound) in new[] { ("data", "pvc-11"), ("peer", "pvc-12"), ("shared", "nfs-1"), ("pending", (string?)null) })
        {
            _api.Add(Obj("v1", "PersistentVolumeClaim", "ledger", claim, new JsonObject { ["spec"] = bound is null ? [] : new JsonObject { ["volumeName"] = bound } }));
        }

        Config($", exclude_kinds: [Secret], pvcs: all, node: node-a, host_root: {_box["hostfs"]}", encrypted: false);
        var run = _box.Run("run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var output = run.Stdout + run.Stderr;
        Assert.Contains("volume pvc-12 of claim ledger/peer is on node node-b, not on this one (node-a)", output, StringComparison.Ordinal);
        Assert.Contains("volume nfs-1 of claim ledger/shared is not a folder on a node", output, StringComparison.Ordinal);
        Assert.Contains("persistent volume claim ledger/pending is not bound", output, StringComparison.Ordinal);
        var artifacts = JsonDocument.Parse(_box.Run("list", "--json").Stdout).RootElement.GetProperty("snapshots")[0].GetProperty("artifacts");
        var volume = artifacts.EnumerateArray().Single(a => a.GetProperty("name").GetString() == "pvc%2Fledger%2Fdata.tar");
        Assert.Equal(2, volume.GetProperty("facts").GetProperty("files").GetInt64());
        Assert.Equal(31, volume.GetProperty("facts").GetProperty("bytes").GetInt64());

        // Volume data restores into a folder (objects into a cluster): FOLDER/NAMESPACE/CLAIM, then the node's path.
        var restore = _box.Run("restore", "--source", "cluster", "--to", "restored");
        Assert.True(restore.ExitCode == 0, restore.ToString());
        Assert.Equal("ledger block one", File.ReadAllText(Directory.GetFiles(_box["restored/ledger/data"], "000001.ldb", SearchOption.AllDirectories).Single()));
        var wrong = _box.Run("restore", "--source", "cluster", "--artifact", "resources.tar", "--to", "restored2");
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("kube://", wrong.Stderr, StringComparison.Ordinal);

        // The next night a ledger block is added: the volume's level holds that file only, and the chain restores both.
        File.WriteAllText(_box[$"hostfs{here}/blocks/000002.ldb"], "ledger block two");
        var second = _box.Run("run");
        Assert.True(second.ExitCode == 0, second.ToString());
        var level = JsonDocument.Parse(_box.Run("list", "--json").Stdout).RootElement.GetProperty("snapshots")[1];
        Assert.Equal(1, level.GetProperty("level").GetInt32());
        var levelVolume = level.GetProperty("artifacts").EnumerateArray().Single(a => a.GetProperty("name").GetString() == "pvc%2Fledger%2Fdata.tar");
        Assert.Equal(1, levelVolume.GetProperty("level").GetInt32());
        Assert.Equal(1, levelVolume.GetProperty("facts").GetProperty("changed_files").GetInt64());
        Assert.Equal(3, levelVolume.GetProperty("facts").GetProperty("files").GetInt64());
        var chain = _box.Run("restore", "--source", "cluster", "--to", "restored3");
        Assert.True(chain.ExitCode == 0, chain.ToString());
        var blocks = Directory.GetFiles(_box["restored3/ledger/data"], "*.ldb", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Select(File.ReadAllText).ToList();
        Assert.Equal(["ledger block one", "ledger block two"], blocks);
    }

    [Fact]
    public void Doctor_names_the_namespaces_and_volume_claims_no_source_covers()
    {
        Populate(_api);
        _api.Add(Obj("v1", "PersistentVolumeClaim", "ledger", "data", new JsonObject { ["spec"] = new JsonObject() }));
        Config(", exclude_kinds: [Secret], namespaces: [shop]", encrypted: false);
        var doctor = _box.Run("doctor");
        var output = doctor.Stdout + doctor.Stderr;
        Assert.Contains("2 namespaces no source backs up: default, ledger", output, StringComparison.Ordinal);
        Assert.Contains("1 persistent volume claim no source backs up: ledger/data", output, StringComparison.Ordinal);
        Assert.Contains("pvcs", output, StringComparison.Ordinal);
    }
}
