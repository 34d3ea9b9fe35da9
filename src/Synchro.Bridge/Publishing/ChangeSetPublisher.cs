using MassTransit;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Publishing;

/// <summary>
/// Publishes a batch and returns once the broker has confirmed it (publisher confirms): its parts in
/// commit order across tables (<see cref="ChangeBatch"/>) for the bucket consumer, and its change
/// sets per table for subscribers. The parts are published mandatory: without a bucket queue bound for the source it is
/// an error (retried), never silently dropped by the broker. Change sets are not: a table nobody
/// subscribes to is normal. Tables go out concurrently; the sets of one table one after the other,
/// so a subscriber sees each table's changes in commit order. Everything carries the source's
/// origin, so a consumer can tell two databases apart that share a source name.
/// </summary>
internal sealed class ChangeSetPublisher(IBus publishEndpoint, SourceIdentity source)
{
    public async Task PublishAsync(OutgoingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        // Each partition's parts one after the other, so its consumer receives them in stream order, and
        // each table's sets likewise; partitions and tables side by side, so the batch waits for the
        // broker's confirmations once, not once per stage.
        await Task.WhenAll(batch.BucketParts.GroupBy(p => p.Partition).Select(partition => PublishPartitionAsync(partition, cancellationToken))
            .Concat(batch.Parts.GroupBy(p => (p.Schema, p.Table)).Select(table => PublishInOrderAsync(table, cancellationToken))));
    }

    /// <summary>Publishes the batch's logical decoding messages, in stream order, each confirmed by the broker.</summary>
    public async Task PublishMessagesAsync(OutgoingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        foreach (var message in batch.Messages)
            await publishEndpoint.Publish(message, context => SetSourceHeaders(context), cancellationToken);
    }

    private async Task PublishInOrderAsync(IEnumerable<ChangeSet> sets, CancellationToken cancellationToken)
    {
        foreach (var set in sets.SelectMany(SubscriberContract.From))
            await publishEndpoint.Publish(set, context => SetSourceHeaders(context), cancellationToken);
    }

    /// <summary>Who the message comes from, and in which generation of the source's history.</summary>
    private void SetSourceHeaders(PublishContext context)
    {
        context.Headers.Set(Contracts.WireNames.OriginHeader, source.Origin);
        context.Headers.Set(Contracts.WireNames.GenerationHeader, source.Generation);
        context.Headers.Set(Contracts.WireNames.GenerationStartHeader, new Contracts.Lsn(source.GenerationStart).ToString());
    }

    private async Task PublishPartitionAsync(IEnumerable<ChangeBatch> parts, CancellationToken cancellationToken)
    {
        foreach (var part in parts)
            await PublishBatchAsync(part, cancellationToken);
    }

    private async Task PublishBatchAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        var origin = source.Origin;
        try
        {
            await publishEndpoint.Publish(batch, context =>
            {
                context.Mandatory = true;
                context.Headers.Set(Synchro.Contracts.WireNames.OriginHeader, origin);
            }, cancellationToken);
        }
        catch (MessageReturnedException e)
        {
            throw new SynchroTransientException(
                $"RabbitMQ has no queue bound for source {batch.Source}{(batch.Partition == 0 ? "" : $" partition {batch.Partition}")} on exchange {BridgeWireNames.ChangeBatchExchange}: the bucket consumer has not declared its queue yet. Start a bridge with the Buckets role and the same Synchro:Apply:Partitions; publishing is retried.", e);
        }
    }
}
