namespace Synchro.Bridge.Position;

/// <summary>The ack tracker of the slot reader's current run, where confirmations are delivered.</summary>
internal sealed class ActiveRun
{
    private volatile AckTracker? _tracker;

    public AckTracker? Tracker
    {
        get => _tracker;
        set => _tracker = value;
    }
}
