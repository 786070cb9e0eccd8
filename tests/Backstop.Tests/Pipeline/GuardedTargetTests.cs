using Backstop.Core.Plugins;
using Backstop.Core.Storage;
using Backstop.Targets.Memory;

namespace Backstop.Tests.Pipeline;

/// <summary>Retries and deadlines around every target operation.</summary>
public sealed class GuardedTargetTests
{
    /// <summary>A memory target whose probe fails a given number of times, counting the attempts.</summary>
    private sealed class FlakyProbe(int failures, bool permanent) : ITarget
    {
        private readonly MemoryTarget _inner = new("flaky");

        public int Attempts { get; private set; }

        public string Name => _inner.Name;

        public string Where => _inner.Where;

        public TargetCapabilities Capabilities => _inner.Capabilities;

        public Task ProbeAsync(CancellationToken cancellationToken) =>
            ++Attempts <= failures ? throw new BackupException("connection reset") { Permanent = permanent } : Task.CompletedTask;

        public Task<long?> FreeBytesAsync(CancellationToken cancellationToken) => _inner.FreeBytesAsync(cancellationToken);

        public Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken) => _inner.BeginPutAsync(key, cancellationToken);

        public Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken) => _inner.OpenReadAsync(key, cancellationToken);

        public Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken) => _inner.StatAsync(key, cancellationToken);

        public IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken) => _inner.ListAsync(prefix, cancellationToken);

        public Task DeleteAsync(string key, CancellationToken cancellationToken) => _inner.DeleteAsync(key, cancellationToken);
    }

    [Fact]
    public async Task A_transient_failure_is_retried_and_a_permanent_one_is_not()
    {
        var transient = new FlakyProbe(failures: 1, permanent: false);
        await new GuardedTarget(transient, TimeSpan.FromSeconds(10), retries: 2).ProbeAsync(CancellationToken.None);
        Assert.Equal(2, transient.Attempts);

        var permanent = new FlakyProbe(failures: 1, permanent: true);
        await Assert.ThrowsAsync<BackupException>(() => new GuardedTarget(permanent, TimeSpan.FromSeconds(10), retries: 2).ProbeAsync(CancellationToken.None));
        Assert.Equal(1, permanent.Attempts);

        var always = new FlakyProbe(failures: 10, permanent: false);
        await Assert.ThrowsAsync<BackupException>(() => new GuardedTarget(always, TimeSpan.FromSeconds(10), retries: 2).ProbeAsync(CancellationToken.None));
        Assert.Equal(3, always.Attempts);
    }
}
