namespace Backstop.Core.Tar;

/// <summary>
/// One member of a pax archive as the file system has it: names and link targets as the bytes they are (a Latin-1
/// name from an old share is not UTF-8, and must come back as the same bytes), times to the nanosecond, extended
/// attributes with binary values (<c>security.capability</c>), and POSIX ACLs in their text form. What
/// System.Formats.Tar cannot hold: it keeps names and pax values as strings.
/// </summary>
public sealed record PaxEntry
{
    public required PaxType Type { get; init; }

    /// <summary>The member's path as bytes: relative, '/'-separated, no NUL.</summary>
    public required byte[] Name { get; init; }

    /// <summary>A symbolic or hard link's target as bytes; empty otherwise.</summary>
    public byte[] LinkName { get; init; } = [];

    /// <summary>Permission and special bits (octal 7777).</summary>
    public int Mode { get; init; }

    public long Uid { get; init; }

    public long Gid { get; init; }

    public string UserName { get; init; } = "";

    public string GroupName { get; init; } = "";

    /// <summary>The content's length (regular files only).</summary>
    public long Size { get; init; }

    /// <summary>Modification time, nanoseconds since the Unix epoch (may be negative).</summary>
    public long MTimeNs { get; init; }

    public int DevMajor { get; init; }

    public int DevMinor { get; init; }

    /// <summary>Extended attributes (<c>user.*</c>, <c>security.*</c>, <c>trusted.*</c>) with their values as bytes.</summary>
    public IReadOnlyList<KeyValuePair<string, byte[]>> Xattrs { get; init; } = [];

    /// <summary>The access ACL in <c>getfacl</c>'s short text form, as GNU tar's SCHILY.acl.access; null when none.</summary>
    public string? AclAccess { get; init; }

    /// <summary>A folder's default ACL, as SCHILY.acl.default; null when none.</summary>
    public string? AclDefault { get; init; }

    /// <summary>
    /// A sparse file's data segments (offset, length) in order; the rest of its <see cref="Size"/> bytes are holes.
    /// Stored as GNU tar's sparse format 1.0; null for a file stored whole.
    /// </summary>
    public IReadOnlyList<(long Offset, long Length)>? Sparse { get; init; }

    /// <summary>GNU tar's dumpdir of a folder (its names, each prefixed 'Y'/'N'/'D', NUL-terminated); null when none.</summary>
    public byte[]? DumpDir { get; init; }

    /// <summary>The names a folder's dumpdir lists (as bytes, without their Y/N/D flag); none without a dumpdir.</summary>
    public IEnumerable<byte[]> DumpDirNames()
    {
        var dumpdir = DumpDir ?? [];
        var start = 0;
        for (var i = 0; i < dumpdir.Length; i++)
        {
            if (dumpdir[i] == 0)
            {
                if (i > start + 1)
                {
                    yield return dumpdir[(start + 1)..i];
                }

                start = i + 1;
            }
        }
    }
}

/// <summary>The member types Backstop writes, by their ustar type flag.</summary>
public enum PaxType : byte
{
    File = (byte)'0',
    HardLink = (byte)'1',
    SymbolicLink = (byte)'2',
    CharacterDevice = (byte)'3',
    BlockDevice = (byte)'4',
    Directory = (byte)'5',
    Fifo = (byte)'6',
}
