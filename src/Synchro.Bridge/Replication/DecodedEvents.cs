using Synchro.Contracts;

namespace Synchro.Bridge.Replication;

/// <summary>
/// What the decoder hands to the batcher: our own copies of pgoutput messages, detached from
/// Npgsql's reused buffers.
/// </summary>
internal abstract record DecodedEvent;

internal sealed record TransactionBegun(uint TransactionId, ulong CommitLsn, DateTimeOffset CommittedAt) : DecodedEvent;

/// <summary>The transaction was replayed from another origin (logical replication from elsewhere).</summary>
internal sealed record OriginSet(string Name) : DecodedEvent;

internal sealed record RowChanged(
    RelationSchema Relation,
    ChangeOperation Operation,
    string RecordId,
    ColumnValue[]? NewRow,
    ColumnValue[]? OldRow,
    string? OldRecordId) : DecodedEvent;

internal sealed record TablesTruncated(RelationSchema[] Relations) : DecodedEvent;

internal sealed record MessageEmitted(string Prefix, byte[] Content, bool Transactional, ulong Lsn) : DecodedEvent;

/// <param name="CommitLsn">LSN of the commit record.</param>
/// <param name="EndLsn">End of the transaction in WAL: the position to confirm once it is applied.</param>
internal sealed record TransactionCommitted(ulong CommitLsn, ulong EndLsn) : DecodedEvent;
