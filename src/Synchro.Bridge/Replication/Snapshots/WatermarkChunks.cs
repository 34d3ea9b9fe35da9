using System.Globalization;
using System.Text.Json;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Replication.Snapshots;

/// <summary>
/// Where the rows of a backfill chunk enter the stream, and which of them must not (the DBLog idea,
/// with PostgreSQL's own visibility rules instead of a low watermark). The backfill reads a chunk
/// in a transaction whose snapshot it records, then writes a high watermark (a transactional logical
/// decoding message). When the stream reaches the watermark, every change of the table the chunk's
/// snapshot saw is behind it in the stream, and the chunk's rows join the stream there. A row that a
/// transaction the snapshot did not see has changed is left out: that transaction's change, already
/// streamed, is newer than the row read. Its later changes follow the watermark as usual. So no
/// change is lost and no stale row overwrites a newer change.
/// </summary>
/// <remarks>
/// Changes of a table are tracked from the moment its backfill starts, per transaction, until a
/// chunk's snapshot shows the transaction visible (then no later chunk can need it). A transaction
/// the table's floor snapshot (that of its oldest chunk still waiting, or of its last one) sees is not
/// tracked at all: every later snapshot sees it too, as a commit once visible stays visible. So a
/// catch-up backlog, whose transactions all committed before the chunks were read, tracks nothing.
/// One instance per run of the slot reader: the backfill (its producer) and the batcher (its consumer) share it.
/// </remarks>
internal sealed class WatermarkChunks(string source, Guid runId)
{
    /// <summary>Prefix of the watermark messages in the stream; never published to subscribers.</summary>
    public const string Prefix = "synchro.watermark";

    /// <summary>A transaction touching more rows of a tracked table than this is kept as "the whole table".</summary>
    private const int MaxKeysPerTransaction = 50_000;

    /// <summary>The stream's latest transactions remembered, for the ones committed before tracking began.</summary>
    private const int RecentTransactions = 4_096;

    private readonly Lock _gate = new();
    private readonly Dictionary<TableName, List<TrackedTransaction>> _tracked = [];
    private readonly Dictionary<(long Job, int Chunk), PendingChunk> _chunks = [];
    private readonly Queue<uint> _recent = new();
    private readonly Dictionary<TableName, HashSet<uint>> _beforeTracking = [];
    private readonly Dictionary<TableName, TransactionSnapshot> _floors = [];

    /// <summary>Starts tracking the table's changes; call before reading its first chunk.</summary>
    public void Track(TableName table)
    {
        lock (_gate)
        {
            _tracked.TryAdd(table, []);
            // Already in the stream, their changes to the table unknown: a chunk must see them all.
            _beforeTracking[table] = [.. _recent];
        }
    }

    public void Untrack(TableName table)
    {
        lock (_gate)
        {
            _tracked.Remove(table);
            _beforeTracking.Remove(table);
            _floors.Remove(table);
        }
    }

    /// <summary>A transaction the batcher has taken whole from the stream.</summary>
    public void Committed(uint transactionId)
    {
        lock (_gate)
        {
            _recent.Enqueue(transactionId);
            if (_recent.Count > RecentTransactions)
                _recent.Dequeue();
        }
    }

    /// <summary>True when some table is tracked (the batcher's fast path skips all work otherwise).</summary>
    public bool Active
    {
        get { lock (_gate) return _tracked.Count > 0; }
    }

    /// <summary>Registers a chunk before its watermark is written; the task ends when the stream reaches it.</summary>
    public Task<ChunkOutcome> Submit(PendingChunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        lock (_gate)
        {
            var table = chunk.Reader.Schema.Table;
            // With no older chunk of the table waiting, this one's snapshot is the floor: no chunk, waiting or to come, needs what it sees.
            if (!_chunks.Values.Any(c => c.Reader.Schema.Table == table))
            {
                _floors[table] = chunk.Snapshot;
                _tracked.GetValueOrDefault(table)?.RemoveAll(t => chunk.Snapshot.Sees(t.TransactionId));
            }

            _chunks[(chunk.Job, chunk.Chunk)] = chunk;
        }

        return chunk.Outcome.Task;
    }

