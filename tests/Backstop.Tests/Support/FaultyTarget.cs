using Backstop.Core.Plugins;
using Backstop.Targets.Memory;

namespace Backstop.Tests.Support;

/// <summary>A memory target that misbehaves on purpose: silently corrupts what it stores, or fails writes.</summary>
public sealed class FaultyTarget(string name) : ITarget
{
    public MemoryTarget Inner { get; } = new(name);

    /// <summary>Flip one byte of every object it stores, and say nothing.</summary>
    public bool CorruptSilently { get; set; }

    /// <summary>Throw this from writes.</summary>
    public Exception? FailWrites { get; set; }

    /// <summary>Writes never return and ignore cancellation, as on a hung NFS mount.</summary>
    public bool HangWrites { get; set; }

    public string Name => Inner.Name;

    public string Where => Inner.Where;

    public TargetCapabilities Capabilities => Inner.Capabilities;

    /// <summary>Refuse the probe, as an unreachable server would.</summary>
    public string? FailProbe { get; set; }

    public Task ProbeAsync(CancellationToken cancellationToken) =>
        FailProbe is { } why ? throw new BackupException($"target '{Name}': {why}") : Inner.ProbeAsync(cancellationToken);

    public Task<long?> FreeBytesAsync(CancellationToken cancellationToken) => Task.FromResult<long?>(1234);

    public async Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken) =>
        new Upload(this, key, await Inner.BeginPutAsync(key, cancellationToken));

    public Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken) => Inner.OpenReadAsync(key, cancellationToken);

    public Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken) => Inner.StatAsync(key, cancellationToken);

    public IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken) => Inner.ListAsync(prefix, cancellationToken);

    public Task DeleteAsync(string key, CancellationToken cancellationToken) => Inner.DeleteAsync(key, cancellationToken);

    private sealed class Upload(FaultyTarget target, string key, ITargetUpload inner) : ITargetUpload
    {
        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (target.FailWrites is { } e)
            {
                throw e;
            }

            if (target.HangWrites)
            {
                return new ValueTask(Task.Delay(Timeout.Infinite, CancellationToken.None));
            }

            return inner.WriteAsync(data, cancellationToken);
        }

        public async Task CommitAsync(CancellationToken cancellationToken)
        {
            await inner.CommitAsync(cancellationToken);
            if (target.CorruptSilently && !key.EndsWith("MANIFEST.json", StringComparison.Ordinal))
            {
                var data = target.Inner.Objects[key];
                data[data.Length / 2] ^= 0x01;
                target.Inner.Replace(key, data);
            }
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
