using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Backstop.Core.Plugins;
using Backstop.Core.Util;

namespace Backstop.Sources.Common;

/// <summary>
/// A throwaway server for a drill (redis-server, postgres, etcd, mariadbd): started without a shell on a free
/// loopback port, its output in a log file in the drill's scratch folder, recorded in the scratch folder before it
/// can be forgotten (a drill killed with -9 has it killed by the next one), run as an unprivileged user when this
/// process is root (database servers refuse root), and stopped when disposed.
/// </summary>
public sealed class ScratchServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _log;
    private readonly Task _pump;

    private readonly int _stopSignal;

    private ScratchServer(Process process, string log, Task pump, int stopSignal) => (_process, _log, _pump, _stopSignal) = (process, log, pump, stopSignal);

    public int Pid => _process.Id;

    /// <summary>A TCP port on 127.0.0.1 that nothing listens on now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>
    /// The user scratch servers run as when this process is root: <paramref name="preferred"/> (e.g. postgres) when it
    /// exists, else nobody. Null when not root (they run as this user).
    /// </summary>
    public static (string Name, int Uid, int Gid)? UnprivilegedUser(string? preferred)
    {
        if (!PosixUsers.IsRoot)
        {
            return null;
        }

        foreach (var name in new[] { preferred, "nobody" }.OfType<string>())
        {
            if (PosixUsers.Lookup(name) is { } ids)
            {
                return (name, ids.Uid, ids.Gid);
            }
        }

        throw new BackupException("running as root, the drill needs an unprivileged user for its scratch server (database servers refuse root), and neither postgres nor nobody exists");
    }

    /// <summary>Gives a file, or a folder and what is in it, to the scratch server's user, when there is one.</summary>
    public static void GiveTo((string Name, int Uid, int Gid)? user, string path)
    {
        if (user is not { } u)
        {
            return;
        }

        var all = Directory.Exists(path) ? Directory.EnumerateFileSystemEntries(path, "*", SearchOption.AllDirectories).Prepend(path) : [path];
        foreach (var entry in all)
        {
            Posix.Lchown(entry, u.Uid, u.Gid);
        }
    }

    /// <summary>
    /// Starts the server and waits until <paramref name="ready"/> says so. Fails with the end of its log when it exits
    /// first or is not ready within <paramref name="timeout"/>.
    /// </summary>
    public static async Task<ScratchServer> StartAsync(DrillScope scope, string name, string executable, IReadOnlyList<string> arguments,
        (string Name, int Uid, int Gid)? user, Func<CancellationToken, Task<bool>> ready, TimeSpan timeout, CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string>? environment = null, int stopSignal = 15)
    {
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(ready);
        var info = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            // In its drill's folder (which names it), unless it runs as another user, who may not be let in there.
            WorkingDirectory = user is null ? scope.Folder : "/",
        };
        if (user is { } u)
        {
            info.FileName = ChildProcess.ResolveTool("setpriv");
            foreach (var a in new[] { $"--reuid={u.Uid}", $"--regid={u.Gid}", "--clear-groups", "--", executable })
            {
                info.ArgumentList.Add(a);
            }
        }
        else
        {
            info.FileName = executable;
        }

        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        // None of this process's environment (it may hold S3 keys, a passphrase, PGPASSWORD): a server run as another
        // user could have it read through /proc by that user.
        info.Environment.Clear();
        foreach (var (k, v) in ChildProcess.CleanEnvironment.Concat(environment ?? new Dictionary<string, string>()))
        {
            info.Environment[k] = v;
        }

        var log = Path.Combine(scope.Folder, name + ".log");
        var process = Process.Start(info) ?? throw new BackupException($"{executable} could not be started");
        if (ProcessIdentity.Of(process.Id) is { } identity)
        {
            scope.Leave("pid:" + identity);
        }

        var pump = PumpAsync(process, log);
        var server = new ScratchServer(process, log, pump, stopSignal);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            while (true)
            {
                if (process.HasExited)
                {
                    await pump.ConfigureAwait(false);
                    throw new BackupException($"the scratch {name} ({executable}) exited with code {process.ExitCode} before it was ready: {server.LogTail()}");
                }

                try
                {
                    if (await ready(deadline.Token).ConfigureAwait(false))
                    {
                        return server;
                    }

                    await Task.Delay(100, deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new BackupException($"the scratch {name} ({executable}) was not ready within {Core.Config.Quantities.FormatDuration(timeout)}: {server.LogTail()}");
                }
            }
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The end of the server's log, for an error.</summary>
    public string LogTail()
    {
        try
        {
            var text = File.ReadAllText(_log).Trim();
            return text.Length == 0 ? "(its log is empty)" : text.Length > 1500 ? "…" + text[^1500..] : text;
        }
        catch (IOException e)
        {
            return $"(its log cannot be read: {e.Message})";
        }
    }

    private static async Task PumpAsync(Process process, string log)
    {
        // 0600: a failed COPY's log lines can hold rows of the restored data.
        await using var file = new FileStream(log, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.ReadWrite, Options = FileOptions.Asynchronous,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        var gate = new SemaphoreSlim(1);

        async Task Copy(StreamReader from)
        {
            var buffer = new char[4096];
            int n;
            while ((n = await from.ReadAsync(buffer).ConfigureAwait(false)) > 0)
            {
                var bytes = System.Text.Encoding.UTF8.GetBytes(buffer, 0, n);
                await gate.WaitAsync().ConfigureAwait(false);
                try
                {
                    await file.WriteAsync(bytes).ConfigureAwait(false);
                    await file.FlushAsync().ConfigureAwait(false);
                }
                finally
                {
                    gate.Release();
                }
            }
        }

        await Task.WhenAll(Copy(process.StandardOutput), Copy(process.StandardError)).ConfigureAwait(false);
    }

    /// <summary>Stops the server: its stop signal (SIGTERM; SIGINT, a fast shutdown, for postgres), then SIGKILL after 30 s.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                PosixUsers.Signal(_process.Id, _stopSignal);
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                try
                {
                    await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }

            await _pump.ConfigureAwait(false);
        }
        finally
        {
            _process.Dispose();
        }
    }
}
