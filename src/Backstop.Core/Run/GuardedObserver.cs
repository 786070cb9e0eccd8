namespace Backstop.Core.Run;

/// <summary>
/// Shields the pipeline from its audience: a display that fails (a closed pipe, a full log disk) never fails or
/// undoes a backup. What it could not say is lost; what was recorded is not.
/// </summary>
internal sealed class GuardedObserver(RunObserver inner) : RunObserver
{
    public override void Notice(string message) => Guard(() => inner.Notice(message));

    public override void SourceStarted(string source, string snapshotId) => Guard(() => inner.SourceStarted(source, snapshotId));

    public override void ArtifactStarted(ArtifactProgress progress) => Guard(() => inner.ArtifactStarted(progress));

    public override void ArtifactFinished(ArtifactProgress progress) => Guard(() => inner.ArtifactFinished(progress));

    public override void SourceFinished(Catalog.SnapshotInfo result) => Guard(() => inner.SourceFinished(result));

    private static void Guard(Action say)
    {
        try
        {
            say();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // Decision: the outcome is in the catalog and the exit code; a broken display must not change it.
        }
    }
}
