namespace Backstop.Cli;

/// <summary>The program's exit codes, mapped in one place.</summary>
internal static class ExitCodes
{
    /// <summary>All good.</summary>
    public const int Ok = 0;

    /// <summary>Something failed: a backup, a copy, a check, or status with any source not ok.</summary>
    public const int Failed = 1;

    /// <summary>Usage or configuration error.</summary>
    public const int Usage = 2;

    /// <summary>Every snapshot is valid, but some is degraded: a copy failed while others met <c>min_copies</c>, or an
    /// expectation warned (restic's "created, but incomplete").</summary>
    public const int Degraded = 3;

    /// <summary>Another run holds the lock (EX_TEMPFAIL).</summary>
    public const int Locked = 75;

    /// <summary>Interrupted by SIGINT (128 + 2).</summary>
    public const int Interrupted = 130;
}
