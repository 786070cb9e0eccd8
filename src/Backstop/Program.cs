using System.CommandLine;
using System.Runtime.InteropServices;
using Backstop.Core.Config;
using Backstop.Core.Locking;
using Backstop.Core.Plugins;

namespace Backstop.Cli;

internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // Everything Backstop writes (catalog, staging, local targets, evidence, logs) is its user's alone unless a
        // mode is given on purpose (the metrics textfile 0644; group: for the catalog).
        Core.FileSystem.PosixUsers.SetUmask(0b000_111_111);
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            cancel.Cancel();
        });

        var root = CommandLine.Build();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // A mistyped verb or option: say which was meant, and not the errors it caused ("Required command was not provided").
            var command = parse.CommandResult.Command;
            var unknown = parse.UnmatchedTokens.FirstOrDefault();
            if (unknown is not null)
            {
                var names = unknown.StartsWith('-')
                    ? command.Options.Concat(root.Options.Where(o => o.Recursive)).SelectMany(o => o.Aliases.Prepend(o.Name))
                    : command.Subcommands.SelectMany(c => c.Aliases.Prepend(c.Name));
                var meant = Core.Text.Spelling.Closest(unknown.Split('=')[0], names);
                var what = unknown.StartsWith('-') ? "option" : command.Subcommands.Count > 0 ? "command" : "argument";
                await Console.Error.WriteLineAsync($"backstop: error: unknown {what} '{unknown}'" +
                                                   (meant is not null ? $"; did you mean '{meant}'?" : "") +
                                                   $" (backstop {(command == root ? "" : command.Name + " ")}--help lists them)").ConfigureAwait(false);
                return ExitCodes.Usage;
            }

            foreach (var error in parse.Errors)
            {
                await Console.Error.WriteLineAsync($"backstop: error: {error.Message}").ConfigureAwait(false);
            }

            await Console.Error.WriteLineAsync("run 'backstop --help' for usage").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        if (parse.GetValue(CommandLine.Json))
        {
            Rendering.JsonOutput.Claim(); // stdout is the one JSON document; anything else printed goes to stderr
        }

        try
        {
            var code = await parse.InvokeAsync(new InvocationConfiguration
            {
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null,
            }, cancel.Token).ConfigureAwait(false);
            if (Rendering.JsonOutput.Claimed && !Rendering.JsonOutput.Written)
            {
                // A verb with no JSON form of its own (metrics, schedule install, config reference): its text went to
                // stderr, and stdout is still one document.
                Rendering.JsonOutput.Write(new Rendering.NoJsonFormDocument(code, "this verb has no JSON form; its text is on stderr"));
            }

            return code;
        }
        catch (ConfigException e)
        {
            foreach (var error in e.Errors)
            {
                await Console.Error.WriteLineAsync($"backstop: error: {error.Message}").ConfigureAwait(false);
            }

            if (e.Errors.Count > 1)
            {
                await Console.Error.WriteLineAsync($"backstop: {e.Errors.Count} errors in the configuration").ConfigureAwait(false);
            }

            Rendering.JsonOutput.Failure(string.Join("; ", e.Errors.Select(x => x.Message)), ExitCodes.Usage);
            return ExitCodes.Usage;
        }
        catch (LockHeldException e)
        {
            await Console.Error.WriteLineAsync($"backstop: {e.Message}").ConfigureAwait(false);
            Rendering.JsonOutput.Failure(e.Message, ExitCodes.Locked);
            return ExitCodes.Locked;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("backstop: interrupted; what it had written was removed (a run's snapshot is recorded as failed; a drill's scratch place is gone)").ConfigureAwait(false);
            Rendering.JsonOutput.Failure("interrupted", ExitCodes.Interrupted);
            return ExitCodes.Interrupted;
        }
        catch (System.Data.Common.DbException e)
        {
            // The catalog's engine failed mid-way (a restarted server, a dropped connection): what was not committed is not recorded.
            var message = $"the catalog failed mid-way: {e.Message}; nothing unproven was recorded as good, and the next run records a snapshot left running as interrupted";
            await Console.Error.WriteLineAsync($"backstop: error: {message}").ConfigureAwait(false);
            Rendering.JsonOutput.Failure(message, ExitCodes.Failed);
            return ExitCodes.Failed;
        }
        catch (BackupException e)
        {
            await Console.Error.WriteLineAsync($"backstop: error: {e.Message}").ConfigureAwait(false);
            Rendering.JsonOutput.Failure(e.Message, ExitCodes.Failed);
            return ExitCodes.Failed;
        }
        catch (IOException e) when (Backstop.Core.FileSystem.DiskSpace.IsDiskFull(e))
        {
            var message = $"a disk Backstop writes to is full ({e.Message}): free space where the catalog, its private folder and staging are (df -h) and run again; nothing unproven was recorded as good";
            await Console.Error.WriteLineAsync($"backstop: error: {message}").ConfigureAwait(false);
            Rendering.JsonOutput.Failure(message, ExitCodes.Failed);
            return ExitCodes.Failed;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Decision: whatever else went wrong is a failure with its message, never a stack trace. The catalog
            // holds what was proven before it happened.
            await Console.Error.WriteLineAsync($"backstop: error: {e.Message} ({e.GetType().Name}); nothing unproven was recorded as good").ConfigureAwait(false);
            if (Environment.GetEnvironmentVariable("BACKSTOP_DEBUG") == "1")
            {
                await Console.Error.WriteLineAsync(e.ToString()).ConfigureAwait(false); // for developers; never by default
            }

            Rendering.JsonOutput.Failure(e.Message, ExitCodes.Failed);
            return ExitCodes.Failed;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
