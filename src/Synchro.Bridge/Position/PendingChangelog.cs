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
/// LSN: by then every change of every transaction that committed before that LSN is applied. It
/// runs through the position store's pipeline (timeout per attempt, retries, circuit breaker): a
/// connection that hangs must not stop acknowledgements for good. Moving again is harmless.
/// </summary>
public sealed class PendingChangelog(SidecarSessions sessions, SidecarTables tables, ResiliencePipelineProvider<string> pipelines)
{
    private readonly ResiliencePipeline _pipeline = pipelines.GetPipeline(ResilientPositionStore.PipelineName);

    /// <returns>Rows that entered sync_changelog.</returns>
    public Task<int> PublishBeforeAsync(string source, ulong lsn, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(static (state, ct) => new ValueTask<int>(state.Item1.MoveAsync(state.source, state.lsn, ct)), (this, source, lsn), cancellationToken).AsTask();

    private async Task<int> MoveAsync(string source, ulong lsn, CancellationToken cancellationToken)
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
                    WITH moved AS (
                        DELETE FROM {tables.ChangelogPending} WHERE source = $1 AND commit_lsn < $2
                        RETURNING ord, bucket_id, table_name, record_id, operation, commit_lsn, change_idx)
                    INSERT INTO {tables.Changelog} (bucket_id, table_name, record_id, operation, commit_lsn, change_idx)
                    SELECT bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM moved
                    ORDER BY commit_lsn, change_idx, ord
                    ON CONFLICT ON CONSTRAINT sync_changelog_once DO NOTHING
                    """)
                {
                    Parameters =
                    {
                        new() { Value = source },
                        new() { Value = new NpgsqlLogSequenceNumber(lsn), NpgsqlDbType = NpgsqlDbType.PgLsn },
                    },
                },
            },
        };
        await batch.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return batch.BatchCommands[^1].RecordsAffected;
    }
}
