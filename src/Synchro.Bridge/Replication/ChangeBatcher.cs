using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication.Snapshots;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Changes;
using LogicalMessage = Synchro.Contracts.LogicalMessage;

namespace Synchro.Bridge.Replication;

/// <summary>A cut of the stream, ready to publish: its change sets and the LSN it lets us acknowledge.</summary>
/// <param name="Sequence">Position of the batch in the run; acknowledgements follow this order.</param>
/// <param name="Parts">Change sets, one table each, for subscribers.</param>
/// <param name="BucketParts">The same changes in commit order across tables, cut into parts, for the bucket consumer; each part is confirmed.</param>
/// <param name="AckLsn">End LSN of the last transaction this batch completes; null when it only carries a chunk of an open transaction.</param>
/// <param name="Messages">Logical decoding messages to publish with the batch (of committed transactions, or non-transactional).</param>
/// <param name="Bytes">Estimated bytes of the events in the batch (<see cref="DecodedEvent.Bytes"/>), given back to the budget once it is confirmed.</param>
internal sealed record OutgoingBatch(long Sequence, IReadOnlyList<ChangeSet> Parts, ulong? AckLsn, IReadOnlyList<LogicalMessage> Messages, long Bytes = 0)
{
    public IReadOnlyList<ChangeBatch> BucketParts { get; init; } = [];

    /// <summary>Snapshot chunks whose rows are in this batch or before it: their jobs move on once it is confirmed.</summary>
    public IReadOnlyList<ChunkProgress> Progress { get; init; } = [];

    /// <summary>Its bucket parts go to partition 0 only after every earlier batch was applied, and the next batch waits for them (see <see cref="ChangeBatch.Barrier"/>).</summary>
    public bool Barrier { get; init; }

    public int ChangeCount => Parts.Sum(p => p.Changes.Count);
}

/// <summary>
/// Gathers decoded events into batches: whole committed transactions, flushed at a size (changes or
/// bytes) or time limit, with transactions larger than the limit cut into chunks so memory stays bounded.
/// Numbers the changes of each transaction; that number is half of every idempotency key.
/// </summary>
/// <param name="watermarks">Where backfill chunks join the stream; null when no backfill runs.</param>
/// <param name="layout">How changes are spread over apply partitions; a single partition when null.</param>
internal sealed class ChangeBatcher(string source, Guid runId, BatchingOptions options, WatermarkChunks? watermarks = null, ApplyLayout? layout = null)
{
    private readonly ApplyLayout layout = layout ?? ApplyLayout.OnePartition;
    private readonly List<(RelationSchema Relation, RowChange Change, long Bytes)> _pending = [];
    private readonly HashSet<RowChange> _bucketsOnly = new(ReferenceEqualityComparer.Instance);
    private readonly List<ChunkProgress> _progress = [];
    private readonly List<LogicalMessage> _messages = [];
    private TransactionBegun? _open;
    private string? _openOrigin;
    private long _nextChangeIndex;
    private ulong? _completedEndLsn;
    private long _nextSequence;
    private long _pendingBytes;
    private readonly Dictionary<int, RowChange> _lastInBucketParts = [];

    /// <summary>Something to flush: changes, or a commit whose end LSN is not yet acknowledged.</summary>
    public bool HasPending => _pending.Count > 0 || _messages.Count > 0 || _completedEndLsn is not null || _progress.Count > 0;

    /// <summary>Between transactions: every pending change belongs to a committed transaction.</summary>
    public bool AtTransactionBoundary => _open is null;

