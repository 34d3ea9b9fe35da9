namespace Synchro.Bridge.Changes;

/// <summary>
/// The changes of one table from one or more whole committed transactions, or one chunk of a large
/// transaction, in commit order: the bridge's own form, inside a <see cref="ChangeBatch"/>.
/// Subscribers receive them as <see cref="Synchro.Contracts.ChangeSet"/> (see <c>SubscriberContract</c>).
/// </summary>
/// <param name="Source">The source's name (by default <c>database-slot</c>): the first word of the routing key.</param>
/// <param name="RunId">Identifies one run of the slot reader; confirmations from other runs are ignored.</param>
/// <param name="BatchSequence">Sequence number of the batch inside the run; a batch is split into one or more change sets.</param>
/// <param name="PartIndex">Index of this change set inside its batch.</param>
/// <param name="PartCount">Number of change sets in the batch.</param>
/// <param name="Schema">Schema of the table.</param>
/// <param name="Table">Name of the table.</param>
/// <param name="KeyColumns">The columns that make up <see cref="RowChange.RecordId"/>, in order.</param>
/// <param name="Changes">The row changes, in commit order.</param>
public sealed record ChangeSet(
    string Source,
    Guid RunId,
    long BatchSequence,
    int PartIndex,
    int PartCount,
    string Schema,
    string Table,
    IReadOnlyList<string> KeyColumns,
    [property: System.Text.Json.Serialization.JsonConverter(typeof(CompactChangesConverter))] IReadOnlyList<RowChange> Changes)
{
    /// <summary>
    /// Increases with every run of the slot reader (across processes and restarts). A run re-reads
    /// everything its predecessors did not get acknowledged, so a change set of an older run than the
    /// latest one is superseded: consumers of the sidecar tables skip it instead of applying it again.
    /// </summary>
    public long RunEpoch { get; init; }
}
