using System.Text.Json.Serialization;
using Backstop.Core.Catalog;
using Backstop.Core.Drill;

namespace Backstop.Cli.Rendering;

// Every document a verb prints with --json, typed: the field names (snake_case on the wire) and their types are
// the interface scripts and monitoring read, so they are declared here, one record per document and per nested object,
// never made up as anonymous objects where a verb happens to print them (a test fails on one). status --json's
// contract (DESIGN) is StatusDocument. Core's own result records (a drill's, a rehearsal's) are printed as they are.

/// <summary>A verb that failed before it wrote its document.</summary>
internal sealed record ErrorDocument(string Error, int ExitCode);

/// <summary>A verb with no JSON form, run with --json.</summary>
internal sealed record NoJsonFormDocument(int ExitCode, string Output);

// run

internal sealed record RunDocument(IReadOnlyList<RunSnapshotDocument> Snapshots);

internal sealed record RunSnapshotDocument(string Snapshot, string Source, string State, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, long RawBytes,
    long StoredBytes, int VerifiedCopies, IReadOnlyDictionary<string, long> Facts, IReadOnlyList<string> Warnings, IReadOnlyList<string> Degraded, string? Error);

// list, show

internal sealed record ListDocument(IReadOnlyList<SnapshotDocument> Snapshots, int HiddenFailed);

internal sealed record SnapshotDocument(string Snapshot, string Source, string Kind, string State, string Condition, bool Valid, DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt, string Host, int Level, string? Parent, long RawBytes, long StoredBytes, IReadOnlyList<string> VerifiedCopies,
    IReadOnlyDictionary<string, long> Facts, IReadOnlyList<string> Warnings, string? Error, IReadOnlyList<ArtifactDocument> Artifacts,
    IReadOnlyList<SnapshotDrillDocument> Drills);

internal sealed record ArtifactDocument(string Name, string File, long RawBytes, long StoredBytes, string Sha256, string Compression,
    IReadOnlyDictionary<string, long> Facts, IReadOnlyList<string> Reported, int Level, IReadOnlyList<CopyDocument> Copies);

internal sealed record CopyDocument(string Target, string State, DateTimeOffset CheckedAt, string? Error);

internal sealed record SnapshotDrillDocument(DateTimeOffset At, bool Passed, double Seconds, long? RtoSeconds, bool? RtoMet, string? Error, string? Evidence);

// ls

internal sealed record LsDocument(string Snapshot, string Source, IReadOnlyList<LsEntryDocument> Entries);

internal sealed record LsEntryDocument(string Artifact, string Name, string Type, string Mode, long Uid, long Gid, long Size, DateTimeOffset Mtime, string? Link,
    IReadOnlyList<string>? Xattrs, bool? Acl, bool? Sparse, int Level, string StoredIn);

// verify

internal sealed record VerifyDocument(bool Deep, int Checked, int Failed, IReadOnlyList<VerifiedCopyDocument> Copies, IReadOnlyList<LackingCopyDocument> Lacking);

internal sealed record VerifiedCopyDocument(string Source, string Snapshot, string Artifact, string Target, string State, string? Error);

internal sealed record LackingCopyDocument(string Source, string Snapshot, string Target, string State, string Error);

// restore

internal sealed record RestoreDocument(string Snapshot, string Source, string? To, IReadOnlyList<string> Unrestorable, IReadOnlyList<string> Notes,
    IReadOnlyList<RestoredArtifactDocument> Artifacts);

internal sealed record RestoredArtifactDocument(string Artifact, string From, IReadOnlyList<string> SkippedCopies, IReadOnlyDictionary<string, long> Recorded,
    IReadOnlyDictionary<string, long> Found, string? Mismatch);

internal sealed record ExplainDocument(string Snapshot, string Source, string? Point, IReadOnlyList<ExplainStepDocument> Steps, IReadOnlyList<string> Archive);

