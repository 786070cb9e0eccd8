namespace Backstop.Core.Text;

/// <summary>This build of backstop, as evidence and reports name it.</summary>
public static class BuildInfo
{
    /// <summary>The informational version (version and commit).</summary>
    public static string Version { get; } =
        typeof(BuildInfo).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";
}
