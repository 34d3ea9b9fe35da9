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
/// Writes planned segments and runs set-based steps inside the apply transaction. Changelog rows are
/// inserted in planned order, after an exclusive lock that is held until commit: <c>seq</c> is taken
/// in commit order, and no transaction can commit a lower <c>seq</c> after a higher one is visible,
/// so a reader that pulls <c>seq &gt; checkpoint</c> never misses a row.
/// </summary>
/// <param name="source">The source whose changes these are: its rule failures are its own.</param>
/// <param name="openFailures">Whether sync_rule_failures has unresolved rows, which later changes of their records supersede.</param>
/// <param name="changelogPending">Whether changelog rows go to sync_changelog_pending (apply partitions) instead of sync_changelog.</param>
internal sealed class SegmentWriter(NpgsqlConnection connection, SidecarTables tables, string source, bool openFailures, bool changelogPending = false)
{

    /// <summary>The changelog table and columns rows go to, with <c>$n</c> (the source) first for the pending table.</summary>
    private string ChangelogInto => !changelogPending
        ? $"{tables.Changelog} (bucket_id, table_name, record_id, operation, commit_lsn, change_idx)"
        : $"{tables.ChangelogPending} (source, bucket_id, table_name, record_id, operation, commit_lsn, change_idx)";

    private string SourceColumn(int sourceParameter) => !changelogPending ? "" : $"${sourceParameter}::text, ";

    /// <summary>A change writes a (bucket, record) row once; pending rows are deduplicated when they move.</summary>
    private string OnConflict => !changelogPending ? "ON CONFLICT ON CONSTRAINT sync_changelog_once DO NOTHING" : "";

    private object?[] WithSource(params object?[] values) => !changelogPending ? values : [.. values, source];

    private bool _changelogLocked;
    private bool _openFailures = openFailures;

    /// <summary>
    /// Rows go to PostgreSQL in slices: each array parameter costs Npgsql buffers in proportion to its
    /// length, so a few thousand rows in one statement would multiply the memory a batch takes.
    /// </summary>
    private const int RowsPerStatement = 1_000;

    /// <summary>
    /// Writes a segment: slice by slice, one round trip carries the slice's changelog rows and the
    /// slice's record writes; the last one also the rule failures.
    /// </summary>
    /// <returns>Changelog rows written.</returns>
    public async Task<int> WriteAsync(SegmentPlan plan, CancellationToken cancellationToken)
    {
        if (!plan.HasWrites)
            return 0;
        // Usually there is no open failure at all: then nothing can be superseded, and the statement is skipped.
        if (plan.Failures.Any(f => f.StoredId is null))
            _openFailures = true;
        var applied = _openFailures ? plan.Applied.Chunk(RowsPerStatement).ToArray() : [];
        var changelog = plan.Changelog.Chunk(RowsPerStatement).ToArray();
        var touched = plan.Touched.Chunk(RowsPerStatement).ToArray();
        var slices = Math.Max(1, Math.Max(changelog.Length, Math.Max(touched.Length, applied.Length)));
        var written = 0;
        for (var i = 0; i < slices; i++)
        {
            await using var batch = NewBatch();
            var insert = i < changelog.Length ? AddChangelogInsert(batch, changelog[i]) : -1;
            if (i < touched.Length)
                AddRecordWrites(batch, touched[i]);
            // Failures before superseding them: a change later in the segment that placed the record supersedes them.
            if (i == 0)
                AddFailureWrites(batch, plan);
            if (i < applied.Length)
                AddSupersededFailures(batch, applied[i]);
            if (batch.BatchCommands.Count == 0)
                continue;
            await batch.ExecuteNonQueryAsync(cancellationToken);
            if (insert >= 0)
                written += batch.BatchCommands[insert].RecordsAffected;
        }

        return written;
    }

    /// <returns>Changelog rows written.</returns>
    public async Task<int> WriteChangelogAsync(IReadOnlyList<ChangelogEntry> changelog, CancellationToken cancellationToken)
    {
        var written = 0;
        foreach (var slice in changelog.Chunk(RowsPerStatement))
        {
            await using var batch = NewBatch();
            var insert = AddChangelogInsert(batch, slice);
            await batch.ExecuteNonQueryAsync(cancellationToken);
            written += batch.BatchCommands[insert].RecordsAffected;
        }

        return written;
    }

