using Microsoft.Extensions.Logging;

namespace Backstop.Core.Serve;

/// <summary>
/// Every line serve logs, source-generated: an event id and a level for each kind of line (journald and Kubernetes
/// filter by them), the values as named fields, nothing formatted when the level is off. The CLI's own output (the
/// verbs' tables and progress) is not logging and stays with the verbs.
/// </summary>
internal static partial class ServeLog
{
    [LoggerMessage(1, LogLevel.Information, "{Job} {Source}: asked for now (dashboard)")]
    public static partial void AskedForNow(ILogger logger, string job, string source);

    [LoggerMessage(2, LogLevel.Warning, "no source has a schedule (schedule: \"0 3 * * *\" per source or in policy): serve only evaluates states and notifies")]
    public static partial void NothingScheduled(ILogger logger);

    [LoggerMessage(3, LogLevel.Information, "{Source}: receiving its WAL (wal: {{receive: true}})")]
    public static partial void Receiving(ILogger logger, string source);

    [LoggerMessage(4, LogLevel.Information, "stopping: waiting for {Count} job(s) to record their interruption")]
    public static partial void Stopping(ILogger logger, int count);

    [LoggerMessage(5, LogLevel.Information, "stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(6, LogLevel.Information, "{Source}: catch-up: {Reason}; running now")]
    public static partial void CatchUp(ILogger logger, string source, string reason);

    [LoggerMessage(7, LogLevel.Information, "{Job}: next at {At}")]
    public static partial void NextAt(ILogger logger, string job, string at);

    [LoggerMessage(8, LogLevel.Information, "{Job}: sent")]
    public static partial void Sent(ILogger logger, string job);

    [LoggerMessage(9, LogLevel.Error, "{Job}: failed: {Error}")]
    public static partial void JobFailed(ILogger logger, string job, string error);

    [LoggerMessage(10, LogLevel.Warning, "{Job}: the slot of {Slot} is skipped: a job of the same source is still running")]
    public static partial void SkippedBusy(ILogger logger, string job, string slot);

    [LoggerMessage(11, LogLevel.Warning, "{Job}: the slot of {Slot} is skipped: no lock session on the shared catalog yet (it is opened again within a minute)")]
    public static partial void SkippedNoSession(ILogger logger, string job, string slot);

    [LoggerMessage(12, LogLevel.Warning, "{Job}: the slot of {Slot} is skipped: {Holder} holds the source's lock")]
    public static partial void SkippedLocked(ILogger logger, string job, string slot, string holder);

    [LoggerMessage(13, LogLevel.Information, "{Job}: stopped by serve's shutdown")]
    public static partial void JobStopped(ILogger logger, string job);

    [LoggerMessage(14, LogLevel.Information, "{Source}: run started")]
    public static partial void RunStarted(ILogger logger, string source);

    [LoggerMessage(15, LogLevel.Information, "{Source}: drill started")]
    public static partial void DrillStarted(ILogger logger, string source);

    [LoggerMessage(16, LogLevel.Information, "{Source}: drill passed, restored in {Time}")]
    public static partial void DrillPassed(ILogger logger, string source, string time);

    [LoggerMessage(17, LogLevel.Error, "{Source}: drill FAILED: {Error}")]
    public static partial void DrillFailed(ILogger logger, string source, string? error);

    [LoggerMessage(18, LogLevel.Information, "{Scenario}: rehearsal started")]
    public static partial void RehearsalStarted(ILogger logger, string scenario);

    [LoggerMessage(19, LogLevel.Information, "{Scenario}: rehearsal passed, the estate back in {Time}")]
    public static partial void RehearsalPassed(ILogger logger, string scenario, string time);

    [LoggerMessage(20, LogLevel.Error, "{Scenario}: rehearsal FAILED: {Error}")]
    public static partial void RehearsalFailed(ILogger logger, string scenario, string? error);

    [LoggerMessage(21, LogLevel.Information, "verify --deep started")]
    public static partial void VerifyStarted(ILogger logger);

    [LoggerMessage(22, LogLevel.Information, "verify --deep: {Copies} copies read back, {Bad} not verified")]
    public static partial void VerifyFinished(ILogger logger, int copies, int bad);

    [LoggerMessage(23, LogLevel.Information, "{Job}: the run lock is free again; the slot of {Slot} runs now")]
    public static partial void LockFree(ILogger logger, string job, string slot);

    [LoggerMessage(24, LogLevel.Information, "{Job}: waiting: {Reason}")]
    public static partial void Waiting(ILogger logger, string job, string reason);

    [LoggerMessage(25, LogLevel.Information, "{Source}: recovery markers are written again (marker {Seq} at {Label})")]
    public static partial void MarkersAgain(ILogger logger, string source, long seq, string label);

    [LoggerMessage(26, LogLevel.Error, "evaluating the sources' states failed: {Error}")]
    public static partial void StatesFailed(ILogger logger, string error);

    [LoggerMessage(27, LogLevel.Information, "this agent ({Machine}) now leads the fleet's duties (notifications, digests, rehearsals)")]
    public static partial void Leads(ILogger logger, string? machine);

    [LoggerMessage(28, LogLevel.Information, "this agent no longer leads the fleet's duties; {Holder} does")]
    public static partial void LeadsNoLonger(ILogger logger, string holder);

    [LoggerMessage(29, LogLevel.Warning, "the catalog cannot be reached ({Error}); this agent stops leading until it can")]
    public static partial void CatalogUnreachable(ILogger logger, string error);

    [LoggerMessage(30, LogLevel.Error, "could not record '{Message}': {Error}")]
    public static partial void NotRecorded(ILogger logger, string message, string error);

    [LoggerMessage(33, LogLevel.Warning, "{Source}: the recovery marker could not be written ({Error}); drills recover to older markers until it can")]
    public static partial void MarkerFailing(ILogger logger, string source, string error);

    /// <summary>A line that also goes to the catalog's events, at the event's level.</summary>
    [LoggerMessage(EventId = 31, Message = "{Message}")]
    public static partial void Event(ILogger logger, LogLevel level, string message);

    /// <summary>A drill's or a rehearsal's progress, and a notifier's notice: lines those write in their own words.</summary>
    [LoggerMessage(32, LogLevel.Information, "{Line}")]
    public static partial void Progress(ILogger logger, string line);

    /// <summary>The level of a catalog event's level name.</summary>
    public static LogLevel Level(string eventLevel) => eventLevel switch
    {
        "error" => LogLevel.Error,
        "warn" => LogLevel.Warning,
        _ => LogLevel.Information,
    };
}
