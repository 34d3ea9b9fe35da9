using MassTransit;

namespace Synchro.Bridge.Changes;

/// <summary>
/// A stretch of the stream in commit order across all tables: one part of a batch (one or more
/// whole committed transactions, or one chunk of a large one), the parts following each other.
/// Published to <see cref="BridgeWireNames.ChangeBatchExchange"/> with the source's name as routing key,
/// for the bucket consumer: it applies the tables' changes in commit order (a child row after its
/// parent, a bucket fed by two tables). Subscribers of single tables use <see cref="ChangeSet"/>,
/// which carry the same changes per table.
/// </summary>
/// <param name="Source">The source's name (by default <c>database-slot</c>); also the routing key.</param>
/// <param name="RunId">Identifies one run of the slot reader; confirmations from other runs are ignored.</param>
/// <param name="BatchSequence">Sequence number of the batch inside the run.</param>
/// <param name="PartIndex">Index of this part inside its batch; parts are in stream order.</param>
/// <param name="PartCount">Number of parts in the batch.</param>
/// <param name="Sets">The part's changes per table; merged by (<see cref="RowChange.CommitLsn"/>, <see cref="RowChange.ChangeIndex"/>) they are the part in commit order.</param>
[MessageUrn(BridgeWireNames.ChangeBatchUrn)]
[EntityName(BridgeWireNames.ChangeBatchExchange)]
public sealed record ChangeBatch(string Source, Guid RunId, long BatchSequence, int PartIndex, int PartCount, IReadOnlyList<ChangeSet> Sets)
{
    /// <summary>The run's epoch (see <see cref="ChangeSet.RunEpoch"/>): a batch of an older run than the latest is superseded.</summary>
    public long RunEpoch { get; init; }

    /// <summary>The source's generation when the batch was read: a batch of an older generation than the latest is superseded whatever its epoch.</summary>
    public long Generation { get; init; }

    /// <summary>
    /// The timeline of the server the batch was read from; 0 from bridges that did not say. A batch
    /// read on a timeline the database has since left (a promoted standby that lagged, a point-in-time
    /// recovery) holds changes of a lost history and is never applied.
    /// </summary>
    public uint Timeline { get; init; }

    /// <summary>
    /// Commit LSN of the last change of the part published before this one in the run; 0 for the run's
    /// first part. A consumer that has not applied that change has missed a part and must not apply
    /// this one (the slot reader re-reads both).
    /// </summary>
    public ulong PreviousCommitLsn { get; init; }

    /// <summary>Change index of the last change of the part published before this one in the run.</summary>
    public int PreviousChangeIndex { get; init; }

    /// <summary>The apply partition whose queue the part goes to (0 with a single partition); the previous part is the partition's.</summary>
    public int Partition { get; init; }

    /// <summary>Key of the apply layout the part was cut for (see <c>ApplyLayout.Key</c>).</summary>
    public string Layout { get; init; } = "1";

    /// <summary>
    /// The part belongs to a batch that every partition waits for (it holds a TRUNCATE): it was published
    /// after every earlier part was applied, and nothing later is published before it is applied.
    /// </summary>
    public bool Barrier { get; init; }
}
