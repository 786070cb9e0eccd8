using System.Globalization;
using System.Text;
using Backstop.Core.FileSystem;

namespace Backstop.Targets.S3;

/// <summary>
/// The multipart uploads one process has begun on one bucket, so that the next run can abort those its process left
/// when it died (kill -9, a power cut): a multipart upload that is neither completed nor aborted keeps its parts, billed
/// and invisible to a listing of objects, and not every S3 server lists uploads in progress. One append-only file per
/// process in the target's private folder: <c>intent KEY</c> before the upload is begun (a process killed before it
/// learns the upload's id leaves that), <c>begin ID KEY</c> once it has the id, both flushed to disk before the first
/// part is sent, and <c>end ID</c> once the upload is completed or aborted. A torn last line (the process died writing
/// it) is ignored. What no journal can see (the machine's disk lost with it, an upload begun by another tool) is for the
/// bucket's lifecycle rule <c>AbortIncompleteMultipartUpload</c>.
/// </summary>
internal sealed class MultipartJournal(string folder)
{
    internal const string Prefix = "multipart-";
    private readonly Lock _gate = new();
    private readonly HashSet<string> _open = new(StringComparer.Ordinal);
    private HeldFile? _file;
    private int _intents;

    /// <summary>An upload of <paramref name="key"/> is about to begin: if the process dies before it has the id, the next run looks it up by key.</summary>
    public void Intent(string key)
    {
        lock (_gate)
        {
            Append($"intent {key}\n");
            _intents++;
        }
    }

    public void Begin(string uploadId, string key)
    {
        lock (_gate)
        {
            Append($"begin {uploadId} {key}\n");
            _open.Add(uploadId);
            _intents--;
        }
    }

    /// <summary>The upload is completed or aborted; the journal goes once none is open (a process leaves none behind).</summary>
    public void End(string uploadId)
    {
        lock (_gate)
        {
            if (!_open.Remove(uploadId) || _file is null)
            {
                return; // never journaled (its begin could not be written)
            }

            Append($"end {uploadId}\n");
            DeleteIfIdle();
        }
    }

    private void DeleteIfIdle()
    {
        if (_open.Count == 0 && _intents <= 0 && _file is not null)
        {
            _file.Delete();
            _file = null;
        }
    }

    private void Append(string line)
    {
        if (_file is null)
        {
            PrivateFolder.Ensure(folder);
            _file = HeldFile.Create(Path.Combine(folder, Stale.Name(Prefix) + ".journal"));
        }

        _file.Append(Encoding.UTF8.GetBytes(line));
    }

    /// <summary>
    /// The journals whose process is gone (their lock is free; a pid could be reused, as every container's first process
    /// is 1), each now held by this process, with the uploads its owner began and never ended (upload id → key), the
    /// keys of uploads it was about to begin when it died (their id never reached the journal), and when it was last
    /// written. The caller deletes a journal it has dealt with, or disposes it to leave it for the next run.
    /// </summary>
    public static IEnumerable<(HeldFile File, IReadOnlyDictionary<string, string> Open, IReadOnlyList<string> Intents, DateTime Written)> Dead(string folder)
    {
        if (!Directory.Exists(folder))
        {
            yield break;
        }

        foreach (var path in Directory.GetFiles(folder, Prefix + "*.journal"))
        {
            var written = File.GetLastWriteTimeUtc(path);
            if (HeldFile.TakeAbandoned(path) is not { } held)
            {
                continue;
            }

            var open = new Dictionary<string, string>(StringComparer.Ordinal);
            var intents = new List<string>();
            foreach (var line in held.ReadAllText().Split('\n')[..^1]) // the part after the last newline is a torn write
            {
                var parts = line.Split(' ', 3);
                if (line.StartsWith("intent ", StringComparison.Ordinal) && line.Length > 7)
                {
                    intents.Add(line[7..]);
                }
                else if (parts is ["begin", var id, var key] && id.Length > 0 && key.Length > 0)
                {
                    open[id] = key;
                    intents.Remove(key);
                }
                else if (parts is ["end", var ended])
                {
                    open.Remove(ended);
                }
            }

            yield return (held, open, intents, written);
        }
    }

    public static string Describe(int count) => count.ToString(CultureInfo.InvariantCulture) + (count == 1 ? " upload" : " uploads");
}
