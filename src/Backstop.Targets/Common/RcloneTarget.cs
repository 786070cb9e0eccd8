using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using Backstop.Core.Plugins;
using Backstop.Core.Streams;

namespace Backstop.Targets.Common;

/// <summary>
/// A target behind the <c>rclone</c> program: <c>rcat</c> to a hidden temporary name then <c>moveto</c>, <c>cat</c> to
/// read back (hashed by Backstop, never by a remote shell), <c>lsjson</c> to stat and list, <c>deletefile</c>. The
/// remote is configured by the caller's environment (<c>RCLONE_CONFIG_&lt;NAME&gt;_*</c>) or rclone's own file;
/// secrets therefore never appear on a command line. Shared by the kinds built on rclone: <c>rclone</c> (a remote of
/// the user's rclone configuration) and <c>sftp</c> (a remote defined in the child's environment, its host key pinned).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "SemaphoreSlim holds an OS handle only once its AvailableWaitHandle is read, which nothing here does; there is nothing to release.")]
public class RcloneTarget : ITarget
{
    private const string PartialSuffix = ".partial";
    private readonly string _root;
    private readonly IReadOnlyDictionary<string, string> _env;
    private readonly string? _program;
    private readonly SemaphoreSlim _mkdirLock = new(1, 1);
    private readonly SemaphoreSlim _commands = new(3, 3);
    private readonly HashSet<string> _folders = new(StringComparer.Ordinal);
    private string? _resolved;

    public RcloneTarget(string name, string remote, IReadOnlyDictionary<string, string> env, string? program, string where)
    {
        ArgumentNullException.ThrowIfNull(remote);
        Name = name;
        _root = remote.EndsWith(':') ? remote : remote.TrimEnd('/');
        _env = env;
        _program = program;
        Where = where;
    }

    public string Name { get; }

    public string Where { get; }

    /// <summary>A remote (<c>gdrive:backups</c>) is elsewhere, as far as this can tell; a plain path is a folder here.</summary>
    public virtual TargetPlace Place => _root.Contains(':', StringComparison.Ordinal) ? new TargetPlace(null) : TargetPlace.Folder(_root);

    public TargetCapabilities Capabilities { get; } = new(AtomicPublish: true, FreeSpaceQuery: false, ServerSideChecksum: false);

    /// <summary>rclone itself, with the remote as configured for it (<c>rclone config</c> on the machine that fetches).</summary>
    public virtual string FetchCommand(string key, string localPath) =>
        $"rclone copyto {Backstop.Core.Text.ShellWord.Quote(PathOf(key))} {Backstop.Core.Text.ShellWord.Quote(localPath)}";

    private string PathOf(string key)
    {
        if (key.Length == 0 || key.Split('/').Any(p => p is ".." or "." or ""))
        {
            throw new ArgumentException($"invalid object key '{key}'", nameof(key));
        }

        return _root.EndsWith(':') ? _root + key : _root + "/" + key;
    }

    public virtual async Task ProbeAsync(CancellationToken cancellationToken)
    {
        await RunAsync(["mkdir", _root], "probe (mkdir)", cancellationToken).ConfigureAwait(false);
        var probe = PathOf($".backstop-probe-{Environment.ProcessId}");
        await using (var upload = new Upload(this, probe, probe, Start(["rcat", probe], redirectInput: true)))
        {
            await upload.WriteAsync(new byte[] { 1 }, cancellationToken).ConfigureAwait(false);
            await upload.FinishAsync("probe (write a small file)", cancellationToken).ConfigureAwait(false);
        }

        await RunAsync(["deletefile", probe], "probe (delete)", cancellationToken).ConfigureAwait(false);
    }

    public Task<long?> FreeBytesAsync(CancellationToken cancellationToken) => Task.FromResult<long?>(null);