    /// <summary>The watermark message's content for a chunk.</summary>
    public string Watermark(long job, int chunk) =>
        JsonSerializer.Serialize(new Dictionary<string, object> { ["source"] = source, ["run"] = runId, ["job"] = job, ["chunk"] = chunk });

    /// <summary>A row change of a committed transaction, as the batcher sees it.</summary>
    public void Observe(uint transactionId, TableName table, string? recordId)
    {
        lock (_gate)
        {
            if (!_tracked.TryGetValue(table, out var transactions))
                return;
            if (_floors.TryGetValue(table, out var floor) && floor.Sees(transactionId))
                return;
            var tracked = transactions.Count > 0 && transactions[^1].TransactionId == transactionId ? transactions[^1] : null;
            if (tracked is null)
                transactions.Add(tracked = new TrackedTransaction(transactionId));
            if (recordId is null)
                tracked.Truncated = true;
            if (recordId is null || tracked.Keys.Count >= MaxKeysPerTransaction)
            {
                tracked.WholeTable = true; // a TRUNCATE, or too many rows to keep
                tracked.Keys.Clear();
            }
            else if (!tracked.WholeTable)
            {
                tracked.Keys.Add(recordId);
            }
        }
    }

    /// <summary>
    /// The stream reached a watermark message: returns the chunk it closes with the rows that enter
    /// the stream here, or null when nothing does: the message is not one of this run's chunks
    /// (another source's, or an earlier run's, read again after a restart), or the chunk must be read again.
    /// </summary>
    public (PendingChunk Chunk, List<ColumnValue[]> Rows, List<string> Gone)? Reached(string prefix, byte[] content)
    {
        if (prefix != Prefix)
            return null;
        long job;
        int chunkNumber;
        try
        {
            using var document = JsonDocument.Parse(content);
            var root = document.RootElement;
            // A watermark of an earlier run, read again after a restart, is not this run's chunk.
            if (root.GetProperty("source").GetString() != source || root.GetProperty("run").GetGuid() != runId)
                return null;
            job = root.GetProperty("job").GetInt64();
            chunkNumber = root.GetProperty("chunk").GetInt32();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null; // not ours
        }

        lock (_gate)
        {
            if (!_chunks.Remove((job, chunkNumber), out var chunk))
                return null;
            var table = chunk.Reader.Schema.Table;
            var transactions = _tracked.GetValueOrDefault(table) ?? [];
            var unseen = transactions.Where(t => !chunk.Snapshot.Sees(t.TransactionId)).ToList();
            // A transaction the stream carried before tracking began that this snapshot still does not see
            // (its commit is in WAL, its backend not yet done, say waiting for a synchronous standby).
            var before = _beforeTracking.GetValueOrDefault(table);
            if (before is not null && before.Any(x => !chunk.Snapshot.Sees(x)))
            {
                chunk.Outcome.TrySetResult(ChunkOutcome.Retry);
                return null;
            }

            before?.Clear(); // every later snapshot sees them too
            if (unseen.Any(t => t.Truncated))
            {
                // A TRUNCATE newer than every row the chunk read, already in the stream: it removed them
                // all, and whatever the table holds since is in the stream after it. Nothing enters, and
                // the job moves on: read again, the chunk could meet the next TRUNCATE, and so for ever.
                transactions.RemoveAll(t => chunk.Snapshot.Sees(t.TransactionId));
                chunk.Outcome.TrySetResult(new ChunkOutcome(0, chunk.Rows.Count));
                return (chunk, [], []);
            }

            if (unseen.Any(t => t.WholeTable))
            {
                // Nothing joins the stream and the job does not move on: the chunk is read again.
                chunk.Outcome.TrySetResult(ChunkOutcome.Retry);
                return null;
            }

            var newer = unseen.SelectMany(t => t.Keys).ToHashSet(StringComparer.Ordinal);
            // Seen by this chunk's snapshot, so by every later one: no later chunk can need them.
            transactions.RemoveAll(t => chunk.Snapshot.Sees(t.TransactionId));
            var rows = chunk.Rows.Where(row => !newer.Contains(PgOutputDecoder.RecordIdOf(chunk.Reader.Schema, row))).ToList();
            // A record found gone that a transaction the snapshot did not see has touched: that change is newer.
            var gone = chunk.Gone.Where(id => !newer.Contains(id)).ToList();
            chunk.Outcome.TrySetResult(new ChunkOutcome(rows.Count, chunk.Rows.Count - rows.Count));
            return (chunk, rows, gone);
        }
    }

