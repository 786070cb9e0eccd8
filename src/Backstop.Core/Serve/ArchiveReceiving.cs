using Backstop.Core.Catalog;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.Run;

namespace Backstop.Core.Serve;

/// <summary>
/// <c>wal: {receive: true}</c> in <c>serve</c>: the source's receiver (pg_receivewal on its slot) runs into a private
/// spool folder beside the catalog, and every complete file there is pushed in name order through the same path as
/// <c>wal-push</c> (stored on min_copies targets, read back, recorded), then deleted. A receiver that stops is started
/// again after a pause that grows to a minute; the first failure of a streak is said (log and event), and so is the
/// recovery. Never under the run lock, like the server's own archiving.
/// </summary>
public sealed class ArchiveReceiving(BackstopConfig config, PluginRegistry plugins, SourceDefinition def, IArchiveReceiver receiver, Action<string> log)
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
            catch (Exception e) when (e is BackupException or IOException)
            {
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

    /// <summary>Pushes the spool's complete files in name order; stops at the first that cannot be stored (kept for the next look).</summary>
    private async Task PushCompleteAsync(CancellationToken ct)
    {
        var ready = Directory.EnumerateFiles(Spool).Select(Path.GetFileName).OfType<string>().Where(receiver.IsComplete).Order(StringComparer.Ordinal).ToList();
        foreach (var name in ready)
        {
            var path = Path.Combine(Spool, name);
            try
            {
                using var catalog = CatalogStore.Open(config.CatalogPath);
                var result = await new ArchivePusher(config, plugins, catalog).PushAsync(def, path, ct).ConfigureAwait(false);
                if (!result.Succeeded)
                {
                    Say("warn", $"{def.Name}: received {name}, but it is on {result.Verified} of the {result.Needed} target(s) min_copies needs; kept in the spool and tried again: " +
                                string.Join("; ", result.Problems));
                    return;
                }

                File.Delete(path);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is BackupException or IOException or Microsoft.Data.Sqlite.SqliteException)
            {
                Say("error", $"{def.Name}: received {name}, but it could not be archived ({e.Message}); kept in the spool and tried again");
                return;
            }
        }
    }

    private void Say(string level, string message)
    {
        log(message);
        try
        {
            using var catalog = CatalogStore.Open(config.CatalogPath);
            catalog.AddEvent(level, def.Name, null, message);
        }
        catch (Exception e) when (e is IOException or Microsoft.Data.Sqlite.SqliteException)
        {
            log($"could not record '{message}': {e.Message}");
        }
    }
}
