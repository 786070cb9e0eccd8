using Spectre.Console;

namespace Backstop.Cli.Rendering;

/// <summary>Spectre consoles for stdout and stderr; wide and colourless when not a terminal.</summary>
internal static class Terminal
{
    public static IAnsiConsole Out { get; } = Create(Console.Out, Console.IsOutputRedirected);

    public static IAnsiConsole Error { get; } = Create(Console.Error, Console.IsErrorRedirected);

    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        if (redirected)
        {
            console.Profile.Width = 240;
        }

        return console;
    }

    public static string StateMarkup(string state) => state switch
    {
        "ok" or "committed" or "verified" or "valid" => $"[green]{state}[/]",
        "degraded" or "stale" or "short" or "unverified" or "running" or "pruned" => $"[yellow]{state}[/]",
        _ => $"[red]{state}[/]",
    };

    public static string Age(TimeSpan age) =>
        age.TotalMinutes < 1 ? $"{(int)age.TotalSeconds}s"
        : age.TotalHours < 1 ? $"{(int)age.TotalMinutes}m"
        : age.TotalDays < 2 ? $"{(int)age.TotalHours}h{age.Minutes:00}m"
        : $"{(int)age.TotalDays}d{age.Hours}h";
}
