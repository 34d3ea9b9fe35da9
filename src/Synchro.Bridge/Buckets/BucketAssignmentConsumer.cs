using Synchro.Bridge.Buckets.Rules;
using MassTransit;
using Microsoft.Extensions.Logging;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Changes;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Telemetry;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// Assigns each change of a batch to buckets, in commit order across its tables, writes the sidecar
/// tables, then confirms with <see cref="ChangeSetApplied"/>. A batch that cannot be applied is never
/// parked and never skipped: it is retried in place, so nothing behind it in the queue can overtake
/// it. A database outage is retried for as long as it lasts; a deterministic failure (bad data, a
/// schema the bridge cannot read, a bug) is held and recorded in sync_apply_holds until the operator
/// fixes the cause. A rule that cannot place one row is not such a failure: the row goes to
/// sync_rule_failures and the batch applies.
/// </summary>
public sealed class BucketAssignmentConsumer(
    ISidecarStore store,
    BucketRules rules,
    SourceIdentity source,
    IApplyHolds holds,
    ApplyStatus status,
    TimeProvider time,
    BridgeMetrics metrics,
    ILogger<BucketAssignmentConsumer> logger) : IConsumer<ChangeBatch>
{
    private static readonly TimeSpan MaxTransientDelay = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxHeldDelay = TimeSpan.FromSeconds(30);

    public async Task Consume(ConsumeContext<ChangeBatch> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var batch = context.Message;
        if (batch.Source != source.Name)
        {
            // Misrouted: our queue binds only our source's routing key.
            BucketsLog.ForeignChangeSet(logger, batch.Source, source.Name);
            return;
        }

        if (context.Headers.Get<string>(Synchro.Contracts.WireNames.OriginHeader) is { } origin && source.HasOrigin && origin != source.Origin)
        {
            if (batch.Generation < source.Generation)
            {
                // Read from the cluster this source was restored from: superseded, the new generation reads its own.
                BucketsLog.Superseded(logger, batch.RunEpoch, batch.BatchSequence);
                return;
            }

            // Another database publishes under our name. Applying it would write its rows into our
            // tables; skipping it loses nothing, as its own bridge never gets a confirmation for it.
            status.ForeignSeen(new ForeignSource(origin, time.GetUtcNow()));
            BucketsLog.SourceCollision(logger, source.Name, origin, source.Origin);
            return;
        }

        var tables = string.Join(", ", batch.Sets.Select(s => new TableName(s.Schema, s.Table)).Distinct());
        var cancellationToken = context.CancellationToken;
        ApplyHold? hold = null;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var started = time.GetTimestamp();
                var outcome = await store.ApplyAsync(batch, rules.Set, cancellationToken);
                if (hold is not null)
                    await ResumedAsync(tables, hold, cancellationToken);
                if (outcome.Superseded)
                {
                    // A newer run of the slot reader re-reads these changes; applying them here would only delay it.
                    BucketsLog.Superseded(logger, batch.RunEpoch, batch.BatchSequence);
                    return;
                }

                if (outcome.LeftTimeline is { } now)
                {
                    // Its confirmation never comes: the slot reader's run ends, and the next one reads the new history.
                    BucketsLog.LeftTimeline(logger, batch.BatchSequence, batch.PartIndex, batch.Timeline, now);
                    return;
                }

                if (outcome.PreviousMissing)
                {
                    // Unconfirmed: the slot reader's confirmation deadline ends its run, and the new run re-reads both parts.
                    BucketsLog.PreviousMissing(logger, batch.BatchSequence, batch.PartIndex, new Contracts.Lsn(batch.PreviousCommitLsn), batch.PreviousChangeIndex);
                    return;
                }

                foreach (var failure in outcome.Failures)
                    BucketsLog.RuleFailed(logger, failure.Table, failure.RecordId, failure.Error);
                BucketsLog.Applied(logger, batch.BatchSequence, batch.PartIndex, tables, outcome.Changes, outcome.ChangelogRows, outcome.Skipped);
                metrics.Applied(outcome.Changes - outcome.Skipped, outcome.ChangelogRows, outcome.Failures.Count, time.GetElapsedTime(started));

                await context.Publish(new ChangeSetApplied(batch.Source, batch.RunId, batch.BatchSequence, batch.PartIndex), cancellationToken);
                return;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                var transient = TransientFailures.IsTransient(e);
                var firstLsn = batch.Sets.SelectMany(s => s.Changes).Select(c => c.CommitLsn).DefaultIfEmpty().Min();
                hold = new ApplyHold(tables, batch.BatchSequence, batch.PartIndex, firstLsn, Describe(e), attempt, hold?.Since ?? time.GetUtcNow());
                status.Failing(new ApplyStall(hold, transient));
                metrics.ApplyRetried(transient);
                var delay = Backoff(attempt, transient ? MaxTransientDelay : MaxHeldDelay);
                if (transient)
                {
                    BucketsLog.Unreachable(logger, tables, hold.Error, delay.TotalSeconds);
                }
                else
                {
                    BucketsLog.Holding(logger, e, batch.BatchSequence, batch.PartIndex, tables, new Contracts.Lsn(firstLsn), hold.Error, delay.TotalSeconds);
                    await RecordHoldAsync(hold, cancellationToken);
                }

                await Task.Delay(delay, time, cancellationToken);
            }
        }
    }

    /// <summary>200 ms, 400 ms, ... up to the cap: quick after a blip, quiet during a long outage.</summary>
    internal static TimeSpan Backoff(int attempt, TimeSpan max) =>
        TimeSpan.FromMilliseconds(Math.Min(max.TotalMilliseconds, 200 * Math.Pow(2, Math.Min(attempt - 1, 16))));

    private static string Describe(Exception e) => e is SynchroException ? e.Message : $"{e.GetType().Name}: {e.Message}";

    private async Task RecordHoldAsync(ApplyHold hold, CancellationToken cancellationToken)
    {
        try
        {
            await holds.RecordAsync(source.Name, hold, cancellationToken);
        }
        catch (Exception e) when (TransientFailures.IsTransient(e))
        {
            // Health in this process still names the hold; the record follows on the next attempt.
        }
    }

    private async Task ResumedAsync(string tables, ApplyHold hold, CancellationToken cancellationToken)
    {
        status.Applied();
        BucketsLog.Resumed(logger, tables, hold.Attempts);
        try
        {
            await holds.ClearAsync(source.Name, cancellationToken);
        }
        catch (Exception e) when (TransientFailures.IsTransient(e))
        {
            // A stale hold record only delays the slot reader's deadline; the next hold overwrites it.
        }
    }
}

