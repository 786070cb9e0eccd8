namespace Backstop.Core.Plugins;

/// <summary>
/// A failure a person can act on: the message names what failed, why, and the fix. It fails the snapshot
/// it belongs to and is recorded as the snapshot's error. Never carries a secret.
/// </summary>
public class BackupException : Exception
{
    public BackupException(string message) : base(message) { }

    public BackupException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Trying again cannot help (a program missing, credentials or a host key refused): never retried.</summary>
    public bool Permanent { get; init; }
}

/// <summary>
/// A restore's destination refuses before anything is read (not empty, a file exists, a file where a folder should
/// be): the copies are not in question, so no other target is tried and no copy is read again.
/// </summary>
public sealed class DestinationException(string message) : BackupException(message);

/// <summary>
/// A format check's helper program (redis-check-rdb, etcdctl) failed to run or to answer: says nothing about the copy's
/// bytes, so a verify records the copy as failed to check, never as corrupt.
/// </summary>
public sealed class CheckToolException(string message) : BackupException(message);
