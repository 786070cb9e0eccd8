using System.Diagnostics;
using Backstop.Sources.Kubernetes;

namespace Backstop.Tests.Sources;

/// <summary>
/// A cluster's objects come back in two steps in a runbook: everything but the workloads first, the workloads last.
/// The generated commands are run by a real shell, zstd and tar, against a kubectl that records what it is given.
/// </summary>
public sealed class KubeRecoveryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("backstop-kube-steps-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private (int Exit, string Output) Shell(string script)
    {
        var start = new ProcessStartInfo("/bin/sh", ["-c", script]) { WorkingDirectory = _dir, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["PATH"] = Path.Combine(_dir, "bin") + ":" + Environment.GetEnvironmentVariable("PATH");
        using var p = Process.Start(start)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    [Fact]
    public void Workloads_are_held_back_by_the_first_step_and_applied_by_the_last()
    {
        foreach (var file in new[] { "tree/_cluster/Namespace/shop.yaml", "tree/shop/ConfigMap.v1/settings.yaml", "tree/shop/PersistentVolumeClaim/data.yaml",
                     "tree/shop/Deployment.apps/web.yaml", "tree/shop/StatefulSet.apps/db.yaml", "tree/shop/CronJob.batch/report.yaml" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_dir, file))!);
            File.WriteAllText(Path.Combine(_dir, file), "kind: x\n");
        }

        Directory.CreateDirectory(Path.Combine(_dir, "bin"));
        File.WriteAllText(Path.Combine(_dir, "bin", "kubectl"), $"#!/bin/sh\necho \"$*\" >> '{_dir}/kubectl.log'\n");
        File.SetUnixFileMode(Path.Combine(_dir, "bin", "kubectl"), (UnixFileMode)0b111_101_101);
        Assert.Equal(0, Shell("tar -C tree -cf - . | zstd -q -o 'objects.tar.zst'").Exit);

        var (hold, release) = KubernetesSource.TwoSteps("objects.tar", "objects.tar.zst")!.Value;
        var fill = (string c) => c.Replace("DEST", $"'{_dir}/dest dir'", StringComparison.Ordinal);
        var first = Shell(fill(hold));
        Assert.True(first.Exit == 0, first.Output);
        var held = File.ReadAllText(Path.Combine(_dir, "kubectl.log"));
        Assert.Contains("Namespace", held, StringComparison.Ordinal);
        Assert.Contains("ConfigMap.v1/settings.yaml", held, StringComparison.Ordinal);
        Assert.Contains("PersistentVolumeClaim/data.yaml", held, StringComparison.Ordinal);
        Assert.DoesNotContain("Deployment.apps", held, StringComparison.Ordinal);
        Assert.DoesNotContain("StatefulSet.apps", held, StringComparison.Ordinal);
        Assert.DoesNotContain("CronJob.batch", held, StringComparison.Ordinal);

        File.Delete(Path.Combine(_dir, "kubectl.log"));
        var last = Shell(fill(release));
        Assert.True(last.Exit == 0, last.Output);
        var released = File.ReadAllLines(Path.Combine(_dir, "kubectl.log"));
        Assert.Equal(3, released.Length);
        Assert.All(released, l => Assert.StartsWith("apply -R -f ./shop/", l, StringComparison.Ordinal));
        Assert.Contains(released, l => l.EndsWith("Deployment.apps", StringComparison.Ordinal));

        Assert.Null(KubernetesSource.TwoSteps("pvc%2Fshop%2Fdata.tar", "x.zst")); // a volume's data restores in one step
    }
}
