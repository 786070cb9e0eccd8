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