    public async Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken)
    {
        var final = PathOf(key);
        var slash = key.LastIndexOf('/');
        if (slash > 0)
        {
            await EnsureFolderAsync(key[..slash], cancellationToken).ConfigureAwait(false);
        }

        var temp = PathOf((slash < 0 ? "" : key[..(slash + 1)]) + $".{key[(slash + 1)..]}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}{PartialSuffix}");
        return new Upload(this, temp, final, Start(["rcat", temp], redirectInput: true));
    }

    /// <summary>
    /// Creates a folder once per run, one at a time: two uploads that both create the same missing parent race on
    /// some backends (SFTP: the second mkdir fails).
    /// </summary>
    private async Task EnsureFolderAsync(string folder, CancellationToken ct)
    {
        await _mkdirLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_folders.Add(folder))
            {
                try
                {
                    await RunAsync(["mkdir", PathOf(folder)], $"creation of folder {folder}", ct).ConfigureAwait(false);
                }
                catch
                {
                    _folders.Remove(folder);
                    throw;
                }
            }
        }
        finally
        {
            _mkdirLock.Release();
        }
    }

    public async Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken)
    {
        if (await StatAsync(key, cancellationToken).ConfigureAwait(false) is null)
        {
            throw new ObjectNotFoundException(Name, key);
        }

        var process = Start(["cat", PathOf(key)], redirectInput: false);
        return new ProcessReadStream(this, process, key);
    }

    public async Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken)
    {
        var (code, stdout, stderr) = await CaptureAsync(["lsjson", "--stat", "--no-mimetype", PathOf(key)], cancellationToken).ConfigureAwait(false);
        if (code is 3 or 4 || (code != 0 && NotFound(stderr)))
        {
            return null;
        }

        Check(code, stderr, $"stat of {key}");
        using var doc = JsonDocument.Parse(stdout);
        return doc.RootElement.GetProperty("IsDir").GetBoolean() ? null : Info(key, doc.RootElement);
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var slash = prefix.LastIndexOf('/');
        var dir = slash < 0 ? "" : prefix[..slash];
        var (code, stdout, stderr) = await CaptureAsync(
            ["lsjson", "-R", "--files-only", "--no-mimetype", dir.Length == 0 ? _root : PathOf(dir)], cancellationToken).ConfigureAwait(false);
        if (code is 3 || (code != 0 && NotFound(stderr)))
        {
            yield break;
        }

        Check(code, stderr, $"listing of {prefix}");
        using var doc = JsonDocument.Parse(stdout);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            var key = (dir.Length == 0 ? "" : dir + "/") + e.GetProperty("Path").GetString();
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                yield return Info(key, e);
            }
        }
    }

    public async Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        var (code, _, stderr) = await CaptureAsync(["deletefile", PathOf(key)], cancellationToken).ConfigureAwait(false);
        if (code is not (0 or 3 or 4) && !NotFound(stderr))
        {
            Check(code, stderr, $"delete of {key}");
        }

        // Folders left empty go too (rmdir refuses a folder that still holds something).
        await _mkdirLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        _folders.Clear();
        _mkdirLock.Release();
        var parts = key.Split('/');
        for (var i = parts.Length - 1; i > 0; i--)
        {
            if ((await CaptureAsync(["rmdir", PathOf(string.Join('/', parts[..i]))], cancellationToken).ConfigureAwait(false)).Code != 0)
            {
                break;
            }
        }
    }

    /// <summary>
    /// Folders under the prefixes that hold no file at any depth (an interrupted run's snapshot folder, made before its
    /// first file), removed deepest first with rmdir, which refuses a folder something was written to meanwhile.
    /// </summary>
    public async Task<IReadOnlyList<string>> SweepLeftoversAsync(IReadOnlyCollection<string> idlePrefixes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idlePrefixes);
        var removed = new List<string>();
        foreach (var prefix in idlePrefixes)
        {
            var top = prefix.TrimEnd('/');
            var (code, stdout, stderr) = await CaptureAsync(["lsjson", "-R", "--no-mimetype", PathOf(top)], cancellationToken).ConfigureAwait(false);
            if (code is 3 || (code != 0 && NotFound(stderr)))
            {
                continue;
            }

            Check(code, stderr, $"listing of {prefix}");
            var folders = new List<string>();
            var full = new HashSet<string>(StringComparer.Ordinal);
            using (var doc = JsonDocument.Parse(stdout))
            {
                foreach (var e in doc.RootElement.EnumerateArray())
                {
                    var path = e.GetProperty("Path").GetString() ?? "";
                    if (e.GetProperty("IsDir").GetBoolean())
                    {
                        folders.Add(path);
                        continue;
                    }

                    for (var slash = path.LastIndexOf('/'); slash > 0; slash = path.LastIndexOf('/', slash - 1))
                    {
                        full.Add(path[..slash]);
                    }
                }
            }

            foreach (var folder in folders.Where(f => !full.Contains(f)).OrderByDescending(f => f.Length))
            {
                var key = $"{top}/{folder}";
                if ((await CaptureAsync(["rmdir", PathOf(key)], cancellationToken).ConfigureAwait(false)).Code == 0)
                {
                    removed.Add($"removed the empty folder {key}/ from target '{Name}' (left by an interrupted run)");
                }
            }
        }

        if (removed.Count > 0)
        {
            await _mkdirLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            _folders.Clear(); // a folder this process made may be among them
            _mkdirLock.Release();
        }

        return removed;
    }

    private static ObjectInfo Info(string key, JsonElement e) =>
        new(key, e.GetProperty("Size").GetInt64(),
            DateTimeOffset.TryParse(e.GetProperty("ModTime").GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : DateTimeOffset.UtcNow);

    private static bool NotFound(string stderr) =>
        stderr.Contains("not found", StringComparison.OrdinalIgnoreCase) || stderr.Contains("doesn't exist", StringComparison.OrdinalIgnoreCase);

    /// <summary>rclone's error, in a sentence naming this target; subclasses add what they know (a host key seen).</summary>
    protected virtual string Explain(string operation, string stderr)
    {
        var last = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "(no message)";
        return $"target '{Name}': {operation} at {Where} failed: {Trim(last)}";
    }

    private static string Trim(string line)
    {
        // "2026/11/22 01:02:03 ERROR : …" → "…"
        var i = line.IndexOf(" : ", StringComparison.Ordinal);
        var text = i >= 0 && line.Length > 20 && char.IsAsciiDigit(line[0]) ? line[(i + 3)..] : line;
        return text.Length > 400 ? text[..400] + "…" : text;
    }

    private void Check(int code, string stderr, string operation)
    {
        if (code != 0)
        {
            throw new BackupException(Explain(operation, stderr)) { Permanent = IsPermanent(stderr) };
        }
    }

    /// <summary>Failures another attempt cannot fix: a refused host key or login, a remote rclone does not know.</summary>
    protected virtual bool IsPermanent(string stderr) =>
        stderr.Contains("knownhosts", StringComparison.OrdinalIgnoreCase) || stderr.Contains("unable to authenticate", StringComparison.OrdinalIgnoreCase)
        || stderr.Contains("didn't find section in config file", StringComparison.OrdinalIgnoreCase);

    private string Program => _resolved ??= ResolveProgram();

    private string ResolveProgram()
    {
        if (_program is not null)
        {
            return File.Exists(_program) ? _program : throw new BackupException($"target '{Name}': rclone: {_program} does not exist") { Permanent = true };
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "rclone");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new BackupException(
            $"target '{Name}': the rclone program is needed and was not found in PATH ({Environment.GetEnvironmentVariable("PATH")}); install it (apt-get install rclone) or set 'rclone: /path/to/rclone'")
        {
            Permanent = true,
        };
    }

    /// <summary>How long rclone waits and how often it retries before a command fails (kept short: a copy that fails is reported, and the next run sends it again).</summary>
    private static readonly string[] Patience = ["--contimeout", "15s", "--low-level-retries", "2", "--retries", "1"];

    private Process Start(IReadOnlyList<string> args, bool redirectInput)
    {
        var psi = new ProcessStartInfo(Program)
        {
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in Patience.Concat(args))
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment.Remove("AWS_CA_BUNDLE"); // breaks rclone's S3 backend when set for other programs
        foreach (var (k, v) in _env)
        {
            psi.Environment[k] = v;
        }

        try
        {
            return Process.Start(psi) ?? throw new BackupException($"target '{Name}': rclone did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new BackupException($"target '{Name}': cannot start {Program}: {e.Message}");
        }
    }

    private async Task<(int Code, string Stdout, string Stderr)> CaptureAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        // Few short commands at once: each opens a new session, and an SSH server drops new sessions beyond a burst
        // (OpenSSH's MaxStartups 10:30:100), which rclone then reports as "doesn't exist".
        await _commands.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await CaptureOnceAsync(args, ct).ConfigureAwait(false);
        }
        finally
        {
            _commands.Release();
        }
    }

    private async Task<(int Code, string Stdout, string Stderr)> CaptureOnceAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        using var process = Start(args, redirectInput: false);
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            throw;
        }

        return (process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    private async Task RunAsync(IReadOnlyList<string> args, string operation, CancellationToken ct)
    {
        var (code, _, stderr) = await CaptureAsync(args, ct).ConfigureAwait(false);
        Check(code, stderr, operation);
    }

    /// <summary>
    /// Publishes an uploaded temporary object under its final name. A move that fails on a transient error (an SSH
    /// server refusing a burst of new sessions makes rclone mistake the source for a folder) is checked and tried
    /// again: done when the final object is there and the temporary one is gone.
    /// </summary>
    private async Task MoveAsync(string temp, string final, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var (code, _, stderr) = await CaptureAsync(["moveto", temp, final], ct).ConfigureAwait(false);
            if (code == 0)
            {
                return;
            }

            if (attempt == 3)
            {
                Check(code, stderr, $"move of {temp} to its final name");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500 * attempt), ct).ConfigureAwait(false);
            var (finalCode, _, _) = await CaptureAsync(["lsjson", "--stat", final], ct).ConfigureAwait(false);
            var (tempCode, _, _) = await CaptureAsync(["lsjson", "--stat", temp], ct).ConfigureAwait(false);
            if (finalCode == 0 && tempCode != 0)
            {
                return; // the first move did happen
            }
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>An <c>rclone rcat</c> child fed through its stdin; committed by a move to the final name.</summary>
    private sealed class Upload : ITargetUpload
    {
        private readonly RcloneTarget _target;
        private readonly string _temp;
        private readonly string _final;
        private readonly Process _process;
        private readonly Task<string> _stderr;
        private long _written;
        private bool _finished;
        private bool _committed;
        private bool _disposed;

        public Upload(RcloneTarget target, string temp, string final, Process process)
        {
            _target = target;
            _temp = temp;
            _final = final;
            _process = process;
            _stderr = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
        }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            try
            {
                await _process.StandardInput.BaseStream.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                _written += data.Length;
            }
            catch (IOException)
            {
                // rclone stopped reading: it failed; its own message says why.
                await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
                throw new BackupException(_target.Explain($"upload of {_final}", await _stderr.ConfigureAwait(false)));
            }
        }

        /// <summary>Closes stdin and waits for rclone to have stored the whole temporary object.</summary>
        public async Task FinishAsync(string operation, CancellationToken ct)
        {
            _finished = true;
            await _process.StandardInput.BaseStream.FlushAsync(ct).ConfigureAwait(false);
            _process.StandardInput.Close();
            await _process.WaitForExitAsync(ct).ConfigureAwait(false);
            _target.Check(_process.ExitCode, await _stderr.ConfigureAwait(false), operation);
        }

        public async Task CommitAsync(CancellationToken cancellationToken)
        {
            if (_written == 0)
            {
                throw new BackupException($"target '{_target.Name}': refusing to store {_final} empty");
            }

            await FinishAsync($"upload of {_final}", cancellationToken).ConfigureAwait(false);
            await _target.MoveAsync(_temp, _final, cancellationToken).ConfigureAwait(false);
            _committed = true;
        }

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (!_finished || !_process.HasExited)
            {
                Kill(_process);
                await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }

            _process.Dispose();
            if (!_committed && _temp != _final)
            {
                try
                {
                    using var cleanup = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                    await _target.CaptureAsync(["deletefile", _temp], cleanup.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or BackupException)
                {
                    // a partial left behind is an orphan of a failed snapshot: the next run removes its folder
                }
            }
        }
    }

    /// <summary>The stdout of <c>rclone cat</c>; at its end the exit code must be 0, or reading fails with rclone's message.</summary>
    private sealed class ProcessReadStream(RcloneTarget target, Process process, string key) : ReadOnlyStream
    {
        private readonly Stream _out = process.StandardOutput.BaseStream;
        private readonly Task<string> _stderr = process.StandardError.ReadToEndAsync();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await _out.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (n == 0 && buffer.Length > 0)
            {
                await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
                if (process.ExitCode != 0)
                {
                    throw new IOException(target.Explain($"read of {key}", await _stderr.ConfigureAwait(false)));
                }
            }

            return n;
        }


        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

        private bool _disposed;

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_disposed)
            {
                _disposed = true;
                if (!process.HasExited)
                {
                    Kill(process);
                }

                process.Dispose();
            }

            base.Dispose(disposing);
        }

    }
}
