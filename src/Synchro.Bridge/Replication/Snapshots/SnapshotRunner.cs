using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Npgsql;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Replication.Snapshots;

/// <summary>
/// Reads existing rows into the stream, for the slot reader. Two ways, by when they run:
/// <list type="bullet">
/// <item>The initial snapshot, when the slot is created: every table is read in the snapshot the slot
/// exported, so it holds exactly the rows committed before the slot's first change. The rows go out
/// as one transaction just before that change, parents' tables before their children's, and only
/// then does the stream start.</item>
/// <item>Backfills, rebuilds and an interrupted initial snapshot: chunk by chunk while the stream goes
/// on, each chunk joining the stream at its watermark (<see cref="WatermarkChunks"/>).</item>
/// </list>
/// A job's progress is saved once the bucket consumer confirmed its chunk, so an interrupted job
/// resumes after its last confirmed chunk; a chunk read twice is written once (a read writes only
/// differences).
/// </summary>
/// <param name="dataSource">The primary: watermark reads and their messages.</param>
/// <param name="slotServer">Where the slot is (a decoding standby, or the primary): its exported snapshot is imported there.</param>
internal sealed class SnapshotRunner(
    NpgsqlDataSource dataSource,
    NpgsqlDataSource slotServer,
    SnapshotJobs jobs,
    string source,
    IReadOnlyList<TableName> tables,
    int chunkRows,
    Action<string?> reportProgress,
    ILogger logger)
{
    private static readonly TimeSpan IdlePoll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ProgressLogInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RetryPause = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Jobs this run reads or has read to the end (the initial snapshot's, and watermark jobs whose last
    /// chunk reached the stream): the backfill loop leaves them alone while their last progress is saved.
    /// </summary>
    private readonly HashSet<long> _handled = [];

    /// <summary>Tables in an order where every parent comes before its children.</summary>
    public static IReadOnlyList<TableName> ParentsFirst(IReadOnlyList<TableName> tables, BucketRuleSet? rules)
    {
        ArgumentNullException.ThrowIfNull(tables);
        var ordered = new List<TableName>();
        var placed = new HashSet<TableName>();
        var left = tables.ToList();
        while (left.Count > 0)
        {
            // Rules are validated acyclic; a table whose parent is not configured counts as a root.
            var next = left.FirstOrDefault(t => rules?.All.FirstOrDefault(r => r.Table == t) is not ParentRule parent || placed.Contains(parent.Parent) || !left.Contains(parent.Parent));
            next = next == default ? left[0] : next;
            ordered.Add(next);
            placed.Add(next);
            left.Remove(next);
        }

        return ordered;
    }

    /// <summary>Records an initial snapshot of every table as pending, before the slot exists: a crash before it ends leaves them to resume.</summary>
    public async Task PlanInitialAsync(CancellationToken cancellationToken)
    {
        await jobs.SupersedeOpenAsync(source, cancellationToken);
        foreach (var table in tables)
            await jobs.RequestAsync(source, table, SnapshotKind.Initial, cancellationToken);
    }

    /// <summary>
    /// Reads every table in the slot's exported snapshot and writes the rows as one transaction
    /// positioned just before <paramref name="consistentPoint"/>, the slot's first change.
    /// </summary>
    public async Task ReadExportedAsync(ulong consistentPoint, string snapshotName, ChannelWriter<DecodedEvent> output, ByteBudget budget, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(budget);
        var open = (await jobs.ListAsync(source, openOnly: true, cancellationToken)).Where(j => j.Kind == SnapshotKind.Initial).ToDictionary(j => j.Table);
        await using var connection = await slotServer.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        await using (var import = new NpgsqlCommand($"SET TRANSACTION READ ONLY; SET TRANSACTION SNAPSHOT '{snapshotName.Replace("'", "''", StringComparison.Ordinal)}'", connection, transaction))
            await import.ExecuteNonQueryAsync(cancellationToken);
        string snapshot;
        await using (var current = new NpgsqlCommand("SELECT pg_current_snapshot()::text", connection, transaction))
            snapshot = (string)(await current.ExecuteScalarAsync(cancellationToken))!;

        // Before the slot's first change: every change the stream carries is newer than every row read here.
        var position = consistentPoint - 1;
        await output.WriteAsync(new TransactionBegun(0, position, DateTimeOffset.UtcNow), cancellationToken);
        long rowsRead = 0;
        foreach (var table in tables)
        {
            if (!open.TryGetValue(table.SidecarName, out var job))
                continue;
            _handled.Add(job.Id);
            var reader = await TableReader.OpenAsync(connection, table, cancellationToken);
            var estimate = await reader.EstimateRowsAsync(connection, cancellationToken);
            await jobs.StartAsync(job.Id, "exported", snapshot, estimate, cancellationToken);
            var name = table.ToString();
            SnapshotLog.Reading(logger, name, estimate, "the slot's exported snapshot");
            IReadOnlyList<string>? last = null;
            while (true)
            {
                var rows = await reader.ReadChunkAsync(connection, last, chunkRows, cancellationToken);
                rowsRead += rows.Count;
                if (rowsRead >= int.MaxValue)
                {
                    // Numbered as one transaction: a change index past int.MaxValue would wrap.
                    throw new SynchroException(
                        $"The initial snapshot holds more than {int.MaxValue} rows, more than one transaction can number. Start with Synchro:Snapshot:Mode=StreamOnly and run synchro-bridge backfill for each table (a backfill numbers each chunk on its own).");
                }

                foreach (var row in rows)
                {
                    var read = reader.ToRead(row);
                    await budget.AcquireAsync(read.Bytes, cancellationToken);
                    await output.WriteAsync(read, cancellationToken);
                }

                var done = rows.Count < chunkRows;
                if (done)
                    rowsRead += await DeleteGoneAsync(connection, reader, output, budget, cancellationToken);
                last = rows.Count > 0 ? reader.KeyOf(rows[^1]) : last;
                await output.WriteAsync(new SnapshotChunkRead(new ChunkProgress(job.Id, rows.Count > 0 ? last : null, rows.Count, done)), cancellationToken);
                if (done)
                    break;
            }
        }

        // The end LSN 0 acknowledges nothing: the slot already starts at the consistent point.
        await output.WriteAsync(new TransactionCommitted(position, 0), cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// In the exported snapshot, every record the sidecar tables hold that the table no longer has
    /// (its delete was lost with a slot) goes out as a delete, so readers learn of it; returns how many.
    /// </summary>
    private async Task<long> DeleteGoneAsync(NpgsqlConnection connection, TableReader reader, ChannelWriter<DecodedEvent> output, ByteBudget budget, CancellationToken cancellationToken)
    {
        long deleted = 0;
        string? after = null;
        var table = reader.Schema.Table.ToString();
        while (true)
        {
            var gone = await reader.ReadGoneAsync(connection, jobs.BucketEdges, after, chunkRows, cancellationToken);
            foreach (var recordId in gone)
            {
                var delete = reader.ToDelete(recordId);
                await budget.AcquireAsync(delete.Bytes, cancellationToken);
                await output.WriteAsync(delete, cancellationToken);
            }

            deleted += gone.Count;
            if (gone.Count < chunkRows)
                break;
            after = gone[^1];
        }

        if (deleted > 0)
            SnapshotLog.GoneDeleted(logger, table, deleted);
        return deleted;
    }

    /// <summary>Runs open backfills, rebuilds and interrupted initial snapshots one table at a time, chunk by chunk, until cancelled.</summary>
    public async Task RunWatermarkJobsAsync(WatermarkChunks watermarks, ByteBudget budget, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(watermarks);
        ArgumentNullException.ThrowIfNull(budget);
        while (!cancellationToken.IsCancellationRequested)
        {
            // A job of a table this process does not stream waits (in a rolling deploy, for the instance that does).
            var job = (await jobs.ListAsync(source, openOnly: true, cancellationToken))
                .FirstOrDefault(j => !_handled.Contains(j.Id) && tables.Contains(TableName.Parse(j.Table)));
            if (job is null)
            {
                await Task.Delay(IdlePoll, cancellationToken);
                continue;
            }

            await RunWatermarkJobAsync(job, watermarks, budget, cancellationToken);
            _handled.Add(job.Id);
        }
    }

    private async Task RunWatermarkJobAsync(SnapshotJob job, WatermarkChunks watermarks, ByteBudget budget, CancellationToken cancellationToken)
    {
        var table = TableName.Parse(job.Table);
        TableReader reader;
        IReadOnlyList<string>? endKey;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        {
            reader = await TableReader.OpenAsync(connection, table, cancellationToken);
            var estimate = await reader.EstimateRowsAsync(connection, cancellationToken);
            // Read up to the last key there is now: later inserts come through the stream, and a backfill
            // that read them too would chase writers inserting at the key's end, perhaps for ever.
            endKey = await jobs.StartAsync(job.Id, "watermark", null, estimate, cancellationToken, await reader.ReadLastKeyAsync(connection, cancellationToken));
            SnapshotLog.Reading(logger, job.Table, estimate, job.LastKey is null ? "chunks between watermarks" : "chunks between watermarks, resuming after the last confirmed chunk");
        }

        watermarks.Track(table);
        try
        {
            var last = job.LastKey;
            var chunk = 0;
            while (true)
            {
                var (rows, gone, snapshot) = await ReadChunkAsync(reader, last, endKey, cancellationToken);
                // The last chunk also deletes records the table no longer has, a page at a time: it is read
                // again (writing nothing twice) until a page holds fewer than a chunk's rows.
                var done = rows.Count < chunkRows && gone.Count < chunkRows;
                // A chunk holds its bytes until the stream reaches its watermark and the batch is confirmed,
                // so it may take only a quarter of the budget: the stream keeps the rest to get there.
                var (taken, bytes) = Fit(rows, budget.Capacity / 4);
                if (taken < rows.Count)
                {
                    rows = rows[..taken];
                    gone = [];
                    done = false;
                }

                bytes += gone.Sum(id => 128 + 2L * id.Length);

                await budget.AcquireAheadOfStreamAsync(bytes, cancellationToken);
                var pending = new PendingChunk(job.Id, chunk, reader, rows, snapshot, job.Kind != SnapshotKind.Rebuild, done, bytes) { Gone = gone };
                var outcome = watermarks.Submit(pending);
                await EmitWatermarkAsync(watermarks.Watermark(job.Id, chunk++), cancellationToken);
                var result = await outcome.WaitAsync(cancellationToken);
                budget.ReachedStream(bytes);
                if (result == ChunkOutcome.Retry)
                {
                    budget.Release(bytes); // never entered a batch
                    await Task.Delay(RetryPause, cancellationToken); // what it waits for is a commit elsewhere
                    continue;
                }

                if (result.Newer > 0)
                    SnapshotLog.RowsNewerInStream(logger, job.Table, result.Newer);
                if (gone.Count > 0)
                    SnapshotLog.GoneDeleted(logger, job.Table, gone.Count);
                if (done)
                    return;
                if (rows.Count > 0)
                    last = reader.KeyOf(rows[^1]);
            }
        }
        finally
        {
            watermarks.Untrack(table);
        }
    }

    /// <summary>How many of the rows (at least one) fit into <paramref name="limit"/> bytes, and their bytes.</summary>
    internal static (int Rows, long Bytes) Fit(IReadOnlyList<ColumnValue[]> rows, long limit)
    {
        ArgumentNullException.ThrowIfNull(rows);
        long bytes = 0;
        for (var i = 0; i < rows.Count; i++)
        {
            var size = 128 + DecodedEvent.SizeOf(rows[i]);
            if (i > 0 && bytes + size > limit)
                return (i, bytes);
            bytes += size;
        }

        return (rows.Count, bytes);
    }

    private async Task<(List<ColumnValue[]> Rows, List<string> Gone, TransactionSnapshot Snapshot)> ReadChunkAsync(TableReader reader, IReadOnlyList<string>? after, IReadOnlyList<string>? endKey, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        // One snapshot for the chunk and for the question which transactions it saw.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        string snapshot;
        await using (var current = new NpgsqlCommand("SELECT pg_current_snapshot()::text", connection, transaction))
            snapshot = (string)(await current.ExecuteScalarAsync(cancellationToken))!;
        var rows = await reader.ReadChunkAsync(connection, after, chunkRows, cancellationToken, endKey);
        var gone = rows.Count < chunkRows ? await reader.ReadGoneAsync(connection, jobs.BucketEdges, null, chunkRows, cancellationToken) : [];
        await transaction.CommitAsync(cancellationToken);
        return (rows, gone, TransactionSnapshot.Parse(snapshot));
    }

    private async Task EmitWatermarkAsync(string content, CancellationToken cancellationToken)
    {
        // Transactional: it reaches the stream at its commit, after every change committed before it.
        await using var command = dataSource.CreateCommand("SELECT pg_logical_emit_message(true, $1, $2)");
        command.Parameters.Add(new NpgsqlParameter { Value = WatermarkChunks.Prefix });
        command.Parameters.Add(new NpgsqlParameter { Value = content });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Saves the progress of chunks once their batch is confirmed, in batch order.</summary>
    public async Task SaveProgressAsync(ChannelReader<(long Sequence, IReadOnlyList<ChunkProgress> Progress)> confirmedBatches, Position.AckTracker tracker, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(confirmedBatches);
        ArgumentNullException.ThrowIfNull(tracker);
        var lastLog = DateTimeOffset.MinValue;
        await foreach (var (sequence, progress) in confirmedBatches.ReadAllAsync(cancellationToken))
        {
            await tracker.WhenConfirmedAsync(sequence, cancellationToken);
            foreach (var chunk in progress)
            {
                var job = await jobs.ProgressAsync(chunk.JobId, chunk.LastKey, chunk.Rows, chunk.Done, cancellationToken);
                if (job is null)
                    continue;
                reportProgress(chunk.Done ? null : job.Describe());
                if (chunk.Done)
                {
                    var kind = SnapshotJobs.KindName(job.Kind);
                    SnapshotLog.TableDone(logger, job.Table, kind, job.RowsDone);
                }
                else if (DateTimeOffset.UtcNow - lastLog >= ProgressLogInterval)
                {
                    lastLog = DateTimeOffset.UtcNow;
                    SnapshotLog.Progress(logger, job.Table, job.RowsDone, job.RowsEstimated ?? -1, job.RowsPerSecond ?? 0, job.Remaining?.TotalSeconds ?? -1);
                }
            }
        }
    }
}

internal static partial class SnapshotLog
{
    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "Reading the existing rows of {Table} (about {Estimate} rows) from {How}")]
    public static partial void Reading(ILogger logger, string table, long estimate, string how);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Information, Message = "The {Kind} of {Table} is done: {Rows} rows")]
    public static partial void TableDone(ILogger logger, string table, string kind, long rows);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Debug, Message = "{Rows} rows of a chunk of {Table} were left out: the stream already carries a newer change of them")]
    public static partial void RowsNewerInStream(ILogger logger, string table, int rows);

    [LoggerMessage(EventId = 6005, Level = LogLevel.Information, Message = "{Count} records of {Table} the sidecar tables held are gone from the table: written as deletes")]
    public static partial void GoneDeleted(ILogger logger, string table, long count);

    [LoggerMessage(EventId = 6004, Level = LogLevel.Information, Message = "Snapshot of {Table}: {Done} of about {Estimate} rows, {Rate:0} rows/s, about {Remaining:0} s left")]
    public static partial void Progress(ILogger logger, string table, long done, long estimate, double rate, double remaining);
}
