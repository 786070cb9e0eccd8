using System.Diagnostics;
using System.Text;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Processes;

/// <summary>
/// What every source that runs a program needs: the program resolved to an absolute path at preflight (PATH is
/// never trusted silently), arguments without a shell, secrets only in the child's environment, stdout streamed,
/// the stderr tail kept for the error, and the exit code never lost.
/// </summary>
public static class ChildProcess
{
    private const int StderrTail = 4096;

    /// <summary>Resolves a program to an absolute, executable path, or fails naming where it looked.</summary>
    public static string ResolveTool(string program, string? searchPath = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(program);
        if (program.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.GetFullPath(program);
            return IsExecutable(full)
                ? full
                : throw new BackupException($"program {full} does not exist or is not executable");
        }

        var path = searchPath ?? Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, program);
            if (IsExecutable(candidate))
            {
                return candidate;
            }
        }

        throw new BackupException(
            $"program '{program}' was not found in PATH ({(path.Length > 0 ? path : "empty")}); install it, fix PATH, or give its absolute path");
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path) && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    /// <summary>
    /// Runs a program and copies its stdout into <paramref name="output"/>. Fails on a non-zero exit, a timeout or
    /// cancellation (the process tree is killed), with the stderr tail in the message.
    /// </summary>
    public static Task<long> RunToStreamAsync(string executable, IReadOnlyList<string> arguments,
        IReadOnlyDictionary<string, string> environment, string workingDirectory, Stream output, TimeSpan timeout, string what,
        CancellationToken cancellationToken) =>
        RunAsync(executable, arguments, environment, workingDirectory, null, output, timeout, what, cancellationToken);

    /// <summary>
    /// Runs a program with none of this process's environment (only PATH, LANG and TZ, and <paramref name="environment"/>):
    /// for programs run as another user (a drill's initdb), whose environment that user could read.
    /// </summary>
    public static Task<long> RunCleanToStreamAsync(string executable, IReadOnlyList<string> arguments,
        IReadOnlyDictionary<string, string> environment, string workingDirectory, Stream output, TimeSpan timeout, string what,
        CancellationToken cancellationToken) =>
        RunAsync(executable, arguments, environment, workingDirectory, null, output, timeout, what, cancellationToken, clean: true);

    /// <summary>
    /// Whether an inherited variable is a secret by its name (…PASSWORD…, …TOKEN…, …SECRET…, …KEY…, credentials, the
    /// cloud SDKs' and rclone's configuration, libpq's and MySQL's password variables): never passed on unless given.
    /// </summary>
    public static bool IsSecretName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var n = name.ToUpperInvariant();
        return n != "PWD" && (n.Contains("PASSWORD", StringComparison.Ordinal) || n.Contains("PASSWD", StringComparison.Ordinal) || n.EndsWith("PWD", StringComparison.Ordinal)
                              || n.Contains("TOKEN", StringComparison.Ordinal) || n.Contains("SECRET", StringComparison.Ordinal) || n.Contains("KEY", StringComparison.Ordinal)
                              || n.Contains("CREDENTIAL", StringComparison.Ordinal) || n.StartsWith("AWS_", StringComparison.Ordinal)
                              || n.StartsWith("RCLONE_CONFIG_", StringComparison.Ordinal) || n is "PGPASSFILE" or "PGSERVICEFILE" or "BACKSTOP_PASSPHRASE");
    }

    /// <summary>The whole environment a clean child gets, before its own variables.</summary>
    public static IReadOnlyDictionary<string, string> CleanEnvironment { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ["LANG"] = "C.UTF-8",
        ["TZ"] = "UTC",
    };

    /// <summary>Runs a program fed with <paramref name="input"/> on its stdin (a restore), with the same guarantees.</summary>
    public static Task<long> RunWithInputAsync(string executable, IReadOnlyList<string> arguments,
        IReadOnlyDictionary<string, string> environment, Stream input, TimeSpan timeout, string what, CancellationToken cancellationToken) =>
        RunAsync(executable, arguments, environment, "/", input, Stream.Null, timeout, what, cancellationToken);

    private static async Task<long> RunAsync(string executable, IReadOnlyList<string> arguments,
        IReadOnlyDictionary<string, string> environment, string workingDirectory, Stream? input, Stream output, TimeSpan timeout, string what,
        CancellationToken cancellationToken, bool clean = false)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(output);
        var psi = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        if (clean)
        {
            psi.Environment.Clear();
            foreach (var (k, v) in CleanEnvironment)
            {
                psi.Environment[k] = v;
            }
        }
        else
        {
            // A secret goes only to the child that needs it, given below: none is inherited from Backstop's own
            // environment (a command source, a dump tool or rclone never sees the S3 keys or another server's password).
            foreach (var name in psi.Environment.Keys.Where(IsSecretName).ToList())
            {
                psi.Environment.Remove(name);
            }
        }

        foreach (var (k, v) in environment)
        {
            psi.Environment[k] = v;
        }

        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new BackupException($"{what}: cannot start {executable}: {e.Message}");
        }

        var feeding = input is null
            ? Task.CompletedTask
            : Task.Run(async () =>
            {
                try
                {
                    await input.CopyToAsync(process.StandardInput.BaseStream, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException)
                {
                    // The program stopped reading (it failed, or needs no more): its exit code tells which.
                }
                finally
                {
                    process.StandardInput.Close();
                }
            }, CancellationToken.None);
        if (input is null)
        {
            process.StandardInput.Close();
        }

        var stderr = new StringBuilder();
        var stderrTask = Task.Run(async () =>
        {
            var buffer = new char[1024];
            int n;
            while ((n = await process.StandardError.ReadAsync(buffer, CancellationToken.None).ConfigureAwait(false)) > 0)
            {
                lock (stderr)
                {
                    stderr.Append(buffer, 0, n);
                    if (stderr.Length > StderrTail * 2)
                    {
                        stderr.Remove(0, stderr.Length - StderrTail);
                    }
                }
            }
        }, CancellationToken.None);

        using var timeoutCts = new CancellationTokenSource(timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutCts.Token);
        long copied = 0;
        try
        {
            var buffer = new byte[1 << 17];
            var stdout = process.StandardOutput.BaseStream;
            int read;
            while ((read = await stdout.ReadAsync(buffer, linked.Token).ConfigureAwait(false)) > 0)
            {
                await output.WriteAsync(buffer.AsMemory(0, read), linked.Token).ConfigureAwait(false);
                copied += read;
            }

            await process.WaitForExitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            if (timeoutCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new BackupException($"{what}: timed out after {Core.Config.Quantities.FormatDuration(timeout)} and was killed{Tail(stderr)}");
            }

            throw;
        }
        catch
        {
            Kill(process);
            throw;
        }

        await stderrTask.ConfigureAwait(false);
        await feeding.ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            var how = process.ExitCode > 128 ? $"was killed by signal {process.ExitCode - 128}" : $"exited with code {process.ExitCode}";
            throw new BackupException($"{what} {how}{Tail(stderr)}");
        }

        return copied;
    }

    private static string Tail(StringBuilder stderr)
    {
        string text;
        lock (stderr)
        {
            text = stderr.ToString().Trim();
        }

        if (text.Length == 0)
        {
            return " (no output on stderr)";
        }

        if (text.Length > 1000)
        {
            text = "…" + text[^1000..];
        }

        return ": " + text.ReplaceLineEndings(" | ");
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }
}
