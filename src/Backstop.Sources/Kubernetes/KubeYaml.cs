using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Backstop.Core.Plugins;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Backstop.Sources.Kubernetes;

/// <summary>
/// Kubernetes objects between JSON (what the API speaks) and YAML (what is stored, for <c>kubectl apply -f</c>). Block
/// style; a string is written plain only when every YAML reader takes it back as that string — kubectl reads YAML 1.1,
/// where <c>yes</c>, <c>on</c> or <c>0755</c> are not strings — and double-quoted otherwise, so nothing changes type.
/// </summary>
internal static partial class KubeYaml
{
    [GeneratedRegex("^[A-Za-z_/][A-Za-z0-9_./@-]*$")]
    private static partial Regex PlainSafe();

    [GeneratedRegex("^(y|yes|n|no|true|false|on|off|null)$", RegexOptions.IgnoreCase)]
    private static partial Regex Reserved();

    [GeneratedRegex("^-?(0|[1-9][0-9]*)$")]
    private static partial Regex Integer();

    [GeneratedRegex("^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?$")]
    private static partial Regex Number();

    public static string Write(JsonNode node)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        var emitter = new Emitter(text, bestIndent: 2, bestWidth: int.MaxValue);
        emitter.Emit(new StreamStart());
        emitter.Emit(new DocumentStart());
        Emit(emitter, node);
        emitter.Emit(new DocumentEnd(isImplicit: true));
        emitter.Emit(new StreamEnd());
        return text.ToString();
    }

    private static void Emit(IEmitter emitter, JsonNode? node)
    {
        switch (node)
        {
            case null:
                emitter.Emit(new Scalar(null, null, "null", ScalarStyle.Plain, true, false));
                break;
            case JsonObject o:
                emitter.Emit(new MappingStart(null, null, true, MappingStyle.Block));
                foreach (var (key, value) in o)
                {
                    EmitString(emitter, key);
                    Emit(emitter, value);
                }

                emitter.Emit(new MappingEnd());
                break;
            case JsonArray a:
                emitter.Emit(new SequenceStart(null, null, true, SequenceStyle.Block));
                foreach (var item in a)
                {
                    Emit(emitter, item);
                }

                emitter.Emit(new SequenceEnd());
                break;
            default:
                switch (node.GetValueKind())
                {
                    case JsonValueKind.String:
                        EmitString(emitter, node.GetValue<string>());
                        break;
                    case JsonValueKind.Number:
                        emitter.Emit(new Scalar(null, null, node.ToJsonString(), ScalarStyle.Plain, true, false));
                        break;
                    case JsonValueKind.True or JsonValueKind.False:
                        emitter.Emit(new Scalar(null, null, node.GetValueKind() == JsonValueKind.True ? "true" : "false", ScalarStyle.Plain, true, false));
                        break;
                    default:
                        emitter.Emit(new Scalar(null, null, "null", ScalarStyle.Plain, true, false));
                        break;
                }

                break;
        }
    }

    private static void EmitString(IEmitter emitter, string s)
    {
        var plain = PlainSafe().IsMatch(s) && !Reserved().IsMatch(s);
        emitter.Emit(new Scalar(null, null, s, plain ? ScalarStyle.Plain : ScalarStyle.DoubleQuoted, plain, !plain));
    }

    /// <summary>One YAML document back into JSON: quoted scalars are strings, plain ones typed as YAML 1.2's core schema says.</summary>
    public static JsonNode? Read(string yaml, string what)
    {
        var stream = new YamlStream();
        try
        {
            // Aliases are refused before anything is built: each would be expanded again (a few KB can expand to GBs).
            var parser = new Parser(new StringReader(yaml));
            while (parser.MoveNext())
            {
                if (parser.Current is AnchorAlias)
                {
                    throw new BackupException($"{what} uses a YAML alias; Backstop writes none and reads none");
                }
            }

            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new BackupException($"{what} is not valid YAML ({e.Message})");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner and loader give up on some damage without a YamlException (a '[' where a key goes).
            throw new BackupException($"{what} is not valid YAML (the parser could not continue: {e.Message})");
        }

        return stream.Documents.Count == 1 ? ToJson(stream.Documents[0].RootNode, 0, what) : throw new BackupException($"{what} holds {stream.Documents.Count} YAML documents, not one");
    }

    private static JsonNode? ToJson(YamlNode node, int depth, string what)
    {
        if (depth > 100)
        {
            throw new BackupException($"{what} nests deeper than 100 levels");
        }

        switch (node)
        {
            case YamlMappingNode m:
                var o = new JsonObject();
                foreach (var (k, v) in m.Children)
                {
                    var key = (k as YamlScalarNode)?.Value ?? throw new BackupException($"{what} has a key that is not a string");
                    if (o.ContainsKey(key))
                    {
                        throw new BackupException($"{what} has the key '{KubeClient.Printable(key)}' twice");
                    }

                    o[key] = ToJson(v, depth + 1, what);
                }

                return o;
            case YamlSequenceNode s:
                return new JsonArray(s.Children.Select(c => ToJson(c, depth + 1, what)).ToArray());
            case YamlScalarNode { Style: ScalarStyle.Plain } p:
                var v2 = p.Value ?? "";
                return v2 switch
                {
                    "" or "~" or "null" or "Null" or "NULL" => null,
                    "true" or "True" or "TRUE" => JsonValue.Create(true),
                    "false" or "False" or "FALSE" => JsonValue.Create(false),
                    _ when Integer().IsMatch(v2) && long.TryParse(v2, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
                    _ when Number().IsMatch(v2) => JsonNode.Parse(v2),
                    _ => JsonValue.Create(v2),
                };
            case YamlScalarNode q:
                return JsonValue.Create(q.Value ?? "");
            default:
                throw new BackupException($"{what} holds an alias or tag Backstop does not read");
        }
    }
}
