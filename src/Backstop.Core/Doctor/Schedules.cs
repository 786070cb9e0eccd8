using System.Globalization;
using System.Text;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Core.Text;

namespace Backstop.Core.Doctor;

/// <summary>
/// Crontabs and systemd timers, read the way cron and systemd read them, to find what would fail at 3 a.m.: a script
/// that was moved or deleted (a deprecated script still in the crontab), and a program that cron's own PATH cannot
/// find while an interactive shell can (kubectl in /usr/local/bin, with cron's PATH /usr/bin:/bin).
/// </summary>
public static class Schedules
{
    /// <summary>cron's PATH when the crontab sets none (Debian's and Vixie cron's default).</summary>
    public const string CronDefaultPath = "/usr/bin:/bin";

    /// <summary>The PATH systemd resolves a bare ExecStart= program in.</summary>
    public const string SystemdPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    private static readonly HashSet<string> Builtins = new(StringComparer.Ordinal)
    {
        "echo", "true", "false", "test", "[", "[[", "]]", "]", "export", "set", "unset", "exit", "return", "if", "then", "else", "elif", "fi", "for", "do",
        "done", "while", "until", "case", "esac", "in", "{", "}", "(", ")", "!", "read", "printf", "sleep", "wait", "umask", "ulimit", "trap", "shift", ":",
        "source", ".", "eval", "local", "let", "time",
    };

    private static readonly HashSet<string> Shells = new(StringComparer.Ordinal) { "sh", "bash", "dash", "zsh", "ksh", "python", "python3", "perl", "ruby", "php", "node" };

    /// <summary>Programs that run the command after their own options (the command is what is checked): how many plain
    /// arguments come before it, and which of their options take a value.</summary>
    private static readonly Dictionary<string, (int Arguments, string[] Valued)> Wrappers = new(StringComparer.Ordinal)
    {
        ["exec"] = (0, []), ["nice"] = (0, ["-n"]), ["ionice"] = (0, ["-c", "-n", "-p"]), ["nohup"] = (0, []), ["chronic"] = (0, []), ["env"] = (0, ["-u", "-C"]),
        ["sudo"] = (0, ["-u", "-g"]), ["timeout"] = (1, ["-s", "-k", "--signal", "--kill-after"]), ["flock"] = (1, ["-w", "-E", "--timeout", "--conflict-exit-code"]),
        ["run-one"] = (0, []), ["setsid"] = (0, []), ["stdbuf"] = (0, ["-i", "-o", "-e"]), ["cronic"] = (0, []),
    };

    /// <summary>
    /// Checks every entry of one crontab: one finding per entry with a problem, and one ok line for the file when
    /// all its entries are found. <paramref name="systemFormat"/> null decides per line (a sixth field that names a user).
    /// </summary>
    public static IReadOnlyList<Finding> CheckCrontab(string file, string text, bool? systemFormat, string currentPath, Func<string, string?> homeOf)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(homeOf);
        var findings = new List<Finding>();
        var cronPath = CronDefaultPath;
        string? home = null;
        var entries = 0;
        var lines = text.Split('\n');
        var owner = file.StartsWith("/var/spool/cron/", StringComparison.Ordinal) ? Path.GetFileName(file) : null;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var where = $"{file}:{(i + 1).ToString(CultureInfo.InvariantCulture)}";
            if (line.Contains('\0', StringComparison.Ordinal))
            {
                findings.Add(new Finding("schedule", where, FindingStatus.Fail, "the line holds a NUL byte: the crontab is damaged (cron reads it otherwise than it shows)",
                    "rewrite the line with crontab -e, or the file with an editor"));
                continue;
            }

            if (Assignment(line) is var (name, value))
            {
                if (name == "PATH")
                {
                    cronPath = value;
                }
                else if (name == "HOME")
                {
                    home = value;
                }

                continue;
            }

            var fields = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var timeFields = fields[0].StartsWith('@') ? 1 : 5;
            if (fields.Length <= timeFields)
            {
                findings.Add(new Finding("schedule", where, FindingStatus.Warn, $"'{SecretMask.Mask(line)}' is not a crontab entry cron can read", "fix or remove the line"));
                continue;
            }