    /// <summary>Takes one event; returns a batch when the size limit is reached.</summary>
    public OutgoingBatch? Add(DecodedEvent decoded)
    {
        ArgumentNullException.ThrowIfNull(decoded);
        _pendingBytes += decoded.Bytes;
        switch (decoded)
        {
            case TransactionBegun begun:
                if (_open is not null)
                    throw new UndecodableMessageException($"Transaction {begun.TransactionId} began while transaction {_open.TransactionId} was still open. Nothing past it was acknowledged; restart the bridge.");
                _open = begun;
                _openOrigin = null;
                _nextChangeIndex = 0;
                return null;

            case OriginSet origin:
                _openOrigin = origin.Name;
                return null;

            case RowChanged row:
                AddRow(row);
                return IsFull ? Cut() : null;

            case TablesTruncated truncated:
                var inTransaction = Open(truncated.Relations[0].Table);
                foreach (var relation in truncated.Relations)
                {
                    watermarks?.Observe(inTransaction.TransactionId, relation.Table, null);
                    Append(inTransaction, relation, ChangeOperation.Truncate, "", null, null, 128);
                }

                return IsFull ? Cut() : null;

            case MessageEmitted { Prefix: WatermarkChunks.Prefix } watermark:
                // Ours, or another bridge's on the same database: never published.
                if (watermark.Transactional && watermarks?.Reached(watermark.Prefix, watermark.Content) is { } reached)
                    AddChunk(Open(reached.Chunk.Reader.Schema.Table), reached.Chunk, reached.Rows, reached.Gone);
                return IsFull ? Cut() : null;

            case SnapshotChunkRead read:
                _progress.Add(read.Progress);
                return IsFull ? Cut() : null;

            case MessageEmitted { Transactional: false } message:
                _messages.Add(new LogicalMessage(source, message.Prefix, message.Content, false, new Contracts.Lsn(message.Lsn), null));
                return IsFull ? Cut() : null;

            case MessageEmitted message:
                // With the rows of its transaction, cut like them: PostgreSQL sends a transaction only once
                // it committed (protocol 1, no streaming), so nothing waits for the commit record, and an
                // outbox transaction of millions of messages goes out in batches of bounded bytes.
                _messages.Add(new LogicalMessage(source, message.Prefix, message.Content, true, new Contracts.Lsn(message.Lsn), new Contracts.Lsn(Open(null).CommitLsn)));
                return IsFull ? Cut() : null;

            case TransactionCommitted committed:
                if (_open is null)
                    throw new UndecodableMessageException($"Commit at {committed.CommitLsn} arrived outside a transaction. Nothing past it was acknowledged; restart the bridge.");
                watermarks?.Committed(_open.TransactionId);
                _open = null;
                _completedEndLsn = committed.EndLsn;
                return IsFull ? Cut() : null;

            default:
                throw new ArgumentOutOfRangeException(nameof(decoded), decoded.GetType().Name, "Unknown decoded event.");
        }
    }

    private bool IsFull => _pending.Count >= options.MaxBatchChanges || _pendingBytes >= options.MaxBatchBytes;

    /// <summary>Flushes whatever is pending (the time limit, or shutdown).</summary>
    public OutgoingBatch? Cut()
    {
        if (!HasPending)
            return null;

        var sequence = _nextSequence++;
        // The latest shape names the key; a key that changes inside one batch is not supported.
        var keyColumns = _pending.GroupBy(p => p.Relation.Table).ToDictionary(t => t.Key, t => t.Last().Relation.KeyColumns);
        var parts = new List<ChangeSet>();
        foreach (var table in _pending.Where(p => !_bucketsOnly.Contains(p.Change)).GroupBy(p => p.Relation.Table))
        {
            foreach (var slice in Slices(table))
                parts.Add(new ChangeSet(source, runId, sequence, parts.Count, 0, table.Key.Schema, table.Key.Name, keyColumns[table.Key], slice.Select(p => p.Change).ToList()));
        }

        // For the bucket consumer, the same changes in stream order, spread over the apply partitions by
        // record and cut the same way: each part is applied in its own transaction, after the parts of
        // its partition before it. A TRUNCATE touches every record of its table: its batch goes whole to
        // partition 0, as a barrier the slot reader publishes only when everything before it is applied.
        var barrier = layout.Partitions > 1 && _pending.Any(p => p.Change.Operation == ChangeOperation.Truncate);
        var bucketParts = new List<ChangeBatch>();
        foreach (var partition in _pending.GroupBy(p => barrier ? 0 : layout.PartitionOf(p.Relation.Table, p.Change.RecordId)).OrderBy(p => p.Key))
        {
            foreach (var slice in Slices(partition))
            {
                var sets = slice.GroupBy(p => p.Relation.Table)
                    .Select(t => new ChangeSet(source, runId, sequence, bucketParts.Count, 0, t.Key.Schema, t.Key.Name, keyColumns[t.Key], t.Select(p => p.Change).ToList())).ToList();
                // Each part names the partition's last change before it, so a consumer can tell when one went missing.
                _lastInBucketParts.TryGetValue(partition.Key, out var previous);
                bucketParts.Add(new ChangeBatch(source, runId, sequence, bucketParts.Count, 0, sets)
                {
                    PreviousCommitLsn = previous?.CommitLsn ?? 0,
                    PreviousChangeIndex = previous?.ChangeIndex ?? 0,
                    Partition = partition.Key,
                    Layout = layout.Key,
                    Barrier = barrier,
                });
                _lastInBucketParts[partition.Key] = slice[^1].Change;
            }
        }

        var batch = new OutgoingBatch(sequence, parts.Select(p => p with { PartCount = parts.Count }).ToList(), _completedEndLsn, [.. _messages], _pendingBytes)
        {
            BucketParts = bucketParts.Select(p => p with { PartCount = bucketParts.Count }).ToList(),
            Progress = [.. _progress],
            Barrier = barrier,
        };
        _pending.Clear();
        _bucketsOnly.Clear();
        _progress.Clear();
        _messages.Clear();
        _completedEndLsn = null;
        _pendingBytes = 0;
        return batch;
    }

