using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets;

/// <summary>One row of sync_rule_failures, as <c>synchro-bridge failures list</c> shows it.</summary>
public sealed record StoredFailure(long Id, DateTimeOffset CreatedAt, string Table, string RecordId, ChangeOperation Operation, string At, string Error, DateTimeOffset? ResolvedAt, string? Resolution);

/// <summary>Lists rule failures and replays the open ones through the current rules and data.</summary>
public sealed class RuleFailures(NpgsqlDataSource dataSource, SidecarSessions sessions, SidecarTables tables, PostgresSidecarStore store)
{
    private const int ReplayChunk = 1_000;

    /// <summary>The failures of one source (sources sharing the sidecar schema each keep their own).</summary>
    public async Task<IReadOnlyList<StoredFailure>> ListAsync(string source, TableName? table, bool includeResolved, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"""
            SELECT id, created_at, table_name, record_id, operation, coalesce(commit_lsn::text || '#' || change_idx, ''), error_text, resolved_at, resolution
            FROM {tables.RuleFailures} f
            WHERE ($1::text IS NULL OR table_name = $1) AND ($2 OR resolved_at IS NULL) AND {SegmentWriter.OfThisSource("$3")}
            ORDER BY commit_lsn, change_idx, id
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)table?.SidecarName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = includeResolved });
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        var failures = new List<StoredFailure>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            failures.Add(new StoredFailure(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetString(2), reader.GetString(3), (ChangeOperation)reader.GetInt16(4),
                reader.GetString(5), reader.GetString(6), reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7), reader.IsDBNull(8) ? null : reader.GetString(8)));
        }

        return failures;
    }

    /// <summary>
    /// Applies every open failure (of one table, or all) again, in stream order, with the rules and
    /// data as they are now: a change that places now is written at its own position and resolved; a
    /// change the record has had a later change since is resolved as obsolete; one that still fails
    /// stays open with its new error. Serialised with the running bucket consumer of the source.
    /// <para>
    /// While changelog rows of the source wait in sync_changelog_pending (apply partitions, one of
    /// which holds the acknowledgement back), earlier changes of a replayed record may be among them:
    /// the replayed rows wait there too and enter sync_changelog with them, in commit order, when the
    /// running bridge next acknowledges. Written directly, they would take a lower seq than those
    /// earlier changes, and a reader would see the record in a bucket it left.
    /// </para>
    /// </summary>
    public async Task<ApplyOutcome> ReplayAsync(string source, BucketRuleSet rules, TableName? table, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(rules);
        var total = new ApplyOutcome();
        var after = (Lsn: new NpgsqlLogSequenceNumber(0), Index: -1);
        while (true)
        {
            await using var session = await sessions.OpenAsync(cancellationToken);
            var connection = session.Connection;
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await using (var timeout = new NpgsqlCommand(SidecarTables.AbandonedTransactionTimeout, connection))
                await timeout.ExecuteNonQueryAsync(cancellationToken);
            // Under the source's apply lock no partition writes: whether rows wait stays true while this chunk is written.
            bool pending;
            await using (var locking = new NpgsqlBatch(connection)
            {
                BatchCommands =
                {
                    SegmentWriter.Command("SELECT pg_advisory_xact_lock(hashtext($1))", "synchro:apply:" + source),
                    SegmentWriter.Command($"SELECT EXISTS (SELECT 1 FROM {tables.ChangelogPending} WHERE source = $1)", source),
                },
            })
            {
                await using var reader = await locking.ExecuteReaderAsync(cancellationToken);
                await reader.NextResultAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                pending = reader.GetBoolean(0);
            }

            var chunk = await OpenChunkAsync(connection, source, table, after, cancellationToken);
            if (chunk.Count == 0)
                return total;
            var outcome = await store.ApplyChangesAsync(connection, transaction, source, chunk, rules, AppliedPositions.None, openFailures: true, pending, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            total.Changes += outcome.Changes;
            total.ChangelogRows += outcome.ChangelogRows;
            total.FailuresReplayed += outcome.FailuresReplayed;
            total.FailuresObsolete += outcome.FailuresObsolete;
            var last = chunk[^1].Position;
            after = (new NpgsqlLogSequenceNumber(last.CommitLsn.Value), last.ChangeIndex);
        }
    }

    private async Task<List<StagedChange>> OpenChunkAsync(NpgsqlConnection connection, string source, TableName? table, (NpgsqlLogSequenceNumber Lsn, int Index) after, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"""
            SELECT id, table_name, payload FROM {tables.RuleFailures} f
            WHERE resolved_at IS NULL AND payload IS NOT NULL AND commit_lsn IS NOT NULL AND {SegmentWriter.OfThisSource("$4")}
              AND ($1::text IS NULL OR table_name = $1) AND (commit_lsn, change_idx) > ($2, $3)
            ORDER BY commit_lsn, change_idx
            LIMIT {ReplayChunk}
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)table?.SidecarName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = after.Lsn, NpgsqlDbType = NpgsqlDbType.PgLsn });
        command.Parameters.Add(new NpgsqlParameter { Value = after.Index });
        command.Parameters.Add(new NpgsqlParameter { Value = source });
        var chunk = new List<StagedChange>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var change = JsonSerializer.Deserialize<RowChange>(reader.GetString(2))
                ?? throw new SynchroException($"sync_rule_failures row {reader.GetInt64(0)} has an empty payload.");
            chunk.Add(new StagedChange(TableName.Parse(reader.GetString(1)), change, reader.GetInt64(0)));
        }

        return chunk;
    }
}
