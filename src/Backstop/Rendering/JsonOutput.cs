using System.Text.Json;
using Backstop.Core.Text;

namespace Backstop.Cli.Rendering;

/// <summary>
/// The one JSON document a verb prints with --json. With --json, the program's stdout is kept here alone and
/// Console.Out is pointed at stderr (<see cref="Claim"/>): whatever else anything prints (a kind's progress, a
/// note) goes to stderr, and stdout is one document, also when the verb fails (<c>{"error": …}</c>).
/// </summary>
internal static class JsonOutput
{
    private static TextWriter? _stdout;

    /// <summary>Whether the document was written.</summary>
    public static bool Written { get; private set; }

    /// <summary>Keeps stdout for the document alone; everything else printed goes to stderr.</summary>
    public static void Claim()
    {
        _stdout ??= Console.Out;
        Console.SetOut(Console.Error);
    }

    public static bool Claimed => _stdout is not null;

    public static void Write<TDocument>(TDocument document) where TDocument : class
    {
        (_stdout ?? Console.Out).WriteLine(JsonSerializer.Serialize(document, Json.Options));
        Written = true;
    }

    /// <summary>With --json, a verb that failed before it wrote its document writes this one: the error and the exit code.</summary>
    public static void Failure(string error, int exitCode)
    {
        if (Claimed && !Written)
        {
            Write(new ErrorDocument(error, exitCode));
        }
    }
}
