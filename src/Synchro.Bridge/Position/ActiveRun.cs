using Synchro.Bridge.Sidecar;
namespace Synchro.Bridge.Position;

/// <summary>
/// The slot reader's current run, where confirmations are delivered, and what health needs to know
/// about it: why the last run ended when it was interrupted (cleared once a new run acknowledges
/// progress), whether this instance waits as a standby, and the change set downstream holds.
/// </summary>
internal sealed class ActiveRun
{
    private volatile AckTracker? _tracker;
    private volatile Interruption? _interruption;
    private volatile StandbyState? _standby;
    private volatile ApplyHold? _held;
    private int _confirmationsLost;

    private volatile string? _snapshotProgress;
    private volatile string? _publicationDrift;
    private volatile PublishWait? _publishing;
    private volatile ChangelogMove? _changelogMove;
    private volatile Replication.ByteBudget? _budget;

    /// <summary>The run's in-flight byte budget, whose wait health watches.</summary>
    public Replication.ByteBudget? Budget
    {
        get => _budget;
        set => _budget = value;
    }

    /// <summary>The move of pending changelog rows an acknowledgement waits for; null between moves.</summary>
    public ChangelogMove? ChangelogMove
    {
        get => _changelogMove;
        set => _changelogMove = value;
    }

    /// <summary>The batch whose publishing waits for the broker's confirmations; null between publishes.</summary>
    private volatile Publishing.PublishFault? _lastPublishFault;

    public PublishWait? Publishing
    {
        get => _publishing;
        set => _publishing = value;
    }

    /// <summary>The last publish the broker or the client refused (MassTransit retries it).</summary>
    public Publishing.PublishFault? LastPublishFault => _lastPublishFault;

    public void PublishFaulted(Publishing.PublishFault fault) => _lastPublishFault = fault;

    /// <summary>How the publication differs from the configured tables, found while running; null when it does not.</summary>
    public string? PublicationDrift
    {
        get => _publicationDrift;
        set => _publicationDrift = value;
    }

    /// <summary>The running snapshot, backfill or rebuild and how far it got; null when none runs.</summary>
    public string? SnapshotProgress
    {
        get => _snapshotProgress;
        set => _snapshotProgress = value;
    }

    public AckTracker? Tracker
    {
        get => _tracker;
        set => _tracker = value;
    }

    /// <summary>Set when a run ended on an error and replication is being retried.</summary>
    public Interruption? LastInterruption => _interruption;

    /// <summary>Set while another instance holds the slot and this one waits to take over.</summary>
    public StandbyState? Standby => _standby;

    /// <summary>The change set the bucket consumer reports it holds, while confirmations wait for it.</summary>
    public ApplyHold? Held => _held;

    public void Interrupted(string reason, DateTimeOffset at) => _interruption = _interruption is { } earlier ? earlier with { Reason = reason } : new Interruption(reason, at);

    public void Progressed()
    {
        _interruption = null;
        _held = null;
    }

    public void WaitingAsStandby(string holder, DateTimeOffset at) => _standby = _standby is { } earlier ? earlier with { Holder = holder } : new StandbyState(holder, at);

    public void Active() => _standby = null;

    public void HeldDownstream(ApplyHold? hold) => _held = hold;

    /// <summary>The confirmation queue was re-created (a broker interruption): confirmations in flight may be gone.</summary>
    public void ConfirmationsMayBeLost() => Interlocked.Exchange(ref _confirmationsLost, 1);

    /// <summary>True once after <see cref="ConfirmationsMayBeLost"/>.</summary>
    public bool TakeConfirmationsLost() => Interlocked.Exchange(ref _confirmationsLost, 0) == 1;
}

/// <param name="Reason">The error that ended the last run.</param>
/// <param name="Since">When the first of the consecutive interruptions happened.</param>
internal sealed record Interruption(string Reason, DateTimeOffset Since);

/// <param name="Batch">The batch being published.</param>
/// <param name="Since">When its publishing began.</param>
internal sealed record PublishWait(long Batch, DateTimeOffset Since);

/// <param name="Holder">The session that holds the slot.</param>
/// <param name="Since">When this instance started waiting.</param>
internal sealed record StandbyState(string Holder, DateTimeOffset Since);
