using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Sources;

namespace Synchro.Bridge.Position;

/// <summary>
/// Decides the generation at the start of every run of the slot reader, from what sync_runs recorded
/// (system identifier, timeline) and what the server reports. A new generation cuts every stored
/// position past its start back to it (sync_runs, sync_apply_partitions, sync_record_positions,
/// sync_wal_position), so the changes that now come with lower LSNs are applied instead of being
/// taken for replays, and moves the changelog rows of those positions out of sync_changelog_pending.
/// Change batches of an older generation still in the queues are superseded, and subscribers are
/// told by the <c>Synchro-Generation</c> headers (invariant 10).
/// </summary>
internal sealed class SourceGenerations(SidecarSessions sessions, SidecarTables tables)
{
    /// <returns>The generation, and whether it is a new one (with why).</returns>
    public Task<(SourceGeneration Generation, string? NewBecause)> EnterAsync(
        string source, string slot, IReadOnlyList<TableName> sourceTables, ServerTimeline server, CancellationToken cancellationToken) =>
        sessions.RunAsync(async connection =>
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var (number, systemIdentifier, timeline, start, recorded) = await ReadAsync(connection, source, slot, cancellationToken);

            string? because = null;
            ulong cut = 0;
            if (systemIdentifier is not null && systemIdentifier != server.SystemIdentifier)
            {
                because = $"the server is another cluster (system identifier {server.SystemIdentifier}, was {systemIdentifier}): a restore into a new cluster";
            }
            else if (timeline is { } earlier && earlier != server.Timeline)
            {
                // The sidecar tables moved with the database: everything they record lies on the history both
                // timelines share (a batch read on the old timeline is never applied on the new one, see
                // PostgresSidecarStore), so the new one starts after it (at or before the real fork point; a
                // subscriber resuming there re-applies at most what the bridge re-reads anyway). Npgsql's
                // TIMELINE_HISTORY cannot read the fork point (it takes the file's text for bytes).
                cut = recorded;
                because = $"the server is on timeline {server.Timeline}, no longer {earlier} (a promoted standby or a point-in-time recovery)";
            }
            else if (recorded > server.WalEnd)
            {
                because = $"a stored position ({Lsn.Format(recorded)}) lies beyond the server's WAL ({Lsn.Format(server.WalEnd)}): the sidecar tables come from another history";
            }

            if (because is not null)
            {
                number++;
                start = cut;
                await CutBackAsync(connection, source, slot, sourceTables, cut, server.WalEnd, cancellationToken);
            }

            await using (var record = new NpgsqlCommand(
                $"UPDATE {tables.Runs} SET generation = $2, system_identifier = $3, timeline = $4, generation_start_lsn = $5 WHERE source = $1", connection))
            {
                record.Parameters.Add(new NpgsqlParameter { Value = source });
                record.Parameters.Add(new NpgsqlParameter { Value = number });
                record.Parameters.Add(new NpgsqlParameter { Value = server.SystemIdentifier });
                record.Parameters.Add(new NpgsqlParameter { Value = (long)server.Timeline });
                record.Parameters.Add(new NpgsqlParameter { Value = new NpgsqlLogSequenceNumber(start), NpgsqlDbType = NpgsqlDbType.PgLsn });
                await record.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return (new SourceGeneration(number, start), because);
        }, cancellationToken);

    private async Task<(long Number, string? SystemIdentifier, long? Timeline, ulong Start, ulong Recorded)> ReadAsync(
        NpgsqlConnection connection, string source, string slot, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand($"INSERT INTO {tables.Runs} (source, epoch) VALUES ($1, 0) ON CONFLICT (source) DO NOTHING") { Parameters = { new() { Value = source } } },
                new NpgsqlBatchCommand(
                    $"""
                    SELECT r.generation, r.system_identifier, r.timeline, coalesce(r.generation_start_lsn, '0/0')::text,
                           greatest(coalesce(r.applied_commit_lsn, '0/0'),
                                    (SELECT max(applied_commit_lsn) FROM {tables.ApplyPartitions} WHERE source = $1),
                                    (SELECT '0/0'::pg_lsn + confirmed_lsn FROM {tables.WalPosition} WHERE slot_name = $2))::text
                    FROM {tables.Runs} r WHERE r.source = $1 FOR UPDATE
                    """)
                {
                    Parameters = { new() { Value = source }, new() { Value = slot } },
                },
            },
        };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetInt64(2),
            Lsn.Parse(reader.GetString(3)), Lsn.Parse(reader.GetString(4)));
    }

    /// <summary>
    /// Every stored position past <paramref name="start"/> goes back to it: each says "applied up to
    /// here", which still holds for the shared history up to the fork, and never again past it. The
    /// slot's position is the exception: start-up has already measured it against this server's slot
    /// (a gap accepted, a new slot's start stored), so it goes back only from beyond the server's WAL.
    /// </summary>
    private async Task CutBackAsync(NpgsqlConnection connection, string source, string slot, IReadOnlyList<TableName> sourceTables, ulong start, ulong walEnd, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                Command($"UPDATE {tables.Runs} SET applied_commit_lsn = $2, applied_change_idx = 0 WHERE source = $1 AND applied_commit_lsn > $2", source, start),
                Command($"UPDATE {tables.ApplyPartitions} SET applied_commit_lsn = $2, applied_change_idx = 0, updated_at = now() WHERE source = $1 AND applied_commit_lsn > $2", source, start),
                Command($"UPDATE {tables.RecordPositions} SET commit_lsn = $2, change_idx = 0 WHERE table_name = ANY($1) AND commit_lsn > $2",
                    sourceTables.Select(t => t.SidecarName).ToArray(), start),
                new NpgsqlBatchCommand($"UPDATE {tables.WalPosition} SET confirmed_lsn = $2, updated_at = now() WHERE slot_name = $1 AND confirmed_lsn > $3")
                {
                    Parameters = { new() { Value = slot }, new() { Value = checked((long)start) }, new() { Value = checked((long)walEnd) } },
                },
                // Applied, but waiting for other partitions in the old history: readers get them now, before anything new.
                new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(hashtext($1))") { Parameters = { new() { Value = "synchro:changelog:" + tables.Schema } } },
                Command(
                    $"""
                    WITH moved AS (DELETE FROM {tables.ChangelogPending} WHERE source = $1 AND commit_lsn > $2 RETURNING *)
                    INSERT INTO {tables.Changelog} (bucket_id, table_name, record_id, operation, commit_lsn, change_idx)
                    SELECT bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM moved ORDER BY commit_lsn, change_idx, ord
                    ON CONFLICT ON CONSTRAINT sync_changelog_once DO NOTHING
                    """, source, start),
            },
        };
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    private static NpgsqlBatchCommand Command(string sql, object first, ulong lsn) => new(sql)
    {
        Parameters =
        {
            new() { Value = first },
            new() { Value = new NpgsqlLogSequenceNumber(lsn), NpgsqlDbType = NpgsqlDbType.PgLsn },
        },
    };
}
