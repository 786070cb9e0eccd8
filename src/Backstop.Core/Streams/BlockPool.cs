using System.Collections.Concurrent;

namespace Backstop.Core.Streams;

/// <summary>
/// The 1 MiB blocks the pipeline streams through its stages. A bounded free list of its own: unlike the shared
/// ArrayPool, which keeps up to 8 arrays per core per size, blocks handed from thread to thread do not pile up
/// (measured in bench/), and a steady stream allocates nothing.
/// </summary>
public static class BlockPool
{
    public const int BlockSize = 1 << 20;
    private const int Keep = 24;
    private static readonly ConcurrentQueue<byte[]> Free = new();

    public static byte[] Rent() => Free.TryDequeue(out var block) ? block : GC.AllocateUninitializedArray<byte>(BlockSize);

    public static void Return(byte[] block)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (block.Length == BlockSize && Free.Count < Keep)
        {
            Free.Enqueue(block);
        }
    }
}