    /// <summary>Transactions tracked for the table (what the tracking holds in memory).</summary>
    internal int TrackedTransactions(TableName table)
    {
        lock (_gate)
            return _tracked.GetValueOrDefault(table)?.Count ?? 0;
    }

    private sealed class TrackedTransaction(uint transactionId)
    {
        public uint TransactionId { get; } = transactionId;

        public HashSet<string> Keys { get; } = new(StringComparer.Ordinal);

        public bool WholeTable { get; set; }

        /// <summary>A TRUNCATE of the table: every row read before it is gone.</summary>
        public bool Truncated { get; set; }
    }

}

/// <summary>A chunk read, waiting for its watermark in the stream.</summary>
/// <param name="Publish">False for a rebuild: the rows go to the bucket consumer only.</param>
/// <param name="Bytes">Budget taken for the rows; given back once their batch is confirmed (or the chunk is retried).</param>
internal sealed record PendingChunk(long Job, int Chunk, TableReader Reader, IReadOnlyList<ColumnValue[]> Rows, TransactionSnapshot Snapshot, bool Publish, bool Done, long Bytes)
{
    /// <summary>Records the sidecar tables hold that the chunk's snapshot finds gone from the table (the last chunk only).</summary>
    public IReadOnlyList<string> Gone { get; init; } = [];

    public TaskCompletionSource<ChunkOutcome> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ChunkProgress Progress => new(Job, Rows.Count > 0 ? Reader.KeyOf(Rows[^1]) : null, Rows.Count, Done);
}

/// <summary>What became of a chunk at its watermark.</summary>
/// <param name="Entered">Rows that joined the stream.</param>
/// <param name="Newer">Rows left out because a change the chunk did not see is already in the stream.</param>
internal sealed record ChunkOutcome(int Entered, int Newer)
{
    /// <summary>
    /// A change too large to track by key the chunk did not see, or a transaction already streamed
    /// before tracking began that its snapshot does not see yet: read the chunk again.
    /// </summary>
    public static readonly ChunkOutcome Retry = new(-1, -1);
}

/// <summary>
/// A transaction snapshot as <c>pg_current_snapshot()</c> prints it (<c>xmin:xmax:xip,...</c>), asked
/// whether it sees a transaction of the stream (whose ids are 32-bit, compared modulo 2^32 as PostgreSQL does).
/// </summary>
internal sealed record TransactionSnapshot(uint Xmin, uint Xmax, IReadOnlySet<uint> InProgress)
{
    public static TransactionSnapshot Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(':');
        if (parts.Length != 3)
            throw new FormatException($"'{text}' is not a snapshot (xmin:xmax:xip).");
        static uint Xid(string full) => unchecked((uint)ulong.Parse(full, CultureInfo.InvariantCulture));
        var inProgress = parts[2].Length == 0 ? new HashSet<uint>() : parts[2].Split(',').Select(Xid).ToHashSet();
        return new TransactionSnapshot(Xid(parts[0]), Xid(parts[1]), inProgress);
    }

    /// <summary>True when the transaction had committed for this snapshot (its changes are in what the snapshot read).</summary>
    public bool Sees(uint transactionId) =>
        Precedes(transactionId, Xmin) || (Precedes(transactionId, Xmax) && !InProgress.Contains(transactionId));

    private static bool Precedes(uint left, uint right) => unchecked((int)(left - right)) < 0;
}
