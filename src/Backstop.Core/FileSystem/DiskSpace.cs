namespace Backstop.Core.FileSystem;

public static class DiskSpace
{
    /// <summary>Free bytes for an unprivileged writer on the file system holding <paramref name="path"/> (or its nearest existing parent).</summary>
    public static long FreeBytes(string path)
    {
        var p = Path.GetFullPath(path);
        while (!Directory.Exists(p))
        {
            p = Path.GetDirectoryName(p) ?? "/";
        }

        return new DriveInfo(p).AvailableFreeSpace;
    }

    /// <summary>True when an I/O error means the file system is full (ENOSPC, or EDQUOT).</summary>
    public static bool IsDiskFull(Exception e) =>
        e is IOException io && (io.HResult is 28 or 122 || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase)
                                || io.Message.Contains("Disk quota", StringComparison.OrdinalIgnoreCase));
}
