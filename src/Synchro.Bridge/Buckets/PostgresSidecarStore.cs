using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Replication;
using Synchro.Contracts;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// Reads the current edges and positions of a change set's records, plans the diff in memory and
/// writes changelog, edges, positions and rule failures with set-based statements in one transaction.
/// </summary>
public sealed class PostgresSidecarStore(NpgsqlDataSource dataSource, SidecarTables tables) : ISidecarStore
{
    public async Task<SidecarPlan> ApplyAsync(ChangeSet changeSet, IBucketRule rule, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(changeSet);
        var tableName = new TableName(changeSet.Schema, changeSet.Table).SidecarName;
        var truncates = changeSet.Changes.Any(c => c.Operation == ChangeOperation.Truncate);
        var recordIds = changeSet.Changes.Where(c => c.Operation != ChangeOperation.Truncate).Select(c => c.RecordId).Distinct(StringComparer.Ordinal).ToArray();

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        var state = await LoadStateAsync(connection, tableName, recordIds, truncates, cancellationToken);
        var changes = await UnchangedToastCompletion.CompleteAsync(connection, changeSet, cancellationToken);
        var plan = EdgeDiffPlanner.Plan(changes, rule, state);
        if (plan.Positions.Count > 0 || plan.Failures.Count > 0)
            await WriteAsync(connection, tableName, plan, cancellationToken);

        await transaction.CommitAsync(cancellationToken);
        return plan;
    }

    /// <param name="wholeTable">A truncate is in the set: load the edges of every record of the table.</param>
    private async Task<SidecarState> LoadStateAsync(NpgsqlConnection connection, string tableName, string[] recordIds, bool wholeTable, CancellationToken cancellationToken)
    {
        var state = new SidecarState();
        var records = wholeTable ? $"(record_id = ANY($2) OR record_id IN (SELECT record_id FROM {tables.BucketEdges} WHERE table_name = $1))" : "record_id = ANY($2)";
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                // Serialises consumers of the same table (a fail-over overlap) so the diff reads what the last writer wrote.
                Command("SELECT pg_advisory_xact_lock(hashtext($1))", "synchro:" + tableName),
                Command($"SELECT record_id, commit_lsn, change_idx FROM {tables.RecordPositions} WHERE table_name = $1 AND {records}", tableName, recordIds),
                Command($"SELECT record_id, bucket_id, checksum, lsn FROM {tables.BucketEdges} WHERE table_name = $1 AND {records}", tableName, recordIds),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            state.Positions[reader.GetString(0)] = new ChangePosition((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1), reader.GetInt32(2));
        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var recordId = reader.GetString(0);
            if (!state.Edges.TryGetValue(recordId, out var edges))
                state.Edges[recordId] = edges = [];
            edges.Add(new BucketEdge(reader.GetString(1), reader.GetInt64(2), (ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(3)));
        }

        return state;
    }

    private async Task WriteAsync(NpgsqlConnection connection, string tableName, SidecarPlan plan, CancellationToken cancellationToken)
    {
        // No flush per change set: the position store commits synchronously in the same database
        // before any LSN is acknowledged, and WAL is flushed in order, so this commit is durable by then.
        await using var batch = new NpgsqlBatch(connection) { BatchCommands = { Command("SET LOCAL synchronous_commit = off") } };

        if (plan.Changelog.Count > 0)
        {
            // WITH ORDINALITY keeps the planned order, so seq follows commit order within the set.
            batch.BatchCommands.Add(Command(
                $"""
                INSERT INTO {tables.Changelog} (bucket_id, table_name, record_id, operation, commit_lsn, change_idx)
                SELECT bucket_id, $1, record_id, operation, commit_lsn, change_idx
                FROM unnest($2::text[], $3::text[], $4::smallint[], $5::text[]::pg_lsn[], $6::integer[])
                     WITH ORDINALITY AS c(bucket_id, record_id, operation, commit_lsn, change_idx, ord)
                ORDER BY ord
                ON CONFLICT ON CONSTRAINT sync_changelog_idempotency DO NOTHING
                """,
                tableName,
                plan.Changelog.Select(c => c.BucketId).ToArray(),
                plan.Changelog.Select(c => c.RecordId).ToArray(),
                plan.Changelog.Select(c => (short)c.Operation).ToArray(),
                plan.Changelog.Select(c => Lsn.Format(c.CommitLsn)).ToArray(),
                plan.Changelog.Select(c => c.ChangeIndex).ToArray()));
        }

        if (plan.Edges.Count > 0)
        {
            var edges = plan.Edges.SelectMany(e => e.Value.Select(edge => (RecordId: e.Key, Edge: edge))).ToArray();
            batch.BatchCommands.Add(Command($"DELETE FROM {tables.BucketEdges} WHERE table_name = $1 AND record_id = ANY($2)",
                tableName, plan.Edges.Keys.ToArray()));
            batch.BatchCommands.Add(Command(
                $"""
                INSERT INTO {tables.BucketEdges} (table_name, record_id, bucket_id, checksum, lsn)
                SELECT $1, record_id, bucket_id, checksum, lsn FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[]::pg_lsn[]) AS e(record_id, bucket_id, checksum, lsn)
                """,
                tableName,
                edges.Select(e => e.RecordId).ToArray(),
                edges.Select(e => e.Edge.BucketId).ToArray(),
                edges.Select(e => e.Edge.Checksum).ToArray(),
                edges.Select(e => Lsn.Format(e.Edge.Lsn)).ToArray()));
        }

        batch.BatchCommands.Add(Command(
            $"""
            INSERT INTO {tables.RecordPositions} (table_name, record_id, commit_lsn, change_idx)
            SELECT $1, record_id, commit_lsn, change_idx FROM unnest($2::text[], $3::text[]::pg_lsn[], $4::integer[]) AS p(record_id, commit_lsn, change_idx)
            ON CONFLICT (table_name, record_id) DO UPDATE SET commit_lsn = excluded.commit_lsn, change_idx = excluded.change_idx
            """,
            tableName,
            plan.Positions.Keys.ToArray(),
            plan.Positions.Values.Select(p => Lsn.Format(p.CommitLsn)).ToArray(),
            plan.Positions.Values.Select(p => p.ChangeIndex).ToArray()));

        foreach (var failure in plan.Failures)
        {
            batch.BatchCommands.Add(Command(
                $"""
                INSERT INTO {tables.RuleFailures} (table_name, record_id, operation, commit_lsn, change_idx, error, payload)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
                ON CONFLICT ON CONSTRAINT sync_rule_failures_idempotency DO NOTHING
                """,
                tableName, failure.RecordId, (short)failure.Operation, new NpgsqlLogSequenceNumber(failure.CommitLsn),
                failure.ChangeIndex, failure.Error, JsonSerializer.Serialize(failure.Change)));
        }

        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    private static NpgsqlBatchCommand Command(string sql, params object[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            // Npgsql infers every type here but pg_lsn, which must be named (arrays of it travel as text[]).
            command.Parameters.Add(value is NpgsqlLogSequenceNumber
                ? new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.PgLsn }
                : new NpgsqlParameter { Value = value });
        }

        return command;
    }
}
