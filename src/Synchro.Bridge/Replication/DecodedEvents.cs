using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Replication;

/// <summary>
/// What the decoder hands to the batcher: our own copies of pgoutput messages, detached from
/// Npgsql's reused buffers.
/// </summary>
internal abstract record DecodedEvent
{
    /// <summary>Roughly the memory the event holds until it is confirmed downstream; bounds the in-flight window in bytes.</summary>
    public virtual long Bytes => 0;

    /// <summary>Estimated bytes of a row image: UTF-16 text plus per-object overhead.</summary>
    internal static long SizeOf(ColumnValue[]? row)
    {
        if (row is null)
            return 0;
        long bytes = 32;
        foreach (var value in row)
            bytes += 64 + 2L * ((value.Text?.Length ?? 0) + value.Name.Length);
        return bytes;
    }
}

internal sealed record TransactionBegun(uint TransactionId, ulong CommitLsn, DateTimeOffset CommittedAt) : DecodedEvent;

/// <summary>The transaction was replayed from another origin (logical replication from elsewhere).</summary>
internal sealed record OriginSet(string Name) : DecodedEvent;

internal sealed record RowChanged(
    RelationSchema Relation,
    ChangeOperation Operation,
    string RecordId,
    ColumnValue[]? NewRow,
    ColumnValue[]? OldRow,
    string? OldRecordId) : DecodedEvent
{
    /// <summary><see cref="OldRow"/> is pgoutput's key tuple: only the key columns are values.</summary>
    public bool OldRowIsKey { get; init; }

    public override long Bytes { get; } = 128 + SizeOf(NewRow) + SizeOf(OldRow);
}

internal sealed record TablesTruncated(RelationSchema[] Relations) : DecodedEvent
{
    public override long Bytes => 128L * Relations.Length;
}

internal sealed record MessageEmitted(string Prefix, byte[] Content, bool Transactional, ulong Lsn) : DecodedEvent
{
    /// <summary>
    /// Counted like a row: it goes out with the batch it is read into, whose confirmation gives the
    /// bytes back. A backfill's watermark is only read, never kept or published: nothing to count.
    /// </summary>
    public override long Bytes => Prefix == Snapshots.WatermarkChunks.Prefix ? 0 : 128 + Content.Length + 2L * Prefix.Length;
}

/// <param name="CommitLsn">LSN of the commit record.</param>
/// <param name="EndLsn">End of the transaction in WAL: the position to confirm once it is applied.</param>
internal sealed record TransactionCommitted(ulong CommitLsn, ulong EndLsn) : DecodedEvent;

/// <summary>
/// Marks the end of a chunk of snapshot rows (not a pgoutput message): once the batch that carries
/// it is confirmed, the job's progress moves to <paramref name="LastKey"/>.
/// </summary>
/// <param name="Progress">The job, the chunk's last key, its rows, and whether the table is done.</param>
internal sealed record SnapshotChunkRead(ChunkProgress Progress) : DecodedEvent;

/// <summary>How far a snapshot job got with one chunk; written to sync_snapshots once the chunk's rows are confirmed.</summary>
/// <param name="LastKey">Key column texts of the chunk's last row; null for an empty chunk.</param>
internal sealed record ChunkProgress(long JobId, IReadOnlyList<string>? LastKey, int Rows, bool Done);