internal static partial class BucketsLog
{
    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Applied batch {Batch} part {Part} ({Tables}): {Changes} changes, {ChangelogRows} changelog rows, {Skipped} applied before")]
    public static partial void Applied(ILogger logger, long batch, int part, string tables, int changes, int changelogRows, int skipped);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Bucket rule failed for {Table} record {RecordId}: {Error}. The change is kept in sync_rule_failures (synchro-bridge failures list)")]
    public static partial void RuleFailed(ILogger logger, string table, string recordId, string error);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Debug, Message = "Ignored a batch of source {Source}; this consumer applies source {Own}")]
    public static partial void ForeignChangeSet(ILogger logger, string source, string own);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Batches of another database ({Origin}) arrive under source name {Source}, which is this database's ({Own}); they are not applied here. Give each bridge its own Synchro:Source")]
    public static partial void SourceCollision(ILogger logger, string source, string origin, string own);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Debug, Message = "Skipped batch {Batch} of superseded run {Epoch}; the current run re-reads it")]
    public static partial void Superseded(ILogger logger, long epoch, long batch);

    [LoggerMessage(EventId = 2010, Level = LogLevel.Warning, Message = "Batch {Batch} part {Part} was read on timeline {Timeline}, and the database is now on timeline {Now} (a promoted standby, a point-in-time recovery): its changes belong to a history the database left and are not applied; the slot reader reads the new one")]
    public static partial void LeftTimeline(ILogger logger, long batch, int part, uint timeline, uint now);

    [LoggerMessage(EventId = 2009, Level = LogLevel.Warning, Message = "Batch {Batch} part {Part} follows change {Lsn}#{Index}, which was never applied here (a part was lost); it is not applied either, and the slot reader re-reads both")]
    public static partial void PreviousMissing(ILogger logger, long batch, int part, Contracts.Lsn lsn, int index);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "Cannot reach the database to apply changes of {Tables} ({Error}); retrying in {Seconds} s, later batches wait")]
    public static partial void Unreachable(ILogger logger, string tables, string error, double seconds);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Error, Message = "Holding batch {Batch} part {Part} ({Tables}, commit LSN {Lsn}): {Error}. Later changes wait behind it; fix the cause, it is retried in {Seconds} s")]
    public static partial void Holding(ILogger logger, Exception exception, long batch, int part, string tables, Contracts.Lsn lsn, string error, double seconds);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Information, Message = "Applied the held batch ({Tables}) after {Attempts} attempts; resuming")]
    public static partial void Resumed(ILogger logger, string tables, int attempts);
}