    /// <summary>A slice ends at MaxChangesPerSet changes or MaxBytesPerSet bytes, and holds at least one change.</summary>
    private IEnumerable<List<(RelationSchema Relation, RowChange Change, long Bytes)>> Slices(IEnumerable<(RelationSchema Relation, RowChange Change, long Bytes)> changes)
    {
        var slice = new List<(RelationSchema Relation, RowChange Change, long Bytes)>();
        long sliceBytes = 0;
        foreach (var pending in changes)
        {
            // A key change's delete and insert stay together: subscribers receive them as one update.
            if (slice.Count > 0 && pending.Change.PreviousRecordId is null && (slice.Count >= options.MaxChangesPerSet || sliceBytes + pending.Bytes > options.MaxBytesPerSet))
            {
                yield return slice;
                slice = [];
                sliceBytes = 0;
            }

            slice.Add(pending);
            sliceBytes += pending.Bytes;
        }

        if (slice.Count > 0)
            yield return slice;
    }

    private void AddRow(RowChanged row)
    {
        var open = Open(row.Relation.Table);
        if (watermarks is { Active: true })
        {
            watermarks.Observe(open.TransactionId, row.Relation.Table, row.RecordId);
            if (row.OldRecordId is not null)
                watermarks.Observe(open.TransactionId, row.Relation.Table, row.OldRecordId);
        }

        if (row.OldRecordId is not null)
        {
            // A key change moves the row to another identity: the old record is gone, a new one appears.
            Append(open, row.Relation, ChangeOperation.Delete, row.OldRecordId, null, row.OldRow, row.Bytes / 2, row.OldRowIsKey);
            Append(open, row.Relation, ChangeOperation.Insert, row.RecordId, row.NewRow, null, row.Bytes - row.Bytes / 2, previousRecordId: row.OldRecordId);
            return;
        }

        Append(open, row.Relation, row.Operation, row.RecordId, row.NewRow, row.OldRow, row.Bytes, row.OldRowIsKey);
    }

    /// <summary>A backfill chunk joins the stream inside its watermark's transaction, after the changes the chunk saw.</summary>
    private void AddChunk(TransactionBegun open, PendingChunk chunk, List<ColumnValue[]> rows, List<string> gone)
    {
        _pendingBytes += chunk.Bytes;
        foreach (var row in rows)
        {
            var read = chunk.Reader.ToRead(row);
            Append(open, read.Relation, ChangeOperation.Read, read.RecordId, read.NewRow, null, read.Bytes);
            if (!chunk.Publish)
                _bucketsOnly.Add(_pending[^1].Change);
        }

        foreach (var recordId in gone)
        {
            var delete = chunk.Reader.ToDelete(recordId);
            Append(open, delete.Relation, ChangeOperation.Delete, delete.RecordId, null, delete.OldRow, delete.Bytes, oldRowIsKey: true);
            if (!chunk.Publish)
                _bucketsOnly.Add(_pending[^1].Change);
        }

        _progress.Add(chunk.Progress);
    }

    private TransactionBegun Open(TableName? table) =>
        _open ?? throw new UndecodableMessageException($"A change{(table is null ? "" : " to " + table)} arrived outside a transaction. Nothing past it was acknowledged; restart the bridge.");

    /// <summary>Where the open transaction's numbering stands; tests move it near the end of the range.</summary>
    internal long NextChangeIndex
    {
        get => _nextChangeIndex;
        set => _nextChangeIndex = value;
    }

    private void Append(TransactionBegun open, RelationSchema relation, ChangeOperation operation, string recordId, ColumnValue[]? newRow, ColumnValue[]? oldRow, long bytes,
        bool oldRowIsKey = false, string? previousRecordId = null)
    {
        // The index is half of every idempotency key and a 32-bit integer in the sidecar tables: wrapped,
        // it would go negative and every later change of the transaction would look like a replay.
        if (_nextChangeIndex > int.MaxValue)
        {
            throw new UndecodableMessageException(
                $"Transaction {open.TransactionId} (commit at {Lsn.Format(open.CommitLsn)}) has more than {int.MaxValue} row changes, more than a change index numbers (change_idx is a 32-bit integer). Nothing of it was acknowledged. " +
                $"Move the slot past it (SELECT pg_replication_slot_advance('<slot>', '<an LSN after {Lsn.Format(open.CommitLsn)}>')), then run synchro-bridge run --accept-gap, which reads the configured tables again.");
        }

        _pending.Add((relation, new RowChange(open.CommitLsn, (int)_nextChangeIndex++, open.TransactionId, open.CommittedAt, operation, recordId, newRow, oldRow, _openOrigin)
        {
            OldRowIsKey = oldRowIsKey,
            PreviousRecordId = previousRecordId,
        }, bytes));
    }
}
