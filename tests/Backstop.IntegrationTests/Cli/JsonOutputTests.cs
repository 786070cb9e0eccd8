using System.Text.Json;
using Backstop.IntegrationTests.Support;

namespace Backstop.IntegrationTests.Cli;

/// <summary>
/// Every verb's <c>--json</c> stdout is one JSON document and nothing else (machines read the whole estate's
/// <c>drill --json</c>), also when a kind prints progress (a Kubernetes restore's "created …" lines go to stderr).
/// </summary>
public sealed class JsonOutputTests : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly KubeApiServer _api = new();

    public void Dispose()
    {
        _api.Dispose();
        _box.Dispose();
    }

    private static void OneDocument(CliResult r, string what)
    {
        try
        {
            using var doc = JsonDocument.Parse(r.Stdout); // throws on anything before or after the document
            Assert.True(doc.RootElement.ValueKind is JsonValueKind.Object or JsonValueKind.Array, what);
        }
        catch (JsonException e)
        {
            Assert.Fail($"{what}: stdout is not one JSON document ({e.Message}):\n{r}");
        }
    }

    [Fact]
    public void Every_verb_prints_one_json_document_on_stdout_and_nothing_else()
    {
        _api.Add(new System.Text.Json.Nodes.JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new System.Text.Json.Nodes.JsonObject { ["name"] = "shop" },
        });
        _api.Add(new System.Text.Json.Nodes.JsonObject
        {
            ["apiVersion"] = "v1", ["kind"] = "ConfigMap",
            ["metadata"] = new System.Text.Json.Nodes.JsonObject { ["name"] = "settings", ["namespace"] = "shop" },
            ["data"] = new System.Text.Json.Nodes.JsonObject { ["mode"] = "on" },
        });
        var kubeconfig = _api.WriteKubeconfig(_box["kubeconfig"]);
        Assert.Equal(0, _box.Shell("mkdir -p data && printf a > data/a.txt").ExitCode);
        _box.WriteConfig(Yaml.LocalTarget() + "retention: { last: 3 }\nsources:\n  - { name: files, kind: files, paths: [./data] }\n" +
                         $"  - {{ name: cluster, kind: kubernetes, kubeconfig: {kubeconfig}, namespaces: [shop], include_kinds: [ConfigMap], drill: {{ namespace: shop }} }}\n");
        var run = _box.Run("run", "--json");
        OneDocument(run, "run");
        Assert.True(run.ExitCode == 0, run.ToString());
        var id = JsonDocument.Parse(_box.Run("list", "--json").Stdout).RootElement.GetProperty("snapshots")[0].GetProperty("snapshot").GetString()!;

        string[][] verbs =
        [
            ["status", "--json"], ["list", "--json"], ["show", id, "--json"], ["ls", id, "--json"], ["verify", "--json"], ["verify", "--deep", "--json"],
            ["drill", "--json"], ["restore", "--source", "files", "--to", _box["out"], "--json"], ["restore", "--source", "files", "--explain", "--json"],
            ["restore", "--source", "cluster", "--to", "kube://fixture/restored", "--json"],
            ["prune", "--dry-run", "--json"], ["doctor", "--json"], ["config", "check", "--json"], ["catalog", "rebuild", "--force", "--json"],
            ["notify", "test", "--json"],
        ];
        foreach (var args in verbs)
        {
            OneDocument(_box.Run(args), string.Join(' ', args));
        }

        // A usage error with --json is one document too, not a stack trace.
        OneDocument(_box.Run("show", "no-such-snapshot", "--json"), "show (an error)");
    }
}
