using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Backstop.Sources.Processes;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;

namespace Backstop.Sources.Scratch;

/// <summary>
/// A throwaway server for a drill (redis-server, postgres, etcd, mariadbd): started without a shell on a free
/// loopback port, its output in a log file in the drill's scratch folder, recorded in the scratch folder before it
/// can be forgotten (a drill killed with -9 has it killed by the next one), run as the dedicated unprivileged user
/// <c>backstop-drill</c> when this process is root, and stopped when disposed.
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
    /// The OS user every throwaway server of a drill runs as when Backstop is root: <c>backstop-drill</c>, a system user
    /// of its own (never <c>postgres</c> or <c>mysql</c>, who own the production servers on a database host, never root),
    /// created the first time it is needed. A hostile function in a restored database then runs with no more than an
    /// empty account's rights. Null when not root: the servers run as this user (doctor warns).
    /// </summary>
    public const string DrillUserName = "backstop-drill";

    private static readonly SemaphoreSlim UserGate = new(1);

    public static async Task<(string Name, int Uid, int Gid)?> DrillUserAsync(CancellationToken cancellationToken)
    {
        if (!PosixUsers.IsRoot)
        {
            return null;
        }

        await UserGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (PosixUsers.Lookup(DrillUserName) is not { } ids)
            {
                string useradd;
                try
                {
                    useradd = ChildProcess.ResolveTool("useradd", "/usr/sbin:/sbin:/usr/bin:/bin");
                }
                catch (BackupException)
                {
                    throw new BackupException($"the drill runs its scratch servers as the user {DrillUserName}, which does not exist, and useradd is not installed to " +
                                              $"create it: create it (a system user with no shell and no home), then drill again");
                }

                try
                {
                    await ChildProcess.RunCleanToStreamAsync(useradd,
                        ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                         "--comment", "Backstop drills (throwaway servers)", DrillUserName],
                        new Dictionary<string, string>(), "/", Stream.Null, TimeSpan.FromMinutes(1), $"useradd {DrillUserName}", cancellationToken).ConfigureAwait(false);
                }
                catch (BackupException) when (PosixUsers.Lookup(DrillUserName) is not null)
                {
                    // Decision: another process created it at the same moment; that is the user wanted.
                }

                ids = PosixUsers.Lookup(DrillUserName)
                      ?? throw new BackupException($"useradd did not create the user {DrillUserName}; create it by hand (a system user with no shell), then drill again");
            }

            if (ids.Uid == 0 || ids.Gid == 0)
            {
                throw new BackupException($"the user {DrillUserName} has uid or gid 0 (root's): give it ids of its own, then drill again");
            }

            return (DrillUserName, ids.Uid, ids.Gid);
        }
        finally
        {
            UserGate.Release();
        }
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
                        // Said from what the kernel says of the process, not from what was asked for.
                        if (RunningAs(process.Id) is { } uid)
                        {
                            scope.Note($"the scratch {name} runs as the OS user {Posix.UserName((uint)uid)} (uid {uid.ToString(System.Globalization.CultureInfo.InvariantCulture)})");
                        }

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

    /// <summary>The effective uid of a running process (from /proc/PID/status), or null when it cannot be read.</summary>
    public static int? RunningAs(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid.ToString(System.Globalization.CultureInfo.InvariantCulture)}/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            var fields = line?.Split('\t', StringSplitOptions.RemoveEmptyEntries);
            return fields is { Length: >= 3 } && int.TryParse(fields[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var uid) ? uid : null;
        }
        catch (IOException)
        {
            return null; // gone already
        }
    }

    /// <summary>Whether the server has stopped (a recovery that failed, a crash).</summary>
    public bool Exited => _process.HasExited;

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
