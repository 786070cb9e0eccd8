using Backstop.Core.Plugins;
using Backstop.Core.Tar;

namespace Backstop.Sources.Trees;

/// <summary>
/// Re-reads the tar and counts the files and bytes it stores (<c>changed_files</c>, <c>changed_bytes</c>: at a full,
/// every file), which must be what the capture counted; for an archive written before chains (no folder carries a
/// dumpdir) also <c>files</c> and <c>bytes</c>. Backstop's own pax reader: it checks every header's checksum,
/// requires the end-of-archive blocks, and skips content without copying where the stream allows (the run's
/// check); a stored copy read by <c>verify --deep</c> is hostile input to it.
/// </summary>
internal sealed class TreeValidator : IArtifactValidator
{
    public Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken) =>
        Task.Run<IReadOnlyDictionary<string, long>>(() =>
        {
            long files = 0, bytes = 0;
            var chained = false;
            var reader = new PaxReader(content);
            while (reader.Next() is { } entry)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (entry.Type is PaxType.File)
                {
                    files++;
                    bytes += entry.Size;
                }
                else if (entry.Type == PaxType.HardLink)
                {
                    files++;
                }
                else if (entry.DumpDir is not null)
                {
                    chained = true;
                }
            }

            var facts = new Dictionary<string, long> { ["changed_files"] = files, ["changed_bytes"] = bytes };
            if (!chained)
            {
                facts["files"] = files;
                facts["bytes"] = bytes;
            }

            return facts;
        }, cancellationToken);
}
