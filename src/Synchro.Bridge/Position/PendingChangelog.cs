using Npgsql;
using NpgsqlTypes;
using Polly;
using Polly.Registry;
using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.Position;

/// <summary>
/// Moves the changelog rows apply partitions left in sync_changelog_pending into sync_changelog once
/// every partition has applied their transactions: in commit order, under the changelog lock held to
/// commit, so within every bucket <c>seq</c> follows commit order and a reader pulling
/// <c>seq &gt; checkpoint</c> never misses a row. The slot reader calls it before it acknowledges an
/// LSN: by then every change of every transaction that committed before that LSN is applied.
/// <para>
/// One large transaction (an initial snapshot, a bulk load, a cascade) leaves millions of rows, far
/// more than one statement moves inside the position store's timeout per attempt. So they move in
/// slices of <see cref="SliceRows"/>, the first ones in commit order each time, each slice its own
/// transaction through the pipeline (timeout, retries, circuit breaker): every slice that commits is
/// progress kept, and a reader sees a prefix of the order, the rest following with higher seq (while
/// rows wait here, partitions write their changelog rows here too, never past them). Moving again is
/// harmless. Health reads <see cref="ActiveRun.ChangelogMove"/> to say what the acknowledgement waits for.
/// </para>
/// </summary>
internal sealed class PendingChangelog(SidecarSessions sessions, SidecarTables tables, ResiliencePipelineProvider<string> pipelines, ActiveRun activeRun, TimeProvider time)
{
    /// <summary>Rows per slice: a few tens of milliseconds of work, far inside the timeout of an attempt.</summary>
    public const int SliceRows = 5_000;

    private readonly ResiliencePipeline _pipeline = pipelines.GetPipeline(ResilientPositionStore.PipelineName);

    /// <returns>Rows that entered sync_changelog.</returns>
    public async Task<int> PublishBeforeAsync(string source, ulong lsn, CancellationToken cancellationToken)
    {
        var moved = 0;
        try
        {
            var started = time.GetUtcNow();
            activeRun.ChangelogMove = new ChangelogMove(lsn, 0, started, started);
            while (true)
            {
                var (taken, entered) = await _pipeline.ExecuteAsync(
                    static (state, ct) => new ValueTask<(int, int)>(state.Item1.MoveSliceAsync(state.source, state.lsn, ct)), (this, source, lsn), cancellationToken);
                moved += entered;
                if (taken < SliceRows)
                    return moved;
                activeRun.ChangelogMove = new ChangelogMove(lsn, moved, started, time.GetUtcNow());
            }
        }
        finally
        {
            activeRun.ChangelogMove = null;
        }
    }

    /// <returns>Rows taken from sync_changelog_pending, and those of them that entered sync_changelog (not there already).</returns>
    private async Task<(int Taken, int Entered)> MoveSliceAsync(string source, ulong lsn, CancellationToken cancellationToken)
    {
        await using var session = await sessions.OpenAsync(cancellationToken);
        var connection = session.Connection;
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(SidecarTables.AbandonedTransactionTimeout),
                new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(hashtext($1))") { Parameters = { new() { Value = "synchro:changelog:" + tables.Schema } } },
                new NpgsqlBatchCommand(
                    $"""
                    WITH slice AS (
                        SELECT ord FROM {tables.ChangelogPending} WHERE source = $1 AND commit_lsn < $2
                        ORDER BY commit_lsn, change_idx, ord LIMIT $3),
                    moved AS (
                        DELETE FROM {tables.ChangelogPending} p USING slice WHERE p.ord = slice.ord
                        RETURNING p.ord, p.bucket_id, p.table_name, p.record_id, p.operation, p.commit_lsn, p.change_idx),
                    entered AS (
                        INSERT INTO {tables.Changelog} (bucket_id, table_name, record_id, operation, commit_lsn, change_idx)
                        SELECT bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM moved
                        ORDER BY commit_lsn, change_idx, ord
                        ON CONFLICT ON CONSTRAINT sync_changelog_once DO NOTHING
                        RETURNING 1)
                    SELECT (SELECT count(*) FROM moved)::int, (SELECT count(*) FROM entered)::int
                    """)
                {
                    Parameters =
                    {
                        new() { Value = source },
                        new() { Value = new NpgsqlLogSequenceNumber(lsn), NpgsqlDbType = NpgsqlDbType.PgLsn },
                        new() { Value = SliceRows },
                    },
                },
            },
        };
        (int, int) counts;
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            // The reader skips statements without rows (SET): it starts at the lock's result.
            await reader.NextResultAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            counts = (reader.GetInt32(0), reader.GetInt32(1));
        }

        await transaction.CommitAsync(cancellationToken);
        return counts;
    }
}

/// <param name="Before">The LSN about to be acknowledged, whose pending changelog rows move first.</param>
/// <param name="Moved">Rows moved so far.</param>
/// <param name="Since">When the move began.</param>
/// <param name="LastSlice">When the last slice committed.</param>
internal sealed record ChangelogMove(ulong Before, long Moved, DateTimeOffset Since, DateTimeOffset LastSlice);
