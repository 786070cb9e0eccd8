using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Run;
using Microsoft.Extensions.Logging;

namespace Backstop.Core.Serve;

/// <summary>
/// <c>wal: {receive: true}</c> in <c>serve</c>: the source's receiver (pg_receivewal on its slot) runs into a private
/// spool folder beside the catalog, and every complete file there is pushed in name order through the same path as
/// <c>wal-push</c> (stored on min_copies targets, read back, recorded), then deleted. A receiver that stops is started
/// again after a pause that grows to a minute; the first failure of a streak is said (log and event), and so is the
/// recovery. Never under the run lock, like the server's own archiving.
/// </summary>
public sealed class ArchiveReceiving(BackstopConfig config, PluginRegistry plugins, SourceDefinition def, IArchiveReceiver receiver, ILogger log)
{
    /// <summary>How often the spool is looked at while the receiver runs (tests shorten it).</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromSeconds(1);

    public string Spool => Path.Combine(def.StateDirectory, "wal-spool");

    public async Task RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(Spool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var pause = TimeSpan.FromSeconds(2);
        string? failing = null;
        while (!ct.IsCancellationRequested)
        {
            var receiving = receiver.ReceiveAsync(Spool, ct);
            while (!receiving.IsCompleted)
            {
                await PushCompleteAsync(ct).ConfigureAwait(false);
                await Task.WhenAny(receiving, Task.Delay(Poll, ct)).ConfigureAwait(false);
            }

            await PushCompleteAsync(ct).ConfigureAwait(false);
            try
            {
                await receiving.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Whatever stopped it (the server, a secret that cannot be read, the spool's disk), it is said once and tried again.
                if (failing is null)
                {
                    Say("warn", $"{def.Name}: receiving the WAL stopped ({e.Message}); trying again, the server keeps what is not received for the slot");
                }

                failing = e.Message;
            }

            try
            {
                await Task.Delay(pause, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            pause = TimeSpan.FromSeconds(Math.Min(60, pause.TotalSeconds * 2));
        }
    }

    private readonly HashSet<string> _pushed = new(StringComparer.Ordinal);
    private string? _pushFailing;

    /// <summary>
    /// Pushes the spool's complete files in name order; stops at the first that cannot be stored (kept for the next
    /// look; said once until one is stored again). The newest stored segment stays in the spool: pg_receivewal starts
    /// after the newest complete file it finds there (before PostgreSQL 15, with none, at the server's current position,
    /// which would skip what the slot kept).
    /// </summary>
    private async Task PushCompleteAsync(CancellationToken ct)
    {
        var ready = Directory.EnumerateFiles(Spool).Select(Path.GetFileName).OfType<string>().Where(receiver.IsComplete).Order(StringComparer.Ordinal).ToList();
        var newestSegment = ready.LastOrDefault(n => !n.Contains('.', StringComparison.Ordinal));
        foreach (var name in ready)
        {
            var path = Path.Combine(Spool, name);
            try
            {
                if (!_pushed.Contains(name))
                {
                    using var catalog = CatalogStore.Open(config);
                    var result = await new ArchivePusher(config, plugins, catalog).PushAsync(def, path, ct).ConfigureAwait(false);
                    if (!result.Succeeded)
                    {
                        FailedPush($"{def.Name}: received {name}, but it is on {result.Verified} of the {result.Needed} target(s) min_copies needs; kept in the spool and tried again: " +
                                   string.Join("; ", result.Problems));
                        return;
                    }

                    _pushed.Add(name);
                    if (_pushFailing is not null)
                    {
                        _pushFailing = null;
                        Say("info", $"{def.Name}: the received WAL is archived again ({name})");
                    }
                }

                if (name != newestSegment)
                {
                    File.Delete(path);
                    _pushed.Remove(name);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                FailedPush($"{def.Name}: received {name}, but it could not be archived ({e.Message}); kept in the spool and tried again");
                return;
            }
        }
    }

    private void FailedPush(string message)
    {
        if (_pushFailing is null)
        {
            Say("error", message);
        }

        _pushFailing = message;
    }

    private void Say(string level, string message)
    {
        ServeLog.Event(log, ServeLog.Level(level), message);
        try
        {
            using var catalog = CatalogStore.Open(config);
            catalog.AddEvent(level, def.Name, null, message);
        }
        catch (Exception e) when (e is IOException or System.Data.Common.DbException)
        {
            ServeLog.NotRecorded(log, message, e.Message);
        }
    }
}
