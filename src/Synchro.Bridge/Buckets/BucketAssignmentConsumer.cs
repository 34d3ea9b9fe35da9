using MassTransit;
using Microsoft.Extensions.Logging;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sources;
using Synchro.Contracts;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// Assigns each change of a set to buckets, writes the sidecar tables, then confirms with
/// <see cref="ChangeSetApplied"/>. A change set that cannot be applied is never parked and never
/// skipped: it is retried in place, so nothing behind it in the queue can overtake it. A database
/// outage is retried for as long as it lasts; a deterministic failure (bad data, a schema the rule
/// cannot read, a bug) is held and recorded in sync_apply_holds until the operator fixes the cause.
/// </summary>
public sealed class BucketAssignmentConsumer(
    ISidecarStore store,
    BucketRuleSet rules,
    SourceIdentity source,
    IApplyHolds holds,
    ApplyStatus status,
    TimeProvider time,
    ILogger<BucketAssignmentConsumer> logger) : IConsumer<ChangeSet>
{
    private static readonly TimeSpan MaxTransientDelay = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxHeldDelay = TimeSpan.FromSeconds(30);

    public async Task Consume(ConsumeContext<ChangeSet> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var changeSet = context.Message;
        if (changeSet.Source != source.Name)
        {
            // Misrouted: our queue binds only our source's routing keys.
            BucketsLog.ForeignChangeSet(logger, changeSet.Source, source.Name);
            return;
        }

        if (context.Headers.Get<string>(SourceIdentity.OriginHeader) is { } origin && source.HasOrigin && origin != source.Origin)
        {
            // Another database publishes under our name. Applying it would write its rows into our
            // tables; skipping it loses nothing, as its own bridge never gets a confirmation for it.
            status.ForeignSeen(new ForeignSource(origin, time.GetUtcNow()));
            BucketsLog.SourceCollision(logger, source.Name, origin, source.Origin);
            return;
        }

        var table = new TableName(changeSet.Schema, changeSet.Table);
        var cancellationToken = context.CancellationToken;
        ApplyHold? hold = null;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var plan = await store.ApplyAsync(changeSet, rules.For(table), cancellationToken);
                if (hold is not null)
                    await ResumedAsync(table, hold, cancellationToken);
                if (plan.Superseded)
                {
                    // A newer run of the slot reader re-reads these changes; applying them here would only delay it.
                    BucketsLog.Superseded(logger, table, changeSet.RunEpoch, changeSet.BatchSequence, changeSet.PartIndex);
                    return;
                }

                foreach (var failure in plan.Failures)
                    BucketsLog.RuleFailed(logger, table.ToString(), failure.RecordId, failure.Error);
                BucketsLog.Applied(logger, table, changeSet.BatchSequence, changeSet.PartIndex, changeSet.Changes.Count, plan.ChangelogRows, plan.Replayed);

                await context.Publish(new ChangeSetApplied(changeSet.Source, changeSet.RunId, changeSet.BatchSequence, changeSet.PartIndex), cancellationToken);
                return;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                var transient = TransientFailures.IsTransient(e);
                var firstLsn = changeSet.Changes.Count > 0 ? changeSet.Changes[0].CommitLsn : 0;
                hold = new ApplyHold(table.ToString(), changeSet.BatchSequence, changeSet.PartIndex, firstLsn, Describe(e), attempt, hold?.Since ?? time.GetUtcNow());
                status.Failing(new ApplyStall(hold, transient));
                var delay = Backoff(attempt, transient ? MaxTransientDelay : MaxHeldDelay);
                if (transient)
                {
                    BucketsLog.Unreachable(logger, table, hold.Error, delay.TotalSeconds);
                }
                else
                {
                    BucketsLog.Holding(logger, e, table, changeSet.BatchSequence, changeSet.PartIndex, new Lsn(firstLsn), hold.Error, delay.TotalSeconds);
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

    private async Task ResumedAsync(TableName table, ApplyHold hold, CancellationToken cancellationToken)
    {
        status.Applied();
        BucketsLog.Resumed(logger, table, hold.Attempts);
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
    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Applied {Table} batch {Batch} part {Part}: {Changes} changes, {ChangelogRows} changelog rows, {Replayed} replayed")]
    public static partial void Applied(ILogger logger, TableName table, long batch, int part, int changes, int changelogRows, int replayed);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Bucket rule failed for {Table} record {RecordId}: {Error}. The change is kept in sync_rule_failures")]
    public static partial void RuleFailed(ILogger logger, string table, string recordId, string error);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Debug, Message = "Ignored a change set of source {Source}; this consumer applies source {Own}")]
    public static partial void ForeignChangeSet(ILogger logger, string source, string own);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Change sets of another database ({Origin}) arrive under source name {Source}, which is this database's ({Own}); they are not applied here. Give each bridge its own Synchro:Source")]
    public static partial void SourceCollision(ILogger logger, string source, string origin, string own);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Debug, Message = "Skipped a change set of {Table} from superseded run {Epoch} (batch {Batch}, part {Part}); the current run re-reads it")]
    public static partial void Superseded(ILogger logger, TableName table, long epoch, long batch, int part);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "Cannot reach the database to apply {Table} ({Error}); retrying in {Seconds} s, later change sets wait")]
    public static partial void Unreachable(ILogger logger, TableName table, string error, double seconds);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Error, Message = "Holding the change set of {Table} batch {Batch} part {Part} (commit LSN {Lsn}): {Error}. Later changes wait behind it; fix the cause, it is retried in {Seconds} s")]
    public static partial void Holding(ILogger logger, Exception exception, TableName table, long batch, int part, Lsn lsn, string error, double seconds);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Information, Message = "Applied the held change set of {Table} after {Attempts} attempts; resuming")]
    public static partial void Resumed(ILogger logger, TableName table, int attempts);
}
