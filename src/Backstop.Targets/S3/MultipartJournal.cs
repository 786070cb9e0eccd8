using System.Globalization;
using System.Text;
using Backstop.Core.Util;

namespace Backstop.Targets.S3;

/// <summary>
/// The multipart uploads one process has begun on one bucket, so that the next run can abort those its process left
/// when it died (kill -9, a power cut): a multipart upload that is neither completed nor aborted keeps its parts, billed
/// and invisible to a listing of objects, and not every S3 server lists uploads in progress. One append-only file per
/// process in the target's private folder: <c>begin ID KEY</c> written and flushed to disk before the first part is
/// sent, <c>end ID</c> once the upload is completed or aborted. A torn last line (the process died writing it) is
/// ignored. What no journal can see (the machine's disk lost with it, an upload begun by another tool) is for the
/// bucket's lifecycle rule <c>AbortIncompleteMultipartUpload</c>.
/// </summary>
internal sealed class MultipartJournal(string folder)
{
    internal const string Prefix = "multipart-";
    private readonly Lock _gate = new();
    private string? _path;

    private readonly HashSet<string> _open = new(StringComparer.Ordinal);

    public void Begin(string uploadId, string key)
    {
        lock (_gate)
        {
            Append($"begin {uploadId} {key}\n");
            _open.Add(uploadId);
        }
    }

    /// <summary>The upload is completed or aborted; the journal goes once none is open (a process leaves none behind).</summary>
    public void End(string uploadId)
    {
        lock (_gate)
        {
            if (!_open.Remove(uploadId) || _path is null)
            {
                return; // never journaled (its begin could not be written)
            }

            if (_open.Count > 0)
            {
                Append($"end {uploadId}\n");
                return;
            }

            File.Delete(_path);
            _path = null;
        }
    }

    private void Append(string line)
    {
        lock (_gate)
        {
            if (_path is null)
            {
                PrivateFolder.Ensure(folder);
                _path = Path.Combine(folder, Stale.Name(Prefix) + ".journal");
            }

            using var file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read, 1, FileOptions.None);
            file.Write(Encoding.UTF8.GetBytes(line));
            file.Flush(flushToDisk: true);
        }
    }

    /// <summary>The journals of processes that are gone, each with the uploads it began and never ended (upload id → key).</summary>
    public static IEnumerable<(string Path, IReadOnlyDictionary<string, string> Open)> Dead(string folder)
    {
        if (!Directory.Exists(folder))
        {
            yield break;
        }

        foreach (var path in Directory.GetFiles(folder, Prefix + "*.journal"))
        {
            if (!Stale.OwnerIsGone(System.IO.Path.GetFileName(path), Prefix))
            {
                continue;
            }

            var open = new Dictionary<string, string>(StringComparer.Ordinal);
            var text = File.ReadAllText(path);
            foreach (var line in text.Split('\n')[..^1]) // the part after the last newline is a torn write
            {
                var parts = line.Split(' ', 3);
                if (parts is ["begin", var id, var key] && id.Length > 0 && key.Length > 0)
                {
                    open[id] = key;
                }
                else if (parts is ["end", var ended])
                {
                    open.Remove(ended);
                }
            }

            yield return (path, open);
        }
    }

    public static string Describe(int count) => count.ToString(CultureInfo.InvariantCulture) + (count == 1 ? " upload" : " uploads");
}
