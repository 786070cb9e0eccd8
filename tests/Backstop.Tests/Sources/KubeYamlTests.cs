using System.Text.Json.Nodes;
using Backstop.Core.Plugins;
using Backstop.Sources.Kubernetes;

namespace Backstop.Tests.Sources;

/// <summary>Objects between JSON and the YAML stored for kubectl: no value changes type; hostile YAML from a target is refused.</summary>
public sealed class KubeYamlTests
{
    [Theory]
    [InlineData("yes")]
    [InlineData("On")]
    [InlineData("0x1F")]
    [InlineData("0755")]
    [InlineData("1e3")]
    [InlineData(".inf")]
    [InlineData("~")]
    [InlineData("")]
    [InlineData(" leading and trailing ")]
    [InlineData("=")]
    [InlineData("2026-11-29")]
    [InlineData("a: b")]
    [InlineData("line one\nline two: yes\n")]
    [InlineData("- item")]
    [InlineData("#comment")]
    [InlineData("null")]
    public void A_string_comes_back_as_the_same_string(string value)
    {
        var o = new JsonObject { ["data"] = new JsonObject { [value.Length == 0 ? "empty" : value] = value } };
        var back = KubeYaml.Read(KubeYaml.Write(o), "test") as JsonObject;
        Assert.Equal(value, back!["data"]![value.Length == 0 ? "empty" : value]!.GetValue<string>());
    }

    [Fact]
    public void Numbers_booleans_and_nulls_keep_their_types()
    {
        var o = JsonNode.Parse("""{"replicas":3,"ratio":0.5,"big":1e21,"on":true,"off":false,"none":null,"list":[1,"1",true,"true"]}""")!.AsObject();
        var back = KubeYaml.Read(KubeYaml.Write(o), "test")!;
        Assert.Equal(o.ToJsonString(), back.ToJsonString());
    }

    [Fact]
    public void Aliases_are_refused_before_anything_is_expanded()
    {
        // A "billion laughs": a few hundred bytes that would expand to 10^9 nodes.
        var yaml = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
                   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
        var e = Assert.Throws<BackupException>(() => KubeYaml.Read(yaml, "shop/ConfigMap/x.yaml"));
        Assert.Contains("alias", e.Message, StringComparison.Ordinal);
    }
}
