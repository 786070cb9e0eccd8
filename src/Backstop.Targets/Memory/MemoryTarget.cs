using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Backstop.Core.Plugins;

namespace Backstop.Targets.Memory;

/// <summary>
/// A target in memory, for fast tests of the pipeline and of the conformance suite. Not configurable from YAML:
/// what lives only in one process's memory is never a backup.
/// </summary>
public sealed class MemoryTarget(string name) : ITarget
{
    private readonly ConcurrentDictionary<string, (byte[] Data, DateTimeOffset Modified)> _objects = new(StringComparer.Ordinal);

    public string Name { get; } = name;

    public string Where => $"memory:{Name}";

    public TargetCapabilities Capabilities { get; } = new(AtomicPublish: true, FreeSpaceQuery: false, ServerSideChecksum: false);

    /// <summary>Keys of objects being written and not yet committed.</summary>
    public ConcurrentDictionary<string, bool> Pending { get; } = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, byte[]> Objects => _objects.ToDictionary(kv => kv.Key, kv => kv.Value.Data, StringComparer.Ordinal);

    public void Replace(string key, byte[] data, DateTimeOffset? modified = null) => _objects[key] = (data, modified ?? DateTimeOffset.UtcNow);

    public Task ProbeAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<long?> FreeBytesAsync(CancellationToken cancellationToken) => Task.FromResult<long?>(null);

    public Task<ITargetUpload> BeginPutAsync(string key, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return Task.FromResult<ITargetUpload>(new Upload(this, key));
    }

    public Task<Stream> OpenReadAsync(string key, CancellationToken cancellationToken) =>
        _objects.TryGetValue(key, out var o)
            ? Task.FromResult<Stream>(new MemoryStream(o.Data, writable: false))
            : throw new ObjectNotFoundException(Name, key);

    public Task<ObjectInfo?> StatAsync(string key, CancellationToken cancellationToken) =>
        Task.FromResult(_objects.TryGetValue(key, out var o) ? new ObjectInfo(key, o.Data.Length, o.Modified) : null);

    public async IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        foreach (var (key, o) in _objects.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                yield return new ObjectInfo(key, o.Data.Length, o.Modified);
            }
        }
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        _objects.TryRemove(key, out _);
        return Task.CompletedTask;
    }

    private sealed class Upload : ITargetUpload
    {
        private readonly MemoryTarget _target;
        private readonly string _key;
        private readonly MemoryStream _buffer = new();
        private bool _done;

        public Upload(MemoryTarget target, string key)
        {
            _target = target;
            _key = key;
            target.Pending[key] = true;
        }

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            _buffer.Write(data.Span);
            return ValueTask.CompletedTask;
        }

        public Task CommitAsync(CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            if (_buffer.Length == 0)
            {
                throw new BackupException($"target '{_target.Name}': refusing to store {_key} empty");
            }

            _target._objects[_key] = (_buffer.ToArray(), DateTimeOffset.UtcNow);
            _done = true;
            _target.Pending.TryRemove(_key, out _);
            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _done = true;
            _target.Pending.TryRemove(_key, out _);
            return ValueTask.CompletedTask;
        }
    }
}
