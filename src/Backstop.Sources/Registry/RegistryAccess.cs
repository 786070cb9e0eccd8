using Backstop.Core.Config;

namespace Backstop.Sources.Registry;

/// <summary>
/// The source's registry as each part of the registry kind reaches it (capture, restore, drill, health): its options,
/// and a client for it or for another registry with the right credentials.
/// </summary>
internal sealed class RegistryAccess(string name, RegistryOptions options)
{
    /// <summary>The source (named in every message).</summary>
    public string Source => name;

    public RegistryOptions Options => options;

    /// <summary>A client of the source's own registry, with its credentials.</summary>
    public RegistryClient Client() => ClientFor(options.Url);

    /// <summary>
    /// A client of another registry (a restore's or a drill's): with the credentials given for it, else with this
    /// source's only when it is this source's own registry (scheme, host and port) — a secret goes only to the server it
    /// belongs to — else with none.
    /// </summary>
    public RegistryClient ClientFor(Uri registry, (string User, SecretRef Password)? given = null) =>
        given is { } g ? new(registry, g.User, g.Password, options.Timeout)
        : Uri.Compare(registry, options.Url, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0
            ? new(registry, options.User, options.Password, options.Timeout)
            : new(registry, null, null, options.Timeout);
}
