using MassTransit;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sources;
using Synchro.Contracts;

namespace Synchro.Bridge.Publishing;

/// <summary>
/// Publishes a batch's change sets and returns once the broker has confirmed every one (publisher
/// confirms). Tables go out concurrently; the sets of one table go out one after the other, so
/// a consumer sees each table's changes in commit order. Publishing is mandatory: a change set no
/// queue is bound for is an error (retried), never silently dropped by the broker. Each carries its
/// source's origin, so a consumer can tell two databases apart that share a source name.
/// </summary>
internal sealed class ChangeSetPublisher(IBus publishEndpoint, SourceIdentity source)
{
    public Task PublishAsync(OutgoingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.Parts.Count switch
        {
            0 => Task.CompletedTask,
            1 => PublishOneAsync(batch.Parts[0], cancellationToken),
            _ => Task.WhenAll(batch.Parts.GroupBy(p => (p.Schema, p.Table)).Select(table => PublishInOrderAsync(table, cancellationToken))),
        };
    }

    /// <summary>Publishes the batch's logical decoding messages, in stream order, each confirmed by the broker.</summary>
    public async Task PublishMessagesAsync(OutgoingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        foreach (var message in batch.Messages)
            await publishEndpoint.Publish(message, cancellationToken);
    }

    private async Task PublishInOrderAsync(IEnumerable<ChangeSet> sets, CancellationToken cancellationToken)
    {
        foreach (var set in sets)
            await PublishOneAsync(set, cancellationToken);
    }

    private async Task PublishOneAsync(ChangeSet set, CancellationToken cancellationToken)
    {
        var origin = source.Origin;
        try
        {
            await publishEndpoint.Publish(set, context =>
            {
                context.Mandatory = true;
                context.Headers.Set(SourceIdentity.OriginHeader, origin);
            }, cancellationToken);
        }
        catch (MessageReturnedException e)
        {
            throw new SynchroTransientException(
                $"RabbitMQ has no queue bound for routing key {WireNames.RoutingKey(set.Source, set.Schema, set.Table)}: the bucket consumer of source {set.Source} has not declared its queue yet. Start a bridge with the Buckets role; publishing is retried.", e);
        }
    }
}
