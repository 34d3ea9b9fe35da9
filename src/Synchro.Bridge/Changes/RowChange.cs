namespace Synchro.Bridge.Changes;

/// <summary>One row change, as committed in PostgreSQL.</summary>
/// <param name="CommitLsn">Commit LSN of the transaction that made the change.</param>
/// <param name="ChangeIndex">Position of the change inside its transaction (0-based, over all tables). With <paramref name="CommitLsn"/> it identifies the change uniquely.</param>
/// <param name="TransactionId">PostgreSQL transaction id.</param>
/// <param name="CommittedAt">Commit timestamp.</param>
/// <param name="Operation">Insert, update or delete.</param>
/// <param name="RecordId">Canonical record id from the key: the key's text for a one-column key, a JSON array of texts for a composite key; empty for a truncate.</param>
/// <param name="NewRow">The row after the change (insert, update); null for a delete.</param>
/// <param name="OldRow">The old key or old row when PostgreSQL sent one (delete, REPLICA IDENTITY FULL); otherwise null.</param>
/// <param name="Origin">Replication origin of the transaction, when it was replayed from elsewhere (PostgreSQL's Origin message); otherwise null.</param>
/// <remarks>An update that changes a row's key arrives as two changes: a delete of the old record id, then an insert of the new one.</remarks>
public sealed record RowChange(
    ulong CommitLsn,
    int ChangeIndex,
    uint TransactionId,
    DateTimeOffset CommittedAt,
    ChangeOperation Operation,
    string RecordId,
    IReadOnlyList<ColumnValue>? NewRow,
    IReadOnlyList<ColumnValue>? OldRow,
    string? Origin = null)
{
    /// <summary><see cref="OldRow"/> holds only the key (pgoutput's key tuple): its other columns are placeholders, not NULLs.</summary>
    public bool OldRowIsKey { get; init; }

    /// <summary>For the insert that carries a key change's new identity: the record id the row had before (the delete just before it).</summary>
    public string? PreviousRecordId { get; init; }
}
