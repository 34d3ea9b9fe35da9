using MassTransit;
using Synchro.Bridge.Replication;
using Synchro.Contracts;

namespace Synchro.Bridge.Publishing;

/// <summary>
/// Publishes a batch's change sets and returns once the broker has confirmed every one (publisher
/// confirms). Tables go out concurrently; the sets of one table go out one after the other, so
/// a consumer sees each table's changes in commit order.
/// </summary>
internal sealed class ChangeSetPublisher(IBus publishEndpoint)
{
    public Task PublishAsync(OutgoingBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.Parts.Count switch
        {
            0 => Task.CompletedTask,
            1 => publishEndpoint.Publish(batch.Parts[0], cancellationToken),
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
            await publishEndpoint.Publish(set, cancellationToken);
    }
}
