using ChangePosition = Synchro.Contracts.ChangePosition;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// Applies a batch in one transaction: reads the state of the records it touches (and of their
/// parents), plans the diff in memory in commit order across tables, and writes changelog, edges,
/// record positions and rule failures with set-based statements. Cascades and truncates run in SQL
/// at their place in the stream, so memory does not grow with the number of records they move.
/// </summary>
public sealed class PostgresSidecarStore(SidecarSessions sessions, SidecarTables tables) : ISidecarStore
{
    public async Task<ApplyOutcome> ApplyAsync(ChangeBatch batch, BucketRuleSet rules, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(rules);
        var layout = ApplyLayout.Parse(batch.Layout);
        await using var session = await sessions.OpenAsync(cancellationToken);
        var connection = session.Connection;
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        var (latestGeneration, latestEpoch, applied, pendingRows, openFailures, timeline) = await LockPartitionAsync(connection, batch.Source, batch.Partition, cancellationToken);
        // A batch of an older generation comes from a history the source left (a restore, a promotion): its epochs count no more.
        if ((batch.Generation, batch.RunEpoch).CompareTo((latestGeneration, latestEpoch)) < 0)
            return new ApplyOutcome { Superseded = true };
        // Read on a timeline the database has left: queued before a lagging standby was promoted, its
        // changes may never have reached the new history. Applied, they would write records that do not
        // exist and positions the new timeline's changes would be taken for replays of.
        if (batch.Timeline != 0 && timeline is { } now && now != batch.Timeline)
            return new ApplyOutcome { LeftTimeline = now };
        var partitionApplied = applied.Of(layout, batch.Partition);
        // The part's predecessor in its partition (same run, same layout) must be applied: applied, it
        // recorded a position at least as far. Nothing recorded yet (the first parts after the first start
        // or a change of Apply:Partitions) means it was not either.
        if (batch.PreviousCommitLsn != 0 && !(partitionApplied >= ChangePositions.At(batch.PreviousCommitLsn, batch.PreviousChangeIndex)))
            return new ApplyOutcome { PreviousMissing = true };

        var changes = new List<StagedChange>();
        foreach (var set in batch.Sets)
        {
            var table = new TableName(set.Schema, set.Table);
            rules.For(table); // a table this consumer does not know holds the batch, with what to configure
            foreach (var change in await UnchangedToastCompletion.CompleteAsync(connection, transaction, set, cancellationToken))
                changes.Add(new StagedChange(table, change));
        }

        // Each set is in commit order; merged, the batch is too.
        changes.Sort((a, b) => a.Position.CompareTo(b.Position));
        // Partitions apply side by side, so their changelog rows wait to enter sync_changelog in commit
        // order; a single partition writes it directly, unless rows of an earlier layout still wait.
        var changelogPending = !layout.IsSingle || pendingRows;
        // Written with the first read, to save a round trip: the transaction makes it count only with the rest.
        var setApplied = changes.Count > 0 && !(changes[^1].Position <= partitionApplied) ? SetApplied(batch, layout, changes[^1].Position) : null;
        var outcome = await ApplyChangesAsync(connection, transaction, batch.Source, changes, rules, applied, openFailures, changelogPending, cancellationToken, setApplied);
        await transaction.CommitAsync(cancellationToken);
        return outcome;
    }

