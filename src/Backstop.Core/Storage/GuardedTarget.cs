using System.Runtime.CompilerServices;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Polly.Retry;
using Polly.Timeout;
using Polly;

namespace Backstop.Core.Storage;

/// <summary>
/// Every target as the pipeline sees it: each operation has a deadline (<c>timeout</c> on the target) and the
/// idempotent ones (probe, stat, list, open, delete) are retried with exponential backoff (<c>retries</c>). A write or
/// commit is never retried (a stream cannot be replayed): it fails its copy. An operation that does not honour
/// cancellation (a hung NFS mount, a stuck pipe) is abandoned at the deadline, so a hung target fails its copy,
/// named, instead of stalling the run.
/// </summary>
public sealed class GuardedTarget : ITarget
{
    private readonly ITarget _inner;
    private readonly TimeSpan _timeout;
    private readonly ResiliencePipeline _once;
    private readonly ResiliencePipeline _retried;

    public GuardedTarget(ITarget inner, TimeSpan timeout, int retries)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        _timeout = timeout;
        _once = new ResiliencePipelineBuilder().AddTimeout(timeout).Build();
        _retried = retries == 0
            ? _once
            : new ResiliencePipelineBuilder()
                .AddRetry(new RetryStrategyOptions
                {
                    ShouldHandle = new PredicateBuilder()
                        .Handle<BackupException>(e => !e.Permanent).Handle<IOException>().Handle<TimeoutRejectedException>().Handle<HttpRequestException>(),
                    MaxRetryAttempts = retries,
                    BackoffType = DelayBackoffType.Exponential,
                    Delay = TimeSpan.FromSeconds(1),
                    UseJitter = true,
                })
                .AddTimeout(timeout)
                .Build();
    }

    /// <summary>The target with its kind's options, guarded by the definition's timeout and retries.</summary>
    public static ITarget Create(PluginRegistry plugins, TargetDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(plugins);
        ArgumentNullException.ThrowIfNull(definition);
        return new GuardedTarget(plugins.Target(definition.Kind)!.Create(definition), definition.Timeout, definition.Retries);
    }

    public string Name => _inner.Name;

    public string Where => _inner.Where;

    public TargetPlace Place => _inner.Place;

    public string FetchCommand(string key, string localPath) => _inner.FetchCommand(key, localPath);

    public TargetCapabilities Capabilities => _inner.Capabilities;

    internal ITarget Inner => _inner;

    public Task ProbeAsync(CancellationToken cancellationToken) =>
        RunAsync(_retried, "probe", "", async ct =>
        {
            await _inner.ProbeAsync(ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    public Task<long?> FreeBytesAsync(CancellationToken cancellationToken) =>
        RunAsync(_retried, "free-space query", "", ct => _inner.FreeBytesAsync(ct), cancellationToken);

    public async Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken) =>
        new Upload(this, key, await RunAsync(_retried, "start of an upload", key, ct => _inner.BeginPutAsync(key, ct), cancellationToken).ConfigureAwait(false));

    public async Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken) =>
        new ReadStream(this, key, await RunAsync(_retried, "open for reading", key, ct => _inner.OpenReadAsync(key, ct), cancellationToken).ConfigureAwait(false));

    public Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken) =>
        RunAsync(_retried, "stat", key, ct => _inner.StatAsync(key, ct), cancellationToken);

    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Listings are small (one entry per object): taken whole under the deadline, then handed out.
        var all = await RunAsync(_retried, "listing", prefix, async ct =>
        {
            var list = new List<ObjectInfo>();
            await foreach (var o in _inner.ListAsync(prefix, ct).ConfigureAwait(false))
            {
                list.Add(o);
            }

            return list;
        }, cancellationToken).ConfigureAwait(false);
        foreach (var o in all)
        {
            yield return o;
        }
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken) =>
        RunAsync(_retried, "delete", key, async ct =>
        {
            await _inner.DeleteAsync(key, ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    public Task<IReadOnlyList<string>> SweepLeftoversAsync(IReadOnlyCollection<string> idlePrefixes, CancellationToken cancellationToken) =>
        RunAsync(_once, "sweep of leftovers", "", ct => _inner.SweepLeftoversAsync(idlePrefixes, ct), cancellationToken); // the next run sweeps again

    private async Task<T> RunAsync<T>(ResiliencePipeline pipeline, string operation, string key, Func<CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        try
        {
            // WaitAsync: an operation that ignores the token is abandoned at the deadline rather than waited for.
            return await pipeline.ExecuteAsync(async ct => await action(ct).WaitAsync(ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutRejectedException)
        {
            throw new BackupException(
                $"target '{Name}': {operation}{(key.Length > 0 ? " of " + key : "")} did not finish within {Quantities.FormatDuration(_timeout)} at {Where}; " +
                "the target hangs or is too slow: check it, or raise 'timeout' on the target");
        }
    }

    private sealed class Upload(GuardedTarget target, string key, ITargetUpload inner) : ITargetUpload
    {
        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
            await target.RunAsync(target._once, "write", key, async ct =>
            {
                await inner.WriteAsync(data, ct).ConfigureAwait(false);
                return true;
            }, cancellationToken).ConfigureAwait(false);

        public Task CommitAsync(CancellationToken cancellationToken) =>
            target.RunAsync(target._once, "commit", key, async ct =>
            {
                await inner.CommitAsync(ct).ConfigureAwait(false);
                return true;
            }, cancellationToken);

        public async ValueTask DisposeAsync()
        {
            try
            {
                await inner.DisposeAsync().AsTask().WaitAsync(target._timeout).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // the partial upload stays for the next run's orphan sweep
            }
        }
    }

    /// <summary>Each read has the deadline: a target that stops sending fails the read, named.</summary>
    private sealed class ReadStream(GuardedTarget target, string key, Stream inner) : Streams.ReadOnlyStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            await target.RunAsync(target._once, "read", key, ct => inner.ReadAsync(buffer, ct).AsTask(), cancellationToken).ConfigureAwait(false);


        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

    }
}
