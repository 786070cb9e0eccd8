using System.Text.Json;
using Backstop.Core.Util;

namespace Backstop.Cli.Rendering;

/// <summary>The one JSON document a verb prints with --json.</summary>
internal static class JsonOutput
{
    public static void Write(object document) => Console.Out.WriteLine(JsonSerializer.Serialize(document, Json.Options));
}