    /// <summary>Plans and writes the changes (in commit order), segment by segment around the set-based steps.</summary>
    internal async Task<ApplyOutcome> ApplyChangesAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string source, IReadOnlyList<StagedChange> changes, BucketRuleSet rules, AppliedPositions applied, bool openFailures, bool changelogPending,
        CancellationToken cancellationToken, NpgsqlBatchCommand? withFirstRead = null)
    {
        ArgumentNullException.ThrowIfNull(applied);
        var outcome = new ApplyOutcome { Changes = changes.Count };
        var pending = changes.Where(c => c.FailureId is not null || !applied.Covers(c)).ToList();
        var functionOutputs = await RuleFunctions.EvaluateAsync(connection, transaction, pending, rules, cancellationToken);
        var state = new Dictionary<RecordKey, RecordState>();
        var planner = new BatchPlanner(rules, state, functionOutputs);
        var writer = new SegmentWriter(connection, tables, source, openFailures, changelogPending);
        await LoadStateAsync(connection, BatchPlanner.KeysNeeded(changes, 0, rules), state, rules, cancellationToken, withFirstRead);

        var index = 0;
        while (index < changes.Count)
        {
            var plan = planner.PlanSegment(changes, ref index, applied);
            outcome.Skipped += plan.Skipped;
            outcome.Failures.AddRange(plan.Failures.Where(f => f.StoredId is null));
            outcome.FailuresReplayed += plan.Replayed.Count;
            outcome.FailuresObsolete += plan.Obsolete.Count;
            outcome.ChangelogRows += await writer.WriteAsync(plan, cancellationToken);
            if (plan.Step is null)
                continue;

            outcome.ChangelogRows += await writer.RunAsync(plan.Step, rules, cancellationToken);
            if (plan.Step is Cascade { RootLeaves.Count: > 0 } cascade)
                outcome.ChangelogRows += await writer.WriteChangelogAsync(cascade.RootLeaves, cancellationToken);
            // The step changed records of these tables in SQL: what the planner holds of them is stale.
            var stale = rules.DescendantTables(plan.Step.Table).Select(t => t.SidecarName).ToHashSet();
            if (plan.Step is Truncate)
                stale.Add(plan.Step.Table.SidecarName);
            foreach (var key in state.Keys.Where(k => stale.Contains(k.Table)).ToList())
                state.Remove(key);
            await LoadStateAsync(connection, BatchPlanner.KeysNeeded(changes, index, rules).Where(k => !state.ContainsKey(k)), state, rules, cancellationToken);
        }

        return outcome;
    }

    /// <summary>
    /// Serialises consumers of the same partition of a source (a fail-over overlap) so the diff reads
    /// what the last writer wrote; partitions share the source's lock, which replaying failures takes
    /// alone. Returns the epoch of the source's latest run, what each partition has applied, and
    /// whether changelog rows of the source still wait in sync_changelog_pending, and whether any rule
    /// failure is open (a change that applies supersedes its record's earlier failures).
    /// </summary>
    private async Task<(long Generation, long Epoch, AppliedPositions Applied, bool PendingRows, bool OpenFailures, uint? Timeline)> LockPartitionAsync(NpgsqlConnection connection, string source, int partition, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                SegmentWriter.Command(SidecarTables.AbandonedTransactionTimeout),
                SegmentWriter.Command("SELECT pg_advisory_xact_lock_shared(hashtext($1))", "synchro:apply:" + source),
                SegmentWriter.Command("SELECT pg_advisory_xact_lock(hashtext($1))", $"synchro:apply:{source}:{partition}"),
                SegmentWriter.Command($"SELECT epoch, applied_commit_lsn, applied_change_idx, generation FROM {tables.Runs} WHERE source = $1", source),
                SegmentWriter.Command($"SELECT layout, partition, applied_commit_lsn, applied_change_idx FROM {tables.ApplyPartitions} WHERE source = $1", source),
                // The timeline this server writes on: the first 8 hex digits of its current WAL file's name
                // (none in recovery, where nothing can be written anyway).
                SegmentWriter.Command(
                    $"""
                    SELECT EXISTS (SELECT 1 FROM {tables.ChangelogPending} WHERE source = $1), EXISTS (SELECT 1 FROM {tables.RuleFailures} f WHERE resolved_at IS NULL AND {SegmentWriter.OfThisSource("$1")}),
                           CASE WHEN NOT pg_is_in_recovery() THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END
                    """,
                    source),
            },
        };
        // The reader skips statements without rows (SET): it starts at the first lock's result.
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        await reader.NextResultAsync(cancellationToken);
        long epoch = 0, generation = 0;
        var positions = new Dictionary<ApplyLayout, IReadOnlyDictionary<int, ChangePosition>>();
        if (await reader.ReadAsync(cancellationToken))
        {
            epoch = reader.GetInt64(0);
            generation = reader.GetInt64(3);
            if (!reader.IsDBNull(1))
                positions[ApplyLayout.OnePartition] = new Dictionary<int, ChangePosition> { [0] = ChangePositions.At((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(1), reader.GetInt32(2)) };
        }

        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var layout = ApplyLayout.Parse(reader.GetString(0));
            if (!positions.TryGetValue(layout, out var partitions))
                positions[layout] = partitions = new Dictionary<int, ChangePosition>();
            ((Dictionary<int, ChangePosition>)partitions)[reader.GetInt32(1)] = ChangePositions.At((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(2), reader.GetInt32(3));
        }

        await reader.NextResultAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (generation, epoch, new AppliedPositions(positions), reader.GetBoolean(0), reader.GetBoolean(1), reader.IsDBNull(2) ? null : (uint)reader.GetInt64(2));
    }

    /// <summary>
    /// Records how far the part's partition has applied. A barrier part (a TRUNCATE's batch) was applied
    /// after everything before it, in every partition: it moves every partition of the layout to it, so
    /// a change it removed is recognised as a replay whichever partition it lands in.
    /// </summary>
    private NpgsqlBatchCommand SetApplied(ChangeBatch batch, ApplyLayout layout, ChangePosition position)
    {
        var lsn = new NpgsqlLogSequenceNumber(position.CommitLsn.Value);
        return layout.IsSingle
            ? SegmentWriter.Command(
                $"""
                INSERT INTO {tables.Runs} AS r (source, epoch, applied_commit_lsn, applied_change_idx) VALUES ($1, 0, $2, $3)
                ON CONFLICT (source) DO UPDATE SET applied_commit_lsn = excluded.applied_commit_lsn, applied_change_idx = excluded.applied_change_idx
                """,
                batch.Source, lsn, position.ChangeIndex)
            : SegmentWriter.Command(
                $"""
                INSERT INTO {tables.ApplyPartitions} AS a (source, layout, partition, applied_commit_lsn, applied_change_idx)
                SELECT $1, $4, p, $2, $3 FROM unnest($5::integer[]) AS p
                ON CONFLICT (source, layout, partition) DO UPDATE SET applied_commit_lsn = excluded.applied_commit_lsn, applied_change_idx = excluded.applied_change_idx, updated_at = now()
                WHERE (a.applied_commit_lsn, a.applied_change_idx) < (excluded.applied_commit_lsn, excluded.applied_change_idx)
                """,
                batch.Source, lsn, position.ChangeIndex, layout.Key, batch.Barrier ? Enumerable.Range(0, layout.Partitions).ToArray() : new[] { batch.Partition });
    }

    /// <summary>
    /// Reads positions, edges and whether records have children, for every key not yet in <paramref name="state"/>;
    /// <paramref name="alsoRun"/> (a write without results) goes in the same round trip.
    /// </summary>
    private async Task LoadStateAsync(
        NpgsqlConnection connection, IEnumerable<RecordKey> keys, Dictionary<RecordKey, RecordState> state, BucketRuleSet rules, CancellationToken cancellationToken,
        NpgsqlBatchCommand? alsoRun = null)
    {
        var wanted = keys.Where(k => !state.ContainsKey(k)).Distinct().ToArray();
        if (wanted.Length == 0)
        {
            if (alsoRun is not null)
            {
                await using var alone = new NpgsqlBatch(connection) { BatchCommands = { alsoRun } };
                await alone.ExecuteNonQueryAsync(cancellationToken);
            }

            return;
        }

        foreach (var key in wanted)
            state[key] = new RecordState();
        var parentTables = rules.All.Where(r => rules.HasChildTables(r.Table)).Select(r => r.Table.SidecarName).ToHashSet();
        var parents = wanted.Where(k => parentTables.Contains(k.Table)).ToArray();

        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                SegmentWriter.Command(
                    $"SELECT p.table_name, p.record_id, p.commit_lsn, p.change_idx, p.removed, p.checksum, p.parent_table, p.parent_record_id FROM {SegmentWriter.RowsOfKeys(tables.RecordPositions, "p")}",
                    wanted.Select(k => k.Table).ToArray(), wanted.Select(k => k.RecordId).ToArray()),
                SegmentWriter.Command(
                    $"SELECT e.table_name, e.record_id, e.bucket_id, e.checksum, e.lsn FROM {SegmentWriter.RowsOfKeys(tables.BucketEdges, "e")} ORDER BY e.table_name, e.record_id, e.bucket_id",
                    wanted.Select(k => k.Table).ToArray(), wanted.Select(k => k.RecordId).ToArray()),
                SegmentWriter.Command(
                    $"SELECT k.table_name, k.record_id FROM {SegmentWriter.Keys} CROSS JOIN LATERAL (SELECT 1 FROM {tables.RecordPositions} c WHERE c.parent_table = k.table_name AND c.parent_record_id = k.record_id LIMIT 1) c",
                    parents.Select(k => k.Table).ToArray(), parents.Select(k => k.RecordId).ToArray()),
            },
        };
        if (alsoRun is not null)
            batch.BatchCommands.Add(alsoRun);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var record = state[new RecordKey(reader.GetString(0), reader.GetString(1))];
            record.Exists = true;
            record.Position = ChangePositions.At((ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(2), reader.GetInt32(3));
            record.Removed = reader.GetBoolean(4);
            record.Checksum = reader.IsDBNull(5) ? null : reader.GetInt32(5);
            record.Parent = reader.IsDBNull(6) ? null : new RecordKey(reader.GetString(6), reader.GetString(7));
        }

        await reader.NextResultAsync(cancellationToken);
        var edges = new Dictionary<RecordKey, List<BucketEdge>>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var key = new RecordKey(reader.GetString(0), reader.GetString(1));
            if (!edges.TryGetValue(key, out var list))
                edges[key] = list = [];
            list.Add(new BucketEdge(reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetInt32(3), reader.IsDBNull(4) ? 0 : (ulong)reader.GetFieldValue<NpgsqlLogSequenceNumber>(4)));
        }

        foreach (var (key, list) in edges)
        {
            // Edges without a position row: written by a synchro server before the bridge adopted its tables.
            state[key].Exists = true;
            state[key].Edges = list;
            state[key].StoredBuckets = list.Select(e => e.BucketId).ToArray();
        }

        await reader.NextResultAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            state[new RecordKey(reader.GetString(0), reader.GetString(1))].HasChildren = true;
    }
}
