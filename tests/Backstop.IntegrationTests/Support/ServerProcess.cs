using System.Diagnostics;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// What every server fixture does: start a real server program in its own temporary folder, wait until it answers,
/// and on dispose kill it and remove the folder. A program that is missing or dies at start fails the test with
/// the way to install it, never a skip.
/// </summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stderr;

    public ServerProcess(string program, IEnumerable<string> args, string root, string install, string? workingDirectory = null)
    {
        Root = root;
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? root,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            _process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{program} is needed: run ./test.sh, which installs {install}", e);
        }

        _process.StandardOutput.ReadToEndAsync();
        _stderr = _process.StandardError.ReadToEndAsync();
        _name = $"{Path.GetFileName(program)}, pid {_process.Id} (installed as {install})";
        _process.EnableRaisingEvents = true;
        _process.Exited += (_, _) => RecordDeath();
    }

    private readonly string _name;
    private volatile bool _killing;

    /// <summary>
    /// Where a server that died on its own (not by <see cref="Kill"/>) is recorded, with its exit code and stderr: the
    /// tests then fail with "connection refused" from Backstop, and test.sh prints this file to say why the server went.
    /// </summary>
    public static string DeathLog => Path.Combine(Path.GetTempPath(), "backstop-fixture-deaths.log");

    private void RecordDeath()
    {
        if (_killing)
        {
            return;
        }

        try
        {
            var stderr = _stderr.Wait(TimeSpan.FromSeconds(5)) ? _stderr.Result : "(its stderr did not end)";
            File.AppendAllText(DeathLog, $"{DateTimeOffset.UtcNow:O} {_name} exited on its own with {_process.ExitCode}; its stderr:\n{stderr}\n");
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            // the record is a diagnosis only
        }
    }

    public string Root { get; }

    /// <summary>Polls until the server answers, failing with its log if it exits or takes too long.</summary>
    public void WaitUntil(Func<bool> ready, string what, TimeSpan? timeout = null)
    {
        var sw = Stopwatch.StartNew();
        while (!Answers(ready))
        {
            Assert.False(_process.HasExited, $"{what} exited at start: {(_process.HasExited ? _stderr.Result : "")}");
            Assert.True(sw.Elapsed < (timeout ?? TimeSpan.FromSeconds(60)), $"{what} did not answer in time");
            Thread.Sleep(150);
        }

        Assert.False(_process.HasExited, $"{what} exited at start, yet its port answered (another server has it): {(_process.HasExited ? _stderr.Result : "")}");
    }

    private static bool Answers(Func<bool> ready)
    {
        try
        {
            return ready();
        }
        catch (Exception e) when (e is HttpRequestException or AggregateException or IOException or System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    /// <summary>Kills the server and keeps its folder (a server that goes down and comes back later).</summary>
    public void Kill()
    {
        _killing = true;
        try
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    /// <summary>Stops the process with a signal (SIGSTOP freezes it: a server that hangs with its port open).</summary>
    public void Signal(int signal)
    {
        _killing |= signal is not (Posix.SigStop or Posix.SigCont); // a test's own signal is no death to report
        _ = Posix.Kill(_process.Id, signal);
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // a file still held by a dying child; the temporary folder is cleaned by the system
        }
    }
}

internal static partial class Posix
{
    public const int SigStop = 19;
    public const int SigCont = 18;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "kill")]
    public static partial int Kill(int pid, int signal);
}
