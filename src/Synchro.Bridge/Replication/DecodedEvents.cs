using Synchro.Contracts;

namespace Synchro.Bridge.Replication;

/// <summary>
/// What the decoder hands to the batcher: our own copies of pgoutput messages, detached from
/// Npgsql's reused buffers.
/// </summary>
internal abstract record DecodedEvent;

internal sealed record TransactionBegun(uint TransactionId, ulong CommitLsn, DateTimeOffset CommittedAt) : DecodedEvent;

internal sealed record RowChanged(
    TableName Table,
    ChangeOperation Operation,
    string RecordId,
    ColumnValue[]? NewRow,
    ColumnValue[]? OldRow,
    string? OldRecordId) : DecodedEvent;

/// <param name="CommitLsn">LSN of the commit record.</param>
/// <param name="EndLsn">End of the transaction in WAL: the position to confirm once it is applied.</param>
internal sealed record TransactionCommitted(ulong CommitLsn, ulong EndLsn) : DecodedEvent;
