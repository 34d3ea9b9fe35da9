namespace Synchro.Bridge.Position;

/// <summary>
/// The slot reader's current run, where confirmations are delivered, and why the last one ended
/// when it was interrupted (cleared once a new run acknowledges progress).
/// </summary>
internal sealed class ActiveRun
{
    private volatile AckTracker? _tracker;
    private volatile Interruption? _interruption;

    public AckTracker? Tracker
    {
        get => _tracker;
        set => _tracker = value;
    }

    /// <summary>Set when a run ended on an error and replication is being retried.</summary>
    public Interruption? LastInterruption => _interruption;

    public void Interrupted(string reason, DateTimeOffset at) => _interruption = _interruption is { } earlier ? earlier with { Reason = reason } : new Interruption(reason, at);

    public void Progressed() => _interruption = null;
}

/// <param name="Reason">The error that ended the last run.</param>
/// <param name="Since">When the first of the consecutive interruptions happened.</param>
internal sealed record Interruption(string Reason, DateTimeOffset Since);
