using MassTransit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;
using Synchro.Contracts;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// Assigns each change of a set to buckets, writes the sidecar tables, then confirms with
/// <see cref="ChangeSetApplied"/>. A failure leaves the message unconfirmed (retried, then moved to
/// the error queue), which holds the acknowledged LSN where it is.
/// </summary>
public sealed class BucketAssignmentConsumer(
    ISidecarStore store,
    BucketRuleSet rules,
    IOptions<SynchroOptions> options,
    ILogger<BucketAssignmentConsumer> logger) : IConsumer<ChangeSet>
{
    private readonly string _source = options.Value.Replication.SlotName;

    public async Task Consume(ConsumeContext<ChangeSet> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var changeSet = context.Message;
        if (changeSet.Source != _source)
        {
            // Another bridge's change set on a shared exchange: its own consumer applies it.
            BucketsLog.ForeignChangeSet(logger, changeSet.Source, _source);
            return;
        }

        var table = new TableName(changeSet.Schema, changeSet.Table);
        var plan = await store.ApplyAsync(changeSet, rules.For(table), context.CancellationToken);
        foreach (var failure in plan.Failures)
            BucketsLog.RuleFailed(logger, table.ToString(), failure.RecordId, failure.Error);
        BucketsLog.Applied(logger, table, changeSet.BatchSequence, changeSet.PartIndex, changeSet.Changes.Count, plan.Changelog.Count, plan.Replayed);

        await context.Publish(new ChangeSetApplied(changeSet.Source, changeSet.RunId, changeSet.BatchSequence, changeSet.PartIndex), context.CancellationToken);
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
}