    /// <returns>The index of the insert in the batch, to read the rows it wrote.</returns>
    private int AddChangelogInsert(NpgsqlBatch batch, ChangelogEntry[] slice)
    {
        LockChangelog(batch);
        batch.BatchCommands.Add(Command(
            $"""
            INSERT INTO {ChangelogInto}
            SELECT {SourceColumn(7)}bucket_id, table_name, record_id, operation, commit_lsn, change_idx
            FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[]::pg_lsn[], $6::integer[])
                 WITH ORDINALITY AS c(bucket_id, table_name, record_id, operation, commit_lsn, change_idx, ord)
            ORDER BY ord
            {OnConflict}
            """,
            WithSource(
                slice.Select(c => c.BucketId).ToArray(),
                slice.Select(c => c.Table).ToArray(),
                slice.Select(c => c.RecordId).ToArray(),
                slice.Select(c => (short)c.Operation).ToArray(),
                Lsns(slice.Select(c => c.CommitLsn)),
                slice.Select(c => c.ChangeIndex).ToArray())));
        return batch.BatchCommands.Count - 1;
    }

    /// <summary>
    /// A statement batch of the apply transaction. The transaction commits synchronously (the server's
    /// default): a changelog row a reader can see survives a PostgreSQL crash, so its seq is never
    /// issued again to another row.
    /// </summary>
    private NpgsqlBatch NewBatch() => new(connection);

    /// <returns>Changelog rows written.</returns>
    public async Task<int> RunAsync(SetBasedStep step, BucketRuleSet rules, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch(connection);
        LockChangelog(batch);
        var counted = new List<int>();
        var lsn = new NpgsqlLogSequenceNumber(step.At.CommitLsn.Value);
        var table = step.Table.SidecarName;
        // Only links the current rules make count: a table reconfigured away from its parent keeps stale links until its rows change.
        var links = rules.All.OfType<ParentRule>().ToArray();
        var children = links.Select(l => l.Table.SidecarName).ToArray();
        var parents = links.Select(l => l.Parent.SidecarName).ToArray();
        switch (step)
        {
            case Cascade cascade:
                counted.Add(batch.BatchCommands.Count);
                batch.BatchCommands.Add(Command(MoveDescendantsSql("p.parent_table = $6 AND p.parent_record_id = $7", 8),
                    WithSource(lsn, step.At.ChangeIndex, cascade.Buckets.ToArray(), children, parents, cascade.Root.Table, cascade.Root.RecordId)));
                break;

            case Truncate:
                if (rules.HasChildTables(step.Table))
                {
                    counted.Add(batch.BatchCommands.Count);
                    batch.BatchCommands.Add(Command(MoveDescendantsSql("p.parent_table = $6", 7), WithSource(lsn, step.At.ChangeIndex, Array.Empty<string>(), children, parents, table)));
                }

                counted.Add(batch.BatchCommands.Count);
                batch.BatchCommands.Add(Command(
                    $"""
                    WITH logged AS (
                        INSERT INTO {ChangelogInto}
                        SELECT {SourceColumn(4)}bucket_id, table_name, record_id, 3, $2, $3 FROM {tables.BucketEdges} WHERE table_name = $1
                        ORDER BY record_id, bucket_id
                        {OnConflict}
                        RETURNING 1)
                    SELECT count(*) FROM logged
                    """, WithSource(table, lsn, step.At.ChangeIndex)));
                batch.BatchCommands.Add(Command($"DELETE FROM {tables.BucketEdges} WHERE table_name = $1", table));
                batch.BatchCommands.Add(Command($"DELETE FROM {tables.RecordPositions} WHERE table_name = $1", table));
                batch.BatchCommands.Add(Command(
                    $"UPDATE {tables.RuleFailures} f SET resolved_at = now(), resolution = $4 WHERE table_name = $1 AND resolved_at IS NULL AND (commit_lsn, change_idx) < ($2, $3) AND {OfThisSource("$5")}",
                    table, lsn, step.At.ChangeIndex, $"superseded by the TRUNCATE at {step.At}", source));
                break;
        }

        var rows = 0;
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        for (var i = 0; i < batch.BatchCommands.Count; i++)
        {
            if (counted.Contains(i) && await reader.ReadAsync(cancellationToken))
                rows += (int)reader.GetInt64(0);
            await reader.NextResultAsync(cancellationToken);
        }

        return rows;
    }

