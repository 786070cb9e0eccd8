namespace Backstop.Sources.Redis;

/// <summary>CRC-64/Jones (reflected, init 0, no final xor): the checksum Redis puts at the end of an RDB file.</summary>
internal static class Crc64
{
    private const ulong Polynomial = 0x95AC9329AC4BC9B5; // 0xad93d23594c935a9 reflected
    private static readonly ulong[] Table = BuildTable();

    private static ulong[] BuildTable()
    {
        var table = new ulong[256];
        for (ulong i = 0; i < 256; i++)
        {
            var crc = i;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ Polynomial : crc >> 1;
            }

            table[i] = crc;
        }

        return table;
    }

    public static ulong Update(ulong crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            crc = Table[(byte)(crc ^ b)] ^ (crc >> 8);
        }

        return crc;
    }
}
