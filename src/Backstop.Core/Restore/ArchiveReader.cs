using System.Security.Cryptography;
using Backstop.Core.Catalog;
using Backstop.Core.Plugins;
using Backstop.Core.Sealing;
using Backstop.Core.Sealing.Age;
using Backstop.Core.Storage;

namespace Backstop.Core.Restore;

/// <summary>
/// A source's continuous archive as the catalog records it, read from the targets: each file from the first target that
/// holds it verified (another when one fails), decrypted and decompressed into place under a temporary name, and kept
/// only when its content hashes to what was recorded when it was pushed.
/// </summary>
internal sealed class ArchiveReader(string source, IReadOnlyList<ArchiveInfo> archive, IReadOnlyDictionary<string, ITarget> targets, IReadOnlyList<AgeIdentity> identities,
    IReadOnlyList<RecoveryMarker> markers) : IArchiveReader
{
    public IReadOnlyList<RecoveryMarker> Markers => markers;

    public IReadOnlyList<ArchiveFile> Files { get; } = archive.Where(a => a.Copies.Any(c => c.State == CopyState.Verified))
        .Select(a => a.AsFile()).ToList();

    public async Task FetchAsync(string name, string path, CancellationToken cancellationToken)
    {
        var file = archive.Single(a => a.Name == name);
        var problems = new List<string>();
        foreach (var copy in file.Copies.Where(c => c.State == CopyState.Verified && targets.ContainsKey(c.Target)))
        {
            var key = Layout.ArchiveKey(source, file.Folder, file.StoredFile);
            var temp = path + ".part";
            try
            {
                File.Delete(temp);
                var (read, why) = await CopyRead.OpenAsync(targets[copy.Target], key, cancellationToken).ConfigureAwait(false);
                if (read is null)
                {
                    problems.Add(why!.Problem);
                    continue;
                }

                string sha;
                await using (read)
                await using (var content = new Streams.BoundedReadStream(Sealed.Open(read.Stored, file.StoredFile, identities), file.RawBytes,
                                 () => new BackupException($"{CopyRead.Where(targets[copy.Target], key)} decodes to more than the {file.RawBytes} bytes recorded")))
                await using (var output = new FileStream(temp, new FileStreamOptions
                             {
                                 Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                             }))
                using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
                {
                    var buffer = new byte[1 << 16];
                    int n;
                    while ((n = await content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                    {
                        hash.AppendData(buffer, 0, n);
                        await output.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                    }

                    sha = Convert.ToHexStringLower(hash.GetHashAndReset());
                }

                if (sha != file.Sha256)
                {
                    problems.Add($"{CopyRead.Where(targets[copy.Target], key)} does not hold what was archived (SHA-256 {sha[..16]}…, recorded {file.Sha256[..16]}…)");
                    continue;
                }

                File.Move(temp, path);
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException and not SealKeyException)
            {
                problems.Add($"'{copy.Target}': {e.Message}");
            }
            finally
            {
                File.Delete(temp);
            }
        }

        throw new BackupException($"{name} of '{source}' could not be read from any target{(problems.Count > 0 ? ": " + string.Join("; ", problems) : "")}");
    }
}
