using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Backstop.Core.FileSystem;

namespace Backstop.Core.Tar;

/// <summary>
/// POSIX ACLs between the kernel's form (the <c>system.posix_acl_access</c> and <c>system.posix_acl_default</c>
/// extended attributes: a version, then tag, permissions and id per entry) and the text GNU tar stores as
/// <c>SCHILY.acl.access</c>/<c>SCHILY.acl.default</c> and reads back with <c>acl_from_text</c> (one entry per line,
/// <c>user:1000:r--</c>). Ids are written as numbers, so a restore on a machine whose names differ gives the same ids.
/// </summary>
public static class PosixAcl
{
    public const string AccessXattr = "system.posix_acl_access";
    public const string DefaultXattr = "system.posix_acl_default";
    private const uint Version = 2;
    private const uint Undefined = uint.MaxValue;

    private static readonly (ushort Tag, string Name, bool HasId)[] Tags =
    [
        (0x01, "user", false), (0x02, "user", true), (0x04, "group", false), (0x08, "group", true), (0x10, "mask", false), (0x20, "other", false),
    ];

    /// <summary>The text form of a kernel ACL; throws <see cref="FormatException"/> on a value that is not one.</summary>
    public static string ToText(ReadOnlySpan<byte> xattr)
    {
        if (xattr.Length < 4 || (xattr.Length - 4) % 8 != 0 || BinaryPrimitives.ReadUInt32LittleEndian(xattr) != Version)
        {
            throw new FormatException("not a POSIX ACL (version 2) value");
        }

        var text = new StringBuilder();
        for (var at = 4; at < xattr.Length; at += 8)
        {
            var tag = BinaryPrimitives.ReadUInt16LittleEndian(xattr[at..]);
            var perm = BinaryPrimitives.ReadUInt16LittleEndian(xattr[(at + 2)..]);
            var id = BinaryPrimitives.ReadUInt32LittleEndian(xattr[(at + 4)..]);
            var kind = Array.FindIndex(Tags, t => t.Tag == tag);
            if (kind < 0 || perm > 7)
            {
                throw new FormatException($"a POSIX ACL entry has an unknown tag {tag} or permissions {perm}");
            }

            if (text.Length > 0)
            {
                text.Append('\n');
            }

            text.Append(Tags[kind].Name).Append(':');
            if (Tags[kind].HasId)
            {
                text.Append(id.ToString(CultureInfo.InvariantCulture));
            }

            text.Append(':').Append((perm & 4) != 0 ? 'r' : '-').Append((perm & 2) != 0 ? 'w' : '-').Append((perm & 1) != 0 ? 'x' : '-');
        }

        return text.ToString();
    }

    /// <summary>
    /// The kernel form of an ACL text (entries separated by newlines or commas, ids as numbers or names resolved here,
    /// <c>#</c> comments ignored), sorted as the kernel requires; throws <see cref="FormatException"/> naming the entry
    /// it cannot read.
    /// </summary>
    public static byte[] FromText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var entries = new List<(ushort Tag, ushort Perm, uint Id)>();
        foreach (var raw in text.Split('\n', ','))
        {
            var entry = (raw.Contains('#', StringComparison.Ordinal) ? raw[..raw.IndexOf('#', StringComparison.Ordinal)] : raw).Trim();
            if (entry.Length == 0)
            {
                continue;
            }

            var parts = entry.Split(':');
            if (parts.Length != 3 || parts[2].Length != 3)
            {
                throw new FormatException($"ACL entry '{entry}' is not TAG:ID:PERMS");
            }

            var name = parts[0] switch { "u" => "user", "g" => "group", "m" => "mask", "o" => "other", var tag => tag };
            var hasId = parts[1].Length > 0;
            var kind = Array.FindIndex(Tags, t => t.Name == name && t.HasId == hasId);
            if (kind < 0)
            {
                throw new FormatException($"ACL entry '{entry}' has an unknown tag");
            }

            var perm = (ushort)((parts[2][0] == 'r' ? 4 : 0) | (parts[2][1] == 'w' ? 2 : 0) | (parts[2][2] == 'x' ? 1 : 0));
            var id = !hasId ? Undefined
                : uint.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n
                : (uint?)(name == "user" ? PosixUsers.Lookup(parts[1])?.Uid : PosixUsers.GroupId(parts[1]))
                  ?? throw new FormatException($"ACL entry '{entry}' names {name} '{parts[1]}', which this machine does not know");
            entries.Add((Tags[kind].Tag, perm, id));
        }

        entries.Sort((a, b) => a.Tag != b.Tag ? a.Tag.CompareTo(b.Tag) : a.Id.CompareTo(b.Id));
        var value = new byte[4 + (8 * entries.Count)];
        BinaryPrimitives.WriteUInt32LittleEndian(value, Version);
        for (var i = 0; i < entries.Count; i++)
        {
            var at = value.AsSpan(4 + (8 * i));
            BinaryPrimitives.WriteUInt16LittleEndian(at, entries[i].Tag);
            BinaryPrimitives.WriteUInt16LittleEndian(at[2..], entries[i].Perm);
            BinaryPrimitives.WriteUInt32LittleEndian(at[4..], entries[i].Id);
        }

        return value;
    }
}