            var rest = RestAfterFields(line, timeFields);
            string? user = owner;
            var system = systemFormat ?? (owner is null && PosixUsers.Lookup(fields[timeFields]) is not null && rest.Contains(' ', StringComparison.Ordinal));
            if (system)
            {
                user = fields[timeFields];
                rest = RestAfterFields(rest, 1);
            }

            var command = CronCommand(rest);
            entries++;
            var cwd = home ?? (user is null ? null : homeOf(user));
            var problems = CheckCommand(command, cronPath, currentPath, cwd, "cron's PATH", fix: path =>
                $"write the absolute path in the crontab, or add PATH={path}:{cronPath} above the entry", home: cwd);
            foreach (var (problem, fix) in problems)
            {
                // Shown and sent with its secrets masked (PGPASSWORD=…, a ping URL's path): doctor's output goes to notifiers too.
                findings.Add(new Finding("schedule", where, FindingStatus.Fail, SecretMask.Mask($"{problem} (entry: {command})"), SecretMask.Mask(fix)));
            }
        }

        if (findings.Count == 0)
        {
            findings.Add(new Finding("schedule", file, FindingStatus.Ok, $"{entries} entr{(entries == 1 ? "y" : "ies")}, every program and script found with cron's PATH ({cronPath})"));
        }

        return findings;
    }

    /// <summary>Every timer in a folder of unit files: its service must exist and each ExecStart= program and script must be found.</summary>
    public static IReadOnlyList<Finding> CheckTimers(string folder, string currentPath)
    {
        ArgumentNullException.ThrowIfNull(folder);
        var findings = new List<Finding>();
        if (!Directory.Exists(folder))
        {
            return findings;
        }

        foreach (var timer in Directory.GetFiles(folder, "*.timer").Order(StringComparer.Ordinal))
        {
            var unit = IniValues(File.ReadAllText(timer), "Unit").LastOrDefault() ?? Path.GetFileNameWithoutExtension(timer) + ".service";
            var service = new[] { folder, "/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system" }.Select(d => Path.Combine(d, unit)).FirstOrDefault(File.Exists);
            if (service is null)
            {
                findings.Add(new Finding("schedule", timer, FindingStatus.Fail, $"the timer starts {unit}, which does not exist", $"remove {Path.GetFileName(timer)}, or write {unit}"));
                continue;
            }

            var text = File.ReadAllText(service);
            var cwd = IniValues(text, "WorkingDirectory").LastOrDefault()?.TrimStart('-');
            var problems = new List<(string, string)>();
            foreach (var exec in IniValues(text, "ExecStartPre").Concat(IniValues(text, "ExecStart")))
            {
                var command = exec.TrimStart('-', '@', ':', '+', '!');
                problems.AddRange(CheckCommand(command, SystemdPath, currentPath, cwd, "systemd's PATH",
                    fix: _ => $"write the absolute path in ExecStart= of {service}"));
            }

            findings.AddRange(problems.Select(p => new Finding("schedule", $"{timer} → {service}", FindingStatus.Fail, SecretMask.Mask(p.Item1), SecretMask.Mask(p.Item2))));
            if (problems.Count == 0)
            {
                findings.Add(new Finding("schedule", timer, FindingStatus.Ok, $"starts {unit}; every program and script found"));
            }
        }

        return findings;
    }

    /// <summary>The problems of one shell command line: each simple command's program, a shell's script, a folder cd'ed into.</summary>
    internal static List<(string Problem, string Fix)> CheckCommand(string command, string searchPath, string currentPath, string? cwd, string pathName,
        Func<string, string> fix, string? home = null)
    {
        var problems = new List<(string, string)>();
        foreach (var words in SimpleCommands(command))
        {
            var w = 0;
            while (w < words.Count && Assignment(words[w]) is not null)
            {
                w++;
            }

            // Wrappers run what follows their options.
            while (w < words.Count && Wrappers.TryGetValue(Path.GetFileName(words[w]), out var wrapper))
            {
                w++;
                while (w < words.Count && (words[w].StartsWith('-') || Assignment(words[w]) is not null))
                {
                    w += wrapper.Valued.Contains(words[w]) ? 2 : 1;
                }

                w += wrapper.Arguments;
            }

            if (w >= words.Count)
            {
                continue;
            }

            var program = words[w];
            if (program == "cd")
            {
                var dir = w + 1 < words.Count ? Expand(words[w + 1], cwd, home) : null;
                if (dir is not null && !dir.Contains('$', StringComparison.Ordinal))
                {
                    if (!Directory.Exists(dir))
                    {
                        problems.Add(($"folder {dir} does not exist (moved or deleted?)", "fix the cd, or remove the entry"));
                        return problems; // what follows runs nowhere (or, after ';', somewhere else): one problem is the news
                    }

                    cwd = dir;
                }

                continue;
            }

            if (Builtins.Contains(program) || program.Contains('$', StringComparison.Ordinal) || program.Contains('`', StringComparison.Ordinal))
            {
                continue; // the shell's own, or only known when it runs
            }

            string? resolved;
            if (program.Contains('/', StringComparison.Ordinal))
            {
                resolved = Expand(program, cwd, home);
                if (resolved is null)
                {
                    continue;
                }

                if (!File.Exists(resolved))
                {
                    problems.Add(($"{resolved} does not exist (moved or deleted?)", "fix the path, or remove the entry if the job is retired"));
                    continue;
                }

                if ((File.GetUnixFileMode(resolved) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
                {
                    problems.Add(($"{resolved} is not executable", $"chmod +x {resolved}, or run it through its interpreter"));
                    continue;
                }
            }
            else
            {
                resolved = Find(program, searchPath);
                if (resolved is null)
                {
                    var elsewhere = Find(program, currentPath);
                    problems.Add(elsewhere is not null
                        ? ($"'{program}' is not in {pathName} ({searchPath}); here it is {elsewhere}", fix(Path.GetDirectoryName(elsewhere)!))
                        : ($"'{program}' is found neither in {pathName} ({searchPath}) nor in this PATH", "install it, or fix the entry"));
                    continue;
                }
            }

            // An interpreter's script: the first argument that is not an option.
            if (Shells.Contains(Path.GetFileName(resolved)))
            {
                var options = words.Skip(w + 1).TakeWhile(a => a.StartsWith('-')).ToList();
                var script = words.Skip(w + 1).FirstOrDefault(a => !a.StartsWith('-'));
                // -c and -e run a string, -m a module: no script file then (also combined, as in bash -lc).
                var inline = options.Any(o => o is "-m" or "-e" or "-E" || (!o.StartsWith("--", StringComparison.Ordinal) && o.Contains('c', StringComparison.Ordinal)));
                if (script is not null && !inline && Expand(script, cwd, home) is { } path && !path.Contains('$', StringComparison.Ordinal)
                    && !File.Exists(path))
                {
                    problems.Add(($"the script {path} does not exist (moved or deleted?)", "fix the path, or remove the entry if the job is retired"));
                }
            }
        }

        return problems;
    }

    /// <summary>A path made absolute: ~ is the crontab owner's home folder, a relative one is relative to the folder the command runs in.</summary>
    private static string? Expand(string path, string? cwd, string? home)
    {
        if (path.StartsWith("~/", StringComparison.Ordinal))
        {
            return home is { Length: > 0 } h ? Path.Combine(h, path[2..]) : null;
        }

        return Path.IsPathRooted(path) ? path : cwd is null ? null : Path.GetFullPath(Path.Combine(cwd, path));
    }

    private static string? Find(string program, string path) =>
        path.Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => Path.Combine(d, program))
            .FirstOrDefault(p => File.Exists(p) && (File.GetUnixFileMode(p) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0);

    /// <summary><c>NAME=value</c> (an environment line in a crontab, or an assignment before a command).</summary>
    private static (string Name, string Value)? Assignment(string text)
    {
        var eq = text.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0 || !text[..eq].Trim().All(c => char.IsAsciiLetterOrDigit(c) || c == '_') || char.IsAsciiDigit(text[0]))
        {
            return null;
        }

        return (text[..eq].Trim(), text[(eq + 1)..].Trim().Trim('"', '\''));
    }

    private static string RestAfterFields(string line, int count)
    {
        var at = 0;
        for (var f = 0; f < count; f++)
        {
            while (at < line.Length && char.IsWhiteSpace(line[at]))
            {
                at++;
            }

            while (at < line.Length && !char.IsWhiteSpace(line[at]))
            {
                at++;
            }
        }

        return line[at..].Trim();
    }

    /// <summary>The command part of an entry: cron turns an unescaped % into a newline and feeds the rest as input.</summary>
    private static string CronCommand(string rest)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < rest.Length; i++)
        {
            if (rest[i] == '\\' && i + 1 < rest.Length && rest[i + 1] == '%')
            {
                sb.Append('%');
                i++;
            }
            else if (rest[i] == '%')
            {
                break;
            }
            else
            {
                sb.Append(rest[i]);
            }
        }

        return sb.ToString().Trim();
    }

    /// <summary>The words of each simple command (split at ;, &amp;&amp;, ||, | and &amp;, outside quotes), redirections dropped.</summary>
    internal static IEnumerable<List<string>> SimpleCommands(string command)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        char quote = '\0';
        for (var i = 0; i <= command.Length; i++)
        {
            var c = i < command.Length ? command[i] : ';';
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
                else
                {
                    word.Append(c);
                }

                continue;
            }

            if (c is '\'' or '"')
            {
                quote = c;
                inWord = true;
                continue;
            }

            if ((c == '$' && i + 1 < command.Length && command[i + 1] == '(') || c == '`')
            {
                // $(…) and `…`: a word of their own making, kept whole (what runs inside is only known when it runs).
                var close = c == '`' ? command.IndexOf('`', i + 1) : Matching(command, i + 1);
                var end = close < 0 ? command.Length - 1 : close;
                word.Append(command, i, end - i + 1);
                inWord = true;
                i = end;
                continue;
            }

            if (c == '&' && ((i > 0 && command[i - 1] is '>' or '<') || (i + 1 < command.Length && command[i + 1] == '>')))
            {
                word.Append(c); // 2>&1, &>file: a redirection, not a background job
                inWord = true;
                continue;
            }

            if (c == '\\' && i + 1 < command.Length)
            {
                word.Append(command[++i]);
                inWord = true;
                continue;
            }

            if (char.IsWhiteSpace(c) || c is ';' or '&' or '|' or '(' or ')')
            {
                if (inWord)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                }

                if (c is ';' or '&' or '|' or '(' or ')')
                {
                    if (words.Count > 0)
                    {
                        yield return DropRedirections(words);
                    }

                    words = [];
                }

                continue;
            }

            word.Append(c);
            inWord = true;
        }
    }

    /// <summary>The index of the ')' that closes the '(' at <paramref name="open"/>, or -1.</summary>
    private static int Matching(string text, int open)
    {
        var depth = 0;
        for (var i = open; i < text.Length; i++)
        {
            depth += text[i] switch { '(' => 1, ')' => -1, _ => 0 };
            if (depth == 0)
            {
                return i;
            }
        }

        return -1;
    }

    private static List<string> DropRedirections(List<string> words)
    {
        var kept = new List<string>();
        for (var i = 0; i < words.Count; i++)
        {
            var w = words[i];
            var bare = w.TrimStart('0', '1', '2');
            if (bare is ">" or ">>" or "<" or "<<")
            {
                i++; // and its file
                continue;
            }

            if (bare is "&>" or "&>>")
            {
                i++;
                continue;
            }

            if (bare.StartsWith('>') || bare.StartsWith('<') || bare.StartsWith("&>", StringComparison.Ordinal))
            {
                continue; // >file, 2>&1
            }

            kept.Add(w);
        }

        return kept;
    }

    /// <summary>The values of <c>Key=value</c> lines of a unit file (every section; later ones win where one is wanted).</summary>
    private static IEnumerable<string> IniValues(string text, string key) =>
        text.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(key + "=", StringComparison.Ordinal)).Select(l => l[(key.Length + 1)..].Trim()).Where(v => v.Length > 0);
}
