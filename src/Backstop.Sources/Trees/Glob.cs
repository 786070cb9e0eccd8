using System.Text;
using System.Text.RegularExpressions;

namespace Backstop.Sources.Trees;

/// <summary>
/// Exclude patterns. A pattern without '/' matches a name at any depth (<c>*.log</c>, <c>node_modules</c>); one
/// with '/' matches the end of the absolute path (<c>cache/**</c>, <c>/srv/app/tmp</c>). <c>*</c> and <c>?</c> stay
/// within one name, <c>**</c> crosses folders.
/// </summary>
internal sealed class Glob
{
    private readonly Regex _regex;

    public Glob(string pattern)
    {
        Pattern = pattern;
        var p = pattern.TrimEnd('/');
        var anchored = p.StartsWith('/');
        var sb = new StringBuilder(anchored ? "^" : "(^|/)");
        for (var i = 0; i < p.Length; i++)
        {
            var c = p[i];
            switch (c)
            {
                case '*' when i + 1 < p.Length && p[i + 1] == '*':
                    sb.Append(".*");
                    i++;
                    break;
                case '*':
                    sb.Append("[^/]*");
                    break;
                case '?':
                    sb.Append("[^/]");
                    break;
                case '[':
                    var end = p.IndexOf(']', i + 1);
                    if (end > i)
                    {
                        var cls = p[(i + 1)..end].Replace("\\", "\\\\", StringComparison.Ordinal);
                        sb.Append('[').Append(cls.StartsWith('!') ? "^" + cls[1..] : cls).Append(']');
                        i = end;
                    }
                    else
                    {
                        sb.Append("\\[");
                    }

                    break;
                default:
                    sb.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }

        sb.Append('$');
        _regex = new Regex(sb.ToString(), RegexOptions.CultureInvariant);
    }

    public string Pattern { get; }

    public bool Matches(string absolutePath) => _regex.IsMatch(absolutePath);
}
