using System.Text.RegularExpressions;

namespace Backstop.Core.Text;

/// <summary>
/// Text read from a host (a crontab line, a unit's ExecStart=) before it is printed or sent: the values of variables
/// whose names say they are secrets (<c>*PASSWORD*</c>, <c>*PWD*</c>, <c>*TOKEN*</c>, <c>*KEY*</c>, <c>*SECRET*</c>), a URL's
/// password, the path and query of a URL (a Healthchecks ping URL's path is its secret), and <c>--password=</c> /
/// <c>--token</c> options are masked. What is left still says which entry it is.
/// </summary>
public static partial class SecretMask
{
    [GeneratedRegex(@"\b([A-Za-z_][A-Za-z0-9_]*(?:PASSWORD|PASSWD|PWD|TOKEN|KEY|SECRET)[A-Za-z0-9_]*)=(""[^""]*""|'[^']*'|\S+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretVariable();

    [GeneratedRegex(@"\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^@\s/]+)@", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UrlPassword();

    [GeneratedRegex(@"\b(https?://[^/\s""']+)/[^\s""']+", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UrlPath();

    [GeneratedRegex(@"(--(?:password|passwd|token|secret|api-key)(?:=|\s+))(""[^""]*""|'[^']*'|\S+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretOption();

    public static string Mask(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = SecretVariable().Replace(text, m => $"{m.Groups[1].Value}=***");
        text = UrlPassword().Replace(text, m => $"{m.Groups[1].Value}{m.Groups[2].Value}:***@");
        text = UrlPath().Replace(text, m => $"{m.Groups[1].Value}/***");
        return SecretOption().Replace(text, m => $"{m.Groups[1].Value}***");
    }
}
