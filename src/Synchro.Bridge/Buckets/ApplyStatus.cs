using Synchro.Bridge.Sidecar;
namespace Synchro.Bridge.Buckets;

/// <summary>What the bucket consumer of this process is stuck on, if anything; health reads it.</summary>
public sealed class ApplyStatus
{
    private volatile ApplyStall? _stall;
    private volatile ForeignSource? _foreign;

    /// <summary>The change set being retried, or null while change sets apply.</summary>
    public ApplyStall? Stall => _stall;

    /// <summary>The last change set of another database that arrived under this source's name.</summary>
    public ForeignSource? LastForeign => _foreign;

    public void Failing(ApplyStall stall) => _stall = stall;

    public void Applied() => _stall = null;

    public void ForeignSeen(ForeignSource foreign) => _foreign = foreign;
}

/// <param name="Transient">True while the database (or broker) is unreachable; false for a change set that fails deterministically.</param>
public sealed record ApplyStall(ApplyHold Hold, bool Transient);

/// <param name="Origin">The other database's origin (system identifier/database/slot).</param>
/// <param name="At">When its change set arrived.</param>
public sealed record ForeignSource(string Origin, DateTimeOffset At);
