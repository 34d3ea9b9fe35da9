using MassTransit;

namespace Synchro.Contracts;

/// <summary>
/// Every change of one batch (one or more whole committed transactions, or one chunk of a large
/// one) across all tables, as the batch's change sets. Published once per batch to
/// <see cref="WireNames.ChangeBatchExchange"/> with the source's name as routing key, for the bucket
/// consumer: it needs the tables' changes together to apply them in commit order (a child row's
/// parent, a bucket fed by two tables). Subscribers of single tables use <see cref="ChangeSet"/>.
/// </summary>
/// <param name="Source">The source's name (by default <c>database-slot</c>); also the routing key.</param>
/// <param name="RunId">Identifies one run of the slot reader; confirmations from other runs are ignored.</param>
/// <param name="BatchSequence">Sequence number of the batch inside the run.</param>
/// <param name="Sets">The batch's change sets, the same ones published per table; merged by (<see cref="RowChange.CommitLsn"/>, <see cref="RowChange.ChangeIndex"/>) they are the batch in commit order.</param>
[MessageUrn(WireNames.ChangeBatchUrn)]
[EntityName(WireNames.ChangeBatchExchange)]
public sealed record ChangeBatch(string Source, Guid RunId, long BatchSequence, IReadOnlyList<ChangeSet> Sets)
{
    /// <summary>The run's epoch (see <see cref="ChangeSet.RunEpoch"/>): a batch of an older run than the latest is superseded.</summary>
    public long RunEpoch { get; init; }
}