    public static NpgsqlBatchCommand Command(string sql, params object?[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            // Npgsql infers every type here but pg_lsn, which must be named (it cannot write arrays of it: see Lsns).
            command.Parameters.Add(value switch
            {
                NpgsqlLogSequenceNumber => new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.PgLsn },
                _ => new NpgsqlParameter { Value = value ?? DBNull.Value },
            });
        }

        return command;
    }

    /// <summary>
    /// Every live descendant of the roots (records whose parent link matches <paramref name="roots"/>,
    /// then theirs, down the chain) moves to the buckets in $3: it leaves the others (deepest first)
    /// and enters the new ones (shallowest first), with its stored checksum. Removed records are not
    /// descended into: their subtrees are out of every bucket already. $1, $2: the change's position;
    /// $4, $5: the (child table, parent table) pairs of the parent rules.
    /// </summary>
    private string MoveDescendantsSql(string roots, int sourceParameter) =>
        $"""
        WITH RECURSIVE ruled(table_name, parent_table) AS (SELECT * FROM unnest($4::text[], $5::text[])),
        d(table_name, record_id, depth) AS (
            SELECT p.table_name, p.record_id, 1 FROM {tables.RecordPositions} p JOIN ruled USING (table_name, parent_table)
            WHERE {roots} AND NOT p.removed
            UNION ALL
            SELECT p.table_name, p.record_id, d.depth + 1
            FROM d JOIN {tables.RecordPositions} p ON p.parent_table = d.table_name AND p.parent_record_id = d.record_id
                   JOIN ruled ON ruled.table_name = p.table_name AND ruled.parent_table = p.parent_table
            WHERE NOT p.removed
        ),
        moves AS (
            SELECT 0 AS phase, -d.depth AS depth, d.table_name, d.record_id, e.bucket_id, 3 AS operation
            FROM d JOIN {tables.BucketEdges} e USING (table_name, record_id) WHERE NOT (e.bucket_id = ANY($3::text[]))
            UNION ALL
            SELECT 1, d.depth, d.table_name, d.record_id, b.bucket_id, 1
            FROM d CROSS JOIN unnest($3::text[]) AS b(bucket_id)
            WHERE NOT EXISTS (SELECT 1 FROM {tables.BucketEdges} e WHERE e.table_name = d.table_name AND e.record_id = d.record_id AND e.bucket_id = b.bucket_id)
        ),
        logged AS (
            INSERT INTO {ChangelogInto}
            SELECT {SourceColumn(sourceParameter)}bucket_id, table_name, record_id, operation, $1, $2 FROM moves
            ORDER BY phase, depth, table_name, record_id, bucket_id
            {OnConflict}
            RETURNING 1
        ),
        left_buckets AS (
            DELETE FROM {tables.BucketEdges} e USING d
            WHERE e.table_name = d.table_name AND e.record_id = d.record_id AND NOT (e.bucket_id = ANY($3::text[]))
        ),
        entered_buckets AS (
            INSERT INTO {tables.BucketEdges} (table_name, record_id, bucket_id, checksum, lsn)
            SELECT d.table_name, d.record_id, b.bucket_id, p.checksum, $1
            FROM d JOIN {tables.RecordPositions} p USING (table_name, record_id) CROSS JOIN unnest($3::text[]) AS b(bucket_id)
            ON CONFLICT (table_name, record_id, bucket_id) DO NOTHING
        )
        SELECT count(*) FROM logged
        """;

    /// <summary>
    /// LSNs for a <c>$n::text[]::pg_lsn[]</c> parameter: Npgsql writes no pg_lsn arrays. Rows of one
    /// transaction share their commit LSN, so a run of equal LSNs shares one formatted string.
    /// </summary>
    public static string[] Lsns(IEnumerable<ulong> lsns)
    {
        var formatted = new List<string>();
        ulong last = 0;
        string? text = null;
        foreach (var lsn in lsns)
        {
            if (text is null || lsn != last)
                (last, text) = (lsn, Lsn.Format(lsn));
            formatted.Add(text);
        }

        return [.. formatted];
    }

    /// <summary>The records named by the parameters <c>$1</c> (tables) and <c>$2</c> (record ids), as <c>k</c>.</summary>
    public const string Keys = "unnest($1::text[], $2::text[]) AS k(table_name, record_id)";

    /// <summary>
    /// A sidecar table's rows of the records in <see cref="Keys"/>, as <paramref name="alias"/>: one index
    /// probe per key. A plain join lets the planner hash the whole table for every slice (it costs a
    /// sequential scan below an index probe), which made writing a large transaction quadratic;
    /// <c>OFFSET 0</c> keeps it from flattening the lateral subquery back into such a join.
    /// </summary>
    public static string RowsOfKeys(string table, string alias) =>
        $"{Keys} CROSS JOIN LATERAL (SELECT *, ctid FROM {table} x WHERE x.table_name = k.table_name AND x.record_id = k.record_id OFFSET 0) {alias}";

    private void LockChangelog(NpgsqlBatch batch)
    {
        // Pending rows take their seq later, in the statement that moves them, under this lock.
        if (_changelogLocked || changelogPending)
            return;
        batch.BatchCommands.Add(Command("SELECT pg_advisory_xact_lock(hashtext($1))", "synchro:changelog:" + tables.Schema));
        _changelogLocked = true;
    }

    private void AddRecordWrites(NpgsqlBatch batch, KeyValuePair<RecordKey, RecordState>[] touched)
    {
        // Only the difference to what bucket_edges holds: a record new to the tables has nothing to
        // delete, and a bucket it stays in is updated in place (a HOT update: no index entry is added).
        var left = touched.SelectMany(t => t.Value.StoredBuckets
                .Where(bucket => !t.Value.Edges.Any(e => e.BucketId == bucket))
                .Select(bucket => (t.Key, Bucket: bucket)))
            .ToArray();
        if (left.Length > 0)
        {
            batch.BatchCommands.Add(Command(
                $"""
                DELETE FROM {tables.BucketEdges} WHERE ctid = ANY (ARRAY (
                    SELECT e.ctid FROM unnest($1::text[], $2::text[], $3::text[]) AS k(table_name, record_id, bucket_id)
                    CROSS JOIN LATERAL (SELECT ctid FROM {tables.BucketEdges} x WHERE x.table_name = k.table_name AND x.record_id = k.record_id AND x.bucket_id = k.bucket_id OFFSET 0) e))
                """,
                left.Select(l => l.Key.Table).ToArray(), left.Select(l => l.Key.RecordId).ToArray(), left.Select(l => l.Bucket).ToArray()));
        }

        var edges = touched.SelectMany(t => t.Value.Edges.Select(edge => (t.Key, Edge: edge))).ToArray();
        if (edges.Length > 0)
        {
            batch.BatchCommands.Add(Command(
                $"""
                INSERT INTO {tables.BucketEdges} (table_name, record_id, bucket_id, checksum, lsn)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::text[]::pg_lsn[])
                ON CONFLICT (table_name, record_id, bucket_id) DO UPDATE SET checksum = excluded.checksum, lsn = excluded.lsn, updated_at = now()
                """,
                edges.Select(e => e.Key.Table).ToArray(),
                edges.Select(e => e.Key.RecordId).ToArray(),
                edges.Select(e => e.Edge.BucketId).ToArray(),
                edges.Select(e => e.Edge.Checksum).ToArray(),
                Lsns(edges.Select(e => e.Edge.Lsn))));
        }

        foreach (var (_, record) in touched)
            record.StoredBuckets = record.Edges.Select(e => e.BucketId).ToArray();

        var live = touched.Where(t => t.Value.Exists).ToArray();
        if (live.Length > 0)
        {
            batch.BatchCommands.Add(Command(
                $"""
                INSERT INTO {tables.RecordPositions} (table_name, record_id, commit_lsn, change_idx, removed, checksum, parent_table, parent_record_id)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[]::pg_lsn[], $4::integer[], $5::boolean[], $6::integer[], $7::text[], $8::text[])
                ON CONFLICT (table_name, record_id) DO UPDATE SET commit_lsn = excluded.commit_lsn, change_idx = excluded.change_idx,
                    removed = excluded.removed, checksum = excluded.checksum, parent_table = excluded.parent_table, parent_record_id = excluded.parent_record_id
                """,
                live.Select(t => t.Key.Table).ToArray(),
                live.Select(t => t.Key.RecordId).ToArray(),
                Lsns(live.Select(t => t.Value.Position!.Value.CommitLsn.Value)),
                live.Select(t => t.Value.Position!.Value.ChangeIndex).ToArray(),
                live.Select(t => t.Value.Removed).ToArray(),
                live.Select(t => t.Value.Checksum).ToArray(),
                live.Select(t => t.Value.Parent?.Table).ToArray(),
                live.Select(t => t.Value.Parent?.RecordId).ToArray()));
        }

        // A deleted record needs no position: everything up to the source's applied position is a replay.
        var deleted = touched.Where(t => !t.Value.Exists).Select(t => t.Key).ToArray();
        if (deleted.Length > 0)
        {
            batch.BatchCommands.Add(Command(
                $"DELETE FROM {tables.RecordPositions} WHERE ctid = ANY (ARRAY (SELECT p.ctid FROM {RowsOfKeys(tables.RecordPositions, "p")}))",
                deleted.Select(k => k.Table).ToArray(), deleted.Select(k => k.RecordId).ToArray()));
        }
    }

    private void AddFailureWrites(NpgsqlBatch batch, SegmentPlan plan)
    {
        var fresh = plan.Failures.Where(f => f.StoredId is null).ToArray();
        if (fresh.Length > 0)
        {
            batch.BatchCommands.Add(Command(
                $"""
                INSERT INTO {tables.RuleFailures} (source, table_name, record_id, operation, commit_lsn, change_idx, error_text, payload)
                SELECT $8, * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[]::pg_lsn[], $5::integer[], $6::text[], $7::text[]::jsonb[])
                ON CONFLICT ON CONSTRAINT sync_rule_failures_once DO NOTHING
                """,
                fresh.Select(f => f.Table).ToArray(),
                fresh.Select(f => f.RecordId).ToArray(),
                fresh.Select(f => (short)f.Operation).ToArray(),
                Lsns(fresh.Select(f => f.CommitLsn)),
                fresh.Select(f => f.ChangeIndex).ToArray(),
                fresh.Select(f => f.Error).ToArray(),
                fresh.Select(f => JsonSerializer.Serialize(f.Change)).ToArray(),
                source));
        }

        var stillFailing = plan.Failures.Where(f => f.StoredId is not null).ToArray();
        if (stillFailing.Length > 0)
        {
            batch.BatchCommands.Add(Command(
                $"UPDATE {tables.RuleFailures} f SET error_text = u.error_text FROM unnest($1::bigint[], $2::text[]) AS u(id, error_text) WHERE f.id = u.id",
                stillFailing.Select(f => f.StoredId!.Value).ToArray(), stillFailing.Select(f => f.Error).ToArray()));
        }

        if (plan.Replayed.Count > 0)
            batch.BatchCommands.Add(Command($"UPDATE {tables.RuleFailures} SET resolved_at = now(), resolution = 'replayed' WHERE id = ANY($1)", plan.Replayed.ToArray()));
        if (plan.Obsolete.Count > 0)
            batch.BatchCommands.Add(Command($"UPDATE {tables.RuleFailures} SET resolved_at = now(), resolution = 'the record changed after it' WHERE id = ANY($1)", plan.Obsolete.ToArray()));

    }

    /// <summary>A later change of the record that applied makes its earlier failures history.</summary>
    private void AddSupersededFailures(NpgsqlBatch batch, KeyValuePair<RecordKey, ChangePosition>[] applied) =>
        batch.BatchCommands.Add(Command(
            $"""
            UPDATE {tables.RuleFailures} f SET resolved_at = now(), resolution = 'superseded by the change at ' || a.commit_lsn::text || '#' || a.change_idx
            FROM unnest($1::text[], $2::text[], $3::text[]::pg_lsn[], $4::integer[]) AS a(table_name, record_id, commit_lsn, change_idx)
            WHERE f.resolved_at IS NULL AND f.table_name = a.table_name AND f.record_id = a.record_id AND (f.commit_lsn, f.change_idx) < (a.commit_lsn, a.change_idx)
              AND {OfThisSource("$5")}
            """,
            applied.Select(a => a.Key.Table).ToArray(),
            applied.Select(a => a.Key.RecordId).ToArray(),
            Lsns(applied.Select(a => a.Value.CommitLsn.Value)),
            applied.Select(a => a.Value.ChangeIndex).ToArray(),
            source));

    /// <summary>
    /// Rule failures of the source: its own, and those an earlier version wrote without a source where
    /// the migration could not tell whose they are (several sources in the schema).
    /// </summary>
    public static string OfThisSource(string parameter) => $"(f.source = {parameter} OR f.source IS NULL)";
}
