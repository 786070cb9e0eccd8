using System.Diagnostics;

namespace Backstop.IntegrationTests.Support;

/// <summary>
/// The tests' own FUSE file system (<c>eiofs.py</c>, on python3-fusepy): a backing folder passed through at a mount
/// point, whose reads, writes or fsyncs fail with EIO by the rules the test sets (<see cref="Fail"/>), as a dying disk's.
/// Mounting needs root and /dev/fuse, as CI has.
/// </summary>
public sealed class EioFs : IDisposable
{
    private readonly Process _process;

    public EioFs(string backing, string mountPoint)
    {
        Backing = backing;
        MountPoint = mountPoint;
        Directory.CreateDirectory(backing);
        Directory.CreateDirectory(mountPoint);
        var script = Path.Combine(CouchServer.RepoRoot, "tests", "Backstop.IntegrationTests", "Support", "eiofs.py");
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { script, backing, mountPoint })
        {
            psi.ArgumentList.Add(a);
        }

        _process = Process.Start(psi)!;
        var clock = Stopwatch.StartNew();
        while (!File.ReadAllText("/proc/mounts").Contains(" " + mountPoint + " ", StringComparison.Ordinal))
        {
            if (_process.HasExited || clock.Elapsed > TimeSpan.FromSeconds(20))
            {
                Assert.Fail($"eiofs did not mount at {mountPoint} (needs python3-fusepy, /dev/fuse and root, as CI has): {_process.StandardError.ReadToEnd()}");
            }

            Thread.Sleep(50);
        }
    }

    public string Backing { get; }

    public string MountPoint { get; }

    /// <summary>From now on, these operations fail with EIO: lines such as "read NAME", "write *", "fsync *"; none: all pass.</summary>
    public void Fail(params string[] rules) => File.WriteAllText(Path.Combine(Backing, ".eio"), string.Join('\n', rules) + "\n");

    public void Dispose()
    {
        Sandbox.Exec("umount", "-l", MountPoint);
        if (!_process.WaitForExit(5000))
        {
            _process.Kill();
        }

        _process.Dispose();
    }
}
