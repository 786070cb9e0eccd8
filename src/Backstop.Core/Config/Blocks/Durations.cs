namespace Backstop.Core.Config;

internal static class Durations
{
    /// <summary>A duration that must be longer than zero (an RTO, a drill interval), or null when the key is absent.</summary>
    public static TimeSpan? Positive(ConfigMap? map, string key, TimeSpan? fallback = null)
    {
        var value = fallback is { } f ? map?.DurationOr(key, f) : map?.Duration(key);
        return value is { } v && v <= TimeSpan.Zero ? throw map!.Error(key, "must be longer than zero") : value;
    }
}
