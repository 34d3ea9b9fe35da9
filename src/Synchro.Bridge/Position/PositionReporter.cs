using Microsoft.Extensions.Logging;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Position;

/// <summary>
/// Moves acknowledged LSNs to durable storage and then to PostgreSQL, in that order: the flush LSN
/// PostgreSQL sees never passes the one we stored. When nothing is in flight it also acknowledges
/// the server's keepalive position, so writes to unpublished tables do not pin WAL. Before either,
/// changelog rows that apply partitions left pending up to that LSN enter sync_changelog.
/// </summary>
/// <param name="standbys">The standbys that copy or read the slot, which must have the sidecar writes before the slot is told (see <see cref="StandbyFlush"/>).</param>
internal sealed class PositionReporter(IPositionStore store, Func<ulong, CancellationToken, Task> beforeAcknowledging, StandbyFlush standbys, string slotName, TimeSpan idleInterval, TimeProvider time, ActiveRun activeRun, ILogger logger)
{
    private ulong _reported;

    // Stored, but not yet told to the slot, each with the primary's WAL position a standby must
    // reach first (oldest first): a standby that copies or reads the slot was behind. A fixed target
    // per position, so that a busy primary whose WAL always runs ahead still lets the slot move.
    private readonly Queue<(ulong Lsn, ulong Target)> _waitingForStandby = new();
    private const int StandbyLagReported = 16;
    private const int MaxWaitingForStandby = 4096;

    /// <summary>The LSN last acknowledged to PostgreSQL in this run (0 before the first).</summary>
    public ulong Reported => Interlocked.Read(ref _reported);

    public async Task RunAsync(AckTracker tracker, SlotReader reader, CancellationToken cancellationToken)
    {
        (long MessagesSeen, ulong Lsn)? idleCandidate = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (_waitingForStandby.Count > 0)
                await TellWaitingAsync(reader, cancellationToken);
            if (await WaitForAckAsync(tracker, cancellationToken))
            {
                ulong lsn = 0;
                while (tracker.Acknowledged.TryRead(out var next))
                    lsn = next;
                await ReportAsync(reader, lsn, cancellationToken);
                idleCandidate = null;
                continue;
            }

            // A keepalive position is only trusted when no message arrived across a whole interval
            // after it was read: Npgsql may raise LastReceivedLsn just before handing us a Begin.
            var idle = tracker.IsIdle && !reader.InTransaction && tracker.AcknowledgedLsn >= reader.LastCommitEnd;
            if (!idle)
            {
                idleCandidate = null;
                continue;
            }

            var seen = reader.MessagesSeen;
            if (idleCandidate is { } candidate && candidate.MessagesSeen == seen && candidate.Lsn > _reported)
                await ReportAsync(reader, candidate.Lsn, cancellationToken);
            idleCandidate = (seen, reader.LastReceivedLsn);
        }
    }

    private async Task<bool> WaitForAckAsync(AckTracker tracker, CancellationToken cancellationToken)
    {
        using var interval = new CancellationTokenSource(idleInterval, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, interval.Token);
        try
        {
            return await tracker.Acknowledged.WaitToReadAsync(linked.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private async Task ReportAsync(SlotReader reader, ulong lsn, CancellationToken cancellationToken)
    {
        if (lsn <= _reported)
            return;
        await beforeAcknowledging(lsn, cancellationToken);
        await store.SaveAsync(slotName, lsn, cancellationToken);
        if (await standbys.TargetAsync(cancellationToken) is not { } target)
        {
            _waitingForStandby.Clear();
            await TellAsync(reader, lsn, cancellationToken);
            return;
        }

        _waitingForStandby.Enqueue((lsn, target));
        await TellWaitingAsync(reader, cancellationToken);
        // A few waiting is a standby's ordinary lag; more says it falls behind. Bounded: dropping the
        // oldest only means the slot is told a later position, once its target is reached.
        if (_waitingForStandby.Count == StandbyLagReported)
            PositionLog.StandbyBehind(logger, slotName, new Contracts.Lsn(lsn));
        if (_waitingForStandby.Count > MaxWaitingForStandby)
            _waitingForStandby.Dequeue();
    }

    /// <summary>Tells the slot the newest stored position whose sidecar writes the standbys have.</summary>
    private async Task TellWaitingAsync(SlotReader reader, CancellationToken cancellationToken)
    {
        var reached = await standbys.ReachedAsync(cancellationToken);
        ulong? tell = null;
        while (_waitingForStandby.TryPeek(out var next) && next.Target <= reached)
            tell = _waitingForStandby.Dequeue().Lsn;
        if (tell is { } lsn)
            await TellAsync(reader, lsn, cancellationToken);
    }

    private async Task TellAsync(SlotReader reader, ulong lsn, CancellationToken cancellationToken)
    {
        await reader.ReportFlushedAsync(lsn, cancellationToken);
        Interlocked.Exchange(ref _reported, lsn);
        activeRun.Progressed();
        PositionLog.Acknowledged(logger, slotName, new Contracts.Lsn(lsn));
    }
}

internal static partial class PositionLog
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Slot {Slot} acknowledged up to {Lsn}")]
    public static partial void Acknowledged(ILogger logger, string slot, Contracts.Lsn lsn);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Slot {Slot} is told {Lsn} once the standbys that copy or read it (synchronized_standby_slots, the decoding standby) have the sidecar writes behind it")]
    public static partial void StandbyBehind(ILogger logger, string slot, Contracts.Lsn lsn);
}
