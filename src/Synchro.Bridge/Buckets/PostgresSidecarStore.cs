using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Replication;
using Synchro.Contracts;
using Synchro.Bridge.Sidecar;

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

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        var latestEpoch = await LockTableAsync(connection, tableName, changeSet.Source, cancellationToken);
        if (changeSet.RunEpoch < latestEpoch)
            return new SidecarPlan { Superseded = true };

        var changes = await UnchangedToastCompletion.CompleteAsync(connection, transaction, changeSet, cancellationToken);
        var plan = new SidecarPlan();
        // A TRUNCATE is applied set-based in SQL, between the changes before and after it.
        var start = 0;
        for (var i = 0; i <= changes.Count; i++)
        {
            if (i < changes.Count && changes[i].Operation != ChangeOperation.Truncate)
                continue;
            if (i > start)
                plan.Add(await ApplyRowChangesAsync(connection, tableName, changes.Skip(start).Take(i - start).ToList(), rule, cancellationToken));
            if (i < changes.Count)
                plan.Add(await TruncateAsync(connection, tableName, changes[i], cancellationToken));
            start = i + 1;
        }

        await transaction.CommitAsync(cancellationToken);
        return plan;
    }

    /// <summary>
    /// Serialises consumers of the same table (a fail-over overlap) so the diff reads what the last
    /// writer wrote, and returns the epoch of the source's latest run.
    /// </summary>
    private async Task<long> LockTableAsync(NpgsqlConnection connection, string tableName, string source, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                Command("SELECT pg_advisory_xact_lock(hashtext($1))", "synchro:" + tableName),
                Command($"SELECT coalesce((SELECT epoch FROM {tables.Runs} WHERE source = $1), 0)", source),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return reader.GetInt64(0);
    }

    private async Task<SidecarPlan> ApplyRowChangesAsync(NpgsqlConnection connection, string tableName, List<RowChange> changes, IBucketRule rule, CancellationToken cancellationToken)
    {
        var recordIds = changes.Select(c => c.RecordId).Distinct(StringComparer.Ordinal).ToArray();
        var state = await LoadStateAsync(connection, tableName, recordIds, cancellationToken);
        var plan = EdgeDiffPlanner.Plan(changes, rule, state);
        if (plan.Positions.Count > 0 || plan.Failures.Count > 0)
            await WriteAsync(connection, tableName, plan, cancellationToken);
        return plan;
    }

    private async Task<SidecarState> LoadStateAsync(NpgsqlConnection connection, string tableName, string[] recordIds, CancellationToken cancellationToken)
    {
        var state = new SidecarState();
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                // The empty record id is the table's last TRUNCATE.
                Command($"SELECT record_id, commit_lsn, change_idx FROM {tables.RecordPositions} WHERE table_name = $1 AND (record_id = ANY($2) OR record_id = '')", tableName, recordIds),
                Command($"SELECT record_id, bucket_id, checksum, lsn FROM {tables.BucketEdges} WHERE table_name = $1 AND record_id = ANY($2)", tableName, recordIds),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var position = new ChangePosition((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1), reader.GetInt32(2));
            var recordId = reader.GetString(0);
            if (recordId.Length == 0)
                state.TruncatedAt = position;
            else
                state.Positions[recordId] = position;
        }

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

    /// <summary>
    /// Every record of the table leaves every bucket it is in, in SQL: memory does not grow with the
    /// table. A replayed TRUNCATE (the table's truncate position is at or past it) changes nothing;
    /// records changed after it (a replay arriving late) keep their edges.
    /// </summary>
    private async Task<SidecarPlan> TruncateAsync(NpgsqlConnection connection, string tableName, RowChange truncate, CancellationToken cancellationToken)
    {
        var lsn = new NpgsqlLogSequenceNumber(truncate.CommitLsn);
        const string NotChangedSince =
            "NOT EXISTS (SELECT 1 FROM {0} p WHERE p.table_name = $1 AND p.record_id = e.record_id AND (p.commit_lsn, p.change_idx) > ($2, $3))";
        var notChangedSince = string.Format(System.Globalization.CultureInfo.InvariantCulture, NotChangedSince, tables.RecordPositions);
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                Command($"SELECT EXISTS (SELECT 1 FROM {tables.RecordPositions} WHERE table_name = $1 AND record_id = '' AND (commit_lsn, change_idx) >= ($2, $3))", tableName, lsn, truncate.ChangeIndex),
            },
        };
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
        {
            await reader.ReadAsync(cancellationToken);
            if (reader.GetBoolean(0))
                return new SidecarPlan { Replayed = 1 };
        }

        await using var apply = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                Command("SET LOCAL synchronous_commit = off"),
                Command(
                    $"""
                    INSERT INTO {tables.Changelog} (bucket_id, table_name, record_id, operation, commit_lsn, change_idx)
                    SELECT e.bucket_id, $1, e.record_id, 3, $2, $3 FROM {tables.BucketEdges} e
                    WHERE e.table_name = $1 AND {notChangedSince}
                    ORDER BY e.record_id, e.bucket_id
                    ON CONFLICT ON CONSTRAINT sync_changelog_idempotency DO NOTHING
                    """, tableName, lsn, truncate.ChangeIndex),
                Command($"DELETE FROM {tables.BucketEdges} e WHERE e.table_name = $1 AND {notChangedSince}", tableName, lsn, truncate.ChangeIndex),
                Command($"DELETE FROM {tables.RecordPositions} WHERE table_name = $1 AND record_id <> '' AND (commit_lsn, change_idx) < ($2, $3)", tableName, lsn, truncate.ChangeIndex),
                Command(
                    $"""
                    INSERT INTO {tables.RecordPositions} (table_name, record_id, commit_lsn, change_idx) VALUES ($1, '', $2, $3)
                    ON CONFLICT (table_name, record_id) DO UPDATE SET commit_lsn = excluded.commit_lsn, change_idx = excluded.change_idx
                    """, tableName, lsn, truncate.ChangeIndex),
            },
        };
        await apply.ExecuteNonQueryAsync(cancellationToken);
        return new SidecarPlan { SetBasedChangelogRows = apply.BatchCommands[1].RecordsAffected };
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
