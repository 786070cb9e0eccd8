using System.Diagnostics;

namespace Backstop.IntegrationTests.Support;

/// <summary>The result of one run of the backstop program.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public string All => Stdout + Stderr;

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>
/// A temporary folder with a configuration, and the real <c>backstop</c> program run as a child process, as a
/// user would run it. Removed (and any tmpfs unmounted) afterwards.
/// </summary>
public sealed class Sandbox : IDisposable
{
    private readonly List<string> _mounts = [];

    public Sandbox()
    {
        Root = Path.Combine(Path.GetTempPath(), "backstop-it-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public string this[string relative] => Path.Combine(Root, relative);

    public string Config => this["backstop.yaml"];

    public string Write(string relative, string content)
    {
        var p = this[relative];
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        File.WriteAllText(p, content);
        return p;
    }

    public void WriteConfig(string yaml) => Write("backstop.yaml", yaml);

    public static string BackstopDll => Path.Combine(AppContext.BaseDirectory, "backstop.dll");

    public ProcessStartInfo StartInfo(IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Root,
        };
        psi.ArgumentList.Add(BackstopDll);
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(Config);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["TERM"] = "dumb";
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        return psi;
    }

    public CliResult Run(params string[] args) => Run(args, null);

    /// <summary>Runs a verb with --json and returns the document's root.</summary>
    public System.Text.Json.JsonElement Json(params string[] args) => Json(args, null);

    public System.Text.Json.JsonElement Json(IEnumerable<string> args, IDictionary<string, string>? env) =>
        System.Text.Json.JsonDocument.Parse(Run([.. args, "--json"], env).Stdout).RootElement;

    /// <summary>Every snapshot record, as <c>list --all --json</c> shows them (old failures included).</summary>
    public IReadOnlyList<System.Text.Json.JsonElement> Snapshots() => Json("list", "--all").GetProperty("snapshots").EnumerateArray().ToList();

    public CliResult Run(IEnumerable<string> args, IDictionary<string, string>? env, TimeSpan? timeout = null)
    {
        using var p = Process.Start(StartInfo(args, env))!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(3)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"backstop {string.Join(' ', args)} did not finish");
        }

        return new CliResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts backstop without waiting; the caller kills or waits.</summary>
    public RunningCli Start(params string[] args) => Start(args, null);

    public RunningCli Start(IEnumerable<string> args, IDictionary<string, string>? env)
    {
        var p = Process.Start(StartInfo(args, env))!;
        p.StandardInput.Close();
        return new RunningCli(p);
    }

    /// <summary>Mounts a tmpfs of the given size (needs root, as CI runs).</summary>
    public string Tmpfs(string relative, string size)
    {
        var dir = this[relative];
        Directory.CreateDirectory(dir);
        var r = Exec("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", dir);
        Assert.True(r.ExitCode == 0, $"mounting a {size} tmpfs needs root (CI runs as root): {r.All}");
        _mounts.Add(dir);
        return dir;
    }

    /// <summary>
    /// Makes a folder read-only with a read-only bind mount of itself (needs root, as CI runs; permissions would not stop
    /// root): writes and deletions there fail with EROFS until <see cref="Unmount"/>.
    /// </summary>
    public string ReadOnly(string relative)
    {
        var dir = this[relative];
        var r = Exec("mount", "--bind", dir, dir);
        Assert.True(r.ExitCode == 0, $"a bind mount needs root (CI runs as root): {r.All}");
        _mounts.Add(dir);
        r = Exec("mount", "-o", "remount,bind,ro", dir);
        Assert.True(r.ExitCode == 0, r.All);
        return dir;
    }

    public void Unmount(string relative)
    {
        var dir = this[relative];
        var r = Exec("umount", dir);
        Assert.True(r.ExitCode == 0, r.All);
        _mounts.Remove(dir);
    }

    public static CliResult Exec(string program, params string[] args) => ExecIn(null, program, args);

    public static CliResult ExecIn(string? workingDirectory, string program, params string[] args) => ExecEnv(workingDirectory, null, program, args);

    /// <summary>Runs a program with extra environment variables (secrets go there, never in argv).</summary>
    public static CliResult ExecEnv(string? workingDirectory, IDictionary<string, string>? env, string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        if (workingDirectory is not null)
        {
            psi.WorkingDirectory = workingDirectory;
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"'{program}' is needed by this test and could not be started ({e.Message}); run ./test.sh, which installs it", e);
        }

        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            return new CliResult(p.ExitCode, stdout.Result, stderr.Result);
        }
    }

    /// <summary>Runs a shell pipeline, for stock-tool restores exactly as a person would type them.</summary>
    public CliResult Shell(string script) => ExecIn(Root, "/bin/sh", "-c", script);

    /// <summary>Files under a folder (relative paths), ignoring nothing: partials show up too.</summary>
    public static IReadOnlyList<string> FilesUnder(string dir) =>
        Directory.Exists(dir)
            ? Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(dir, f)).Order(StringComparer.Ordinal).ToList()
            : [];

    public void Dispose()
    {
        foreach (var m in _mounts)
        {
            Exec("umount", "-l", m);
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed partial class RunningCli(Process process) : IDisposable
{
    private readonly Task<string> _stdout = process.StandardOutput.ReadToEndAsync();
    private readonly Task<string> _stderr = process.StandardError.ReadToEndAsync();

    public int Pid => process.Id;

    public bool HasExited => process.HasExited;

    public CliResult Wait(TimeSpan? timeout = null)
    {
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("backstop did not finish");
        }

        return new CliResult(process.ExitCode, _stdout.Result, _stderr.Result);
    }

    /// <summary>Waits for the end, reading the kernel's peak resident size (VmHWM) as it goes: the bytes it last saw.</summary>
    public (CliResult Result, long PeakRssBytes) WaitMeasuringPeak(TimeSpan? timeout = null)
    {
        long peak = 0;
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(5));
        while (!process.HasExited && DateTime.UtcNow < deadline)
        {
            try
            {
                var line = File.ReadLines($"/proc/{Pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
                if (line is not null)
                {
                    peak = Math.Max(peak, long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024);
                }
            }
            catch (IOException)
            {
                // gone between the check and the read
            }

            Thread.Sleep(20);
        }

        return (Wait(TimeSpan.FromSeconds(30)), peak);
    }

    /// <summary>SIGKILL to backstop and its children: what the OOM killer or a power cut does.</summary>
    public void KillHard()
    {
        // Frozen at once by a syscall (SIGSTOP), so the moment a test chose is the moment it dies: finding the children
        // with pgrep takes a process start, long enough under load for an upload the test caught midway to finish.
        // Then backstop first, so it cannot react to its children dying; then the children it left.
        _ = SendSignal(Pid, 19);
        var pid = Pid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var children = Sandbox.Exec("pgrep", "-P", pid).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Sandbox.Exec("kill", "-KILL", pid);
        process.WaitForExit();
        foreach (var child in children)
        {
            Sandbox.Exec("kill", "-KILL", child.Trim());
        }
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    public void Signal(string signal) => Sandbox.Exec("kill", "-" + signal, Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        process.Dispose();
    }

    public static void WaitUntil(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > (timeout ?? TimeSpan.FromSeconds(60)))
            {
                throw new TimeoutException($"waited too long for: {what}");
            }

            Thread.Sleep(50);
        }
    }
}