internal sealed record ExplainStepDocument(string Artifact, string Snapshot, int Level, string File, string Sha256, string Check, string Restore);

// drill, rehearse

internal sealed record DrillsDocument(IReadOnlyList<DrillResult> Drills);

// prune

internal sealed record PruneDocument(bool DryRun, IReadOnlyList<PruneLineDocument> Snapshots);

internal sealed record PruneLineDocument(string Source, string Target, string Snapshot, DateTimeOffset Time, string Action, string Why);

// doctor

internal sealed record DoctorDocument(IReadOnlyList<DoctorCheckDocument> Checks);

internal sealed record DoctorCheckDocument(string Check, string Subject, string Status, string Message, string? Fix);

// config check

internal sealed record ConfigErrorsDocument(bool Valid, IReadOnlyList<ConfigErrorDocument> Errors);

internal sealed record ConfigErrorDocument(string? File, long? Line, long? Column, string Message, bool UnknownKey);

internal sealed record ConfigCheckDocument(bool Valid, IReadOnlyList<SecretDocument> Secrets, string File, string Catalog, string Staging, string Machine,
    IReadOnlyList<ConfigTargetDocument> Targets, IReadOnlyList<ConfigSourceDocument> Sources);

internal sealed record SecretDocument(string Reference, string Location, bool Resolved, string? Error);

internal sealed record ConfigTargetDocument(string Name, string Kind);

internal sealed record ConfigSourceDocument(string Name, string Kind, string Machine, bool RunsHere, IReadOnlyList<string> Targets, int MinCopies, long RpoSeconds,
    IReadOnlyList<string> Expectations);

// keygen, notify test, catalog rebuild

internal sealed record KeygenDocument(string Recipient, string IdentityFile);

internal sealed record NotifyTestDocument(IReadOnlyList<NotifierTestDocument> Notifiers);

internal sealed record NotifierTestDocument(string Name, bool Delivered, string? Error);

internal sealed record RebuildDocument(int Snapshots, int Sources, IReadOnlyList<string> Problems);

// status (the contract: DESIGN.md, "status --json")

/// <summary>
/// Sources, notifiers and scenarios; with a shared catalog also the machines (absent otherwise, so a single machine's
/// document is exactly the contract's).
/// </summary>
internal sealed record StatusDocument(IReadOnlyList<StatusSourceDocument> Sources, IReadOnlyList<StatusNotifierDocument> Notifiers,
    IReadOnlyList<ScenarioStatus> Scenarios)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<MachineDocument>? Machines { get; init; }
}

internal sealed record MachineDocument(string Name, DateTimeOffset SeenAt, long? EverySeconds, bool Stale);

internal sealed record StatusNotifierDocument(string Name, string Kind, NotifierFailureDocument? Failing);

internal sealed record NotifierFailureDocument(DateTimeOffset At, string Event, string? Subject, string? Error);

internal sealed record StatusDrillDocument(string Snapshot, bool Passed, double Seconds, DateTimeOffset At, long? RtoSeconds, bool? RtoMet, string? Target);

/// <summary>One source of the contract; <see cref="Archive"/> only for a source that keeps a continuous archive (wal:).</summary>
internal sealed record StatusSourceDocument(string Name, string Kind, string State, LastValid? LastValid, LastRun? LastRun, long RpoSeconds, bool RpoMet,
    StatusDrillDocument? LastDrill)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public StatusArchiveDocument? Archive { get; init; }

    /// <summary>The machine that runs the source: with a shared catalog only (one process runs every source otherwise).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Machine { get; init; }
}

/// <summary>The window a restore to a point reaches (from the oldest base that becomes consistent to the newest file reached without a gap), the current RPO, and what is wrong with it.</summary>
internal sealed record StatusArchiveDocument(DateTimeOffset? From, DateTimeOffset? To, string? FromSnapshot, string? NewestFile, int Files, long? RpoSeconds,
    long MaxRpoSeconds, bool RpoMet, IReadOnlyList<string> Problems);
