using Npgsql;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Sidecar;

/// <summary>Quoted names of the sidecar tables in the configured schema, and their migrations.</summary>
public sealed class SidecarTables
{
    public SidecarTables(string schema)
    {
        if (!TableName.IsPlainIdentifier(schema))
            throw new StartupCheckException($"Synchro:Postgres:SidecarSchema '{schema}' is not a plain identifier: use lower-case letters, digits and '_'.");
        Schema = TableName.QuoteIdentifier(schema);
    }

    public string Schema { get; }

    public string Changelog => Schema + ".sync_changelog";

    public string BucketEdges => Schema + ".sync_bucket_edges";

    public string RuleFailures => Schema + ".sync_rule_failures";

    public string WalPosition => Schema + ".sync_wal_position";

    /// <summary>The epoch of each source's latest slot-reader run; older runs' change sets are superseded.</summary>
    public string Runs => Schema + ".sync_runs";

    /// <summary>A change set the bucket consumer cannot apply and holds (with what stands behind it), per source.</summary>
    public string ApplyHolds => Schema + ".sync_apply_holds";

    /// <summary>
    /// Last change applied per record: what makes a replayed change recognisable. The row with an
    /// empty record id holds the table's last TRUNCATE, which every older change of the table precedes.
    /// </summary>
    public string RecordPositions => Schema + ".sync_record_positions";

    /// <summary>
    /// Run first in every transaction that takes the bridge's locks. The bridge never leaves such a
    /// transaction idle for more than moments, so one idle for this long lost its client (a network
    /// partition leaves the server side open): PostgreSQL ends it, and its locks stop holding back
    /// the consumer that retries the same work, instead of holding them until TCP gives up (hours).
    /// </summary>
    public const string AbandonedTransactionTimeout = "SET LOCAL idle_in_transaction_session_timeout = '10s'";

    /// <summary>Snapshots, backfills and rebuilds of tables: requested, running (with their progress) and done.</summary>
    public string Snapshots => Schema + ".sync_snapshots";

    /// <summary>
    /// Changelog rows written by apply partitions, waiting until every partition has applied their
    /// batch: then they enter sync_changelog in commit order (<c>ord</c> keeps the order inside a change).
    /// </summary>
    public string ChangelogPending => Schema + ".sync_changelog_pending";

    /// <summary>The partitions of each partitioned table as last seen, per source: changes PostgreSQL publishes nothing for show there.</summary>
    public string PartitionShapes => Schema + ".sync_partition_shapes";

    /// <summary>How far each apply partition of each layout has applied, per source (one partition: sync_runs).</summary>
    public string ApplyPartitions => Schema + ".sync_apply_partitions";

    /// <summary>
    /// Creates the tables when missing, and adopts existing ones in place: the Go library synchro's
    /// tables (see SYNCHRO-SCHEMA.md) keep their columns, types and indexes and get only the bridge's
    /// extra columns; tables of earlier bridge versions are converted to synchro's types. Column names,
    /// types and operation codes are synchro's, so a synchro server reads what the bridge writes.
    /// </summary>
    public async Task MigrateAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // The advisory lock keeps two instances starting together from racing on CREATE.
        command.CommandText = "SELECT pg_advisory_xact_lock(hashtext('synchro:migrations'));\n" + MigrationSql();
        await command.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    private string MigrationSql() =>
        $"""
        -- Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
        -- exists, which a least-privilege role given a schema of its own does not have.
        {Conditional($"to_regnamespace('{Schema}') IS NULL", $"CREATE SCHEMA {Schema};")}

        CREATE TABLE IF NOT EXISTS {Changelog} (
            seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            bucket_id   text        NOT NULL,
            table_name  text        NOT NULL,
            record_id   text        NOT NULL,
            operation   smallint    NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        -- The change that wrote the row; NULL only in rows a synchro server wrote before the bridge.
        {EnsureColumn(Changelog, "commit_lsn", "pg_lsn")}
        {EnsureColumn(Changelog, "change_idx", "integer")}
        {Conditional($"NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '{Changelog}'::regclass AND conname = 'sync_changelog_once')",
            $"ALTER TABLE {Changelog} DROP CONSTRAINT IF EXISTS sync_changelog_idempotency; " +
            // One change writes a (bucket, record) row once: a cascade moves records of several tables, a TRUNCATE many records.
            $"ALTER TABLE {Changelog} ADD CONSTRAINT sync_changelog_once UNIQUE (commit_lsn, change_idx, bucket_id, table_name, record_id);")}
        {EnsureIndex(Changelog, "sync_changelog_bucket_seq", "bucket_id", "seq")}
        {EnsureIndex(Changelog, "sync_changelog_record", "table_name", "record_id")}

        CREATE TABLE IF NOT EXISTS {BucketEdges} (
            table_name  text        NOT NULL,
            record_id   text        NOT NULL,
            bucket_id   text        NOT NULL,
            checksum    integer,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (table_name, record_id, bucket_id)
        );
        {EnsureColumn(BucketEdges, "lsn", "pg_lsn")}
        -- Earlier bridge versions wrote a 64-bit checksum of another form: it cannot be converted, so it is cleared (the next change of the record writes it).
        {Conditional($"EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{BucketEdges}'::regclass AND attname = 'checksum' AND atttypid = 'bigint'::regtype)",
            $"ALTER TABLE {BucketEdges} ALTER COLUMN checksum DROP NOT NULL, ALTER COLUMN checksum TYPE integer USING NULL;")}
        {Conditional($"EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = to_regclass('{Schema}.sync_bucket_edges_bucket') AND i.indkey::text = (SELECT attnum::text FROM pg_attribute WHERE attrelid = '{BucketEdges}'::regclass AND attname = 'bucket_id'))",
            // Earlier versions' index on bucket_id alone; synchro's (bucket_id, table_name, record_id) serves the same reads.
            $"DROP INDEX {Schema}.sync_bucket_edges_bucket;")}
        {EnsureIndex(BucketEdges, "sync_bucket_edges_bucket_record", "bucket_id", "table_name", "record_id")}

        CREATE TABLE IF NOT EXISTS {RuleFailures} (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            table_name  text        NOT NULL,
            record_id   text        NOT NULL,
            operation   smallint    NOT NULL,
            error_text  text        NOT NULL,
            payload     jsonb,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        {Conditional($"EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{RuleFailures}'::regclass AND attname = 'error' AND NOT attisdropped)",
            $"ALTER TABLE {RuleFailures} RENAME COLUMN error TO error_text; ALTER TABLE {RuleFailures} ALTER COLUMN payload DROP NOT NULL;")}
        {EnsureColumn(RuleFailures, "commit_lsn", "pg_lsn")}
        {EnsureColumn(RuleFailures, "change_idx", "integer")}
        {EnsureColumn(RuleFailures, "resolved_at", "timestamptz")}
        {EnsureColumn(RuleFailures, "resolution", "text")}
        -- The source the failed change came from: sources sharing this schema number their changes each on their own.
        {EnsureColumn(RuleFailures, "source", "text")}
        {EnsureIndex(RuleFailures, "sync_rule_failures_created_at", "created_at")}
        {Conditional($"to_regclass('{Schema}.sync_rule_failures_open') IS NULL", $"CREATE INDEX sync_rule_failures_open ON {RuleFailures} (table_name, record_id) WHERE resolved_at IS NULL;")}

        CREATE TABLE IF NOT EXISTS {WalPosition} (
            slot_name     text        PRIMARY KEY,
            confirmed_lsn bigint      NOT NULL,
            updated_at    timestamptz NOT NULL DEFAULT now()
        );
        {Conditional($"EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{WalPosition}'::regclass AND attname = 'confirmed_lsn' AND atttypid = 'pg_lsn'::regtype)",
            $"ALTER TABLE {WalPosition} ALTER COLUMN confirmed_lsn TYPE bigint USING (confirmed_lsn - '0/0'::pg_lsn)::bigint;")}

        CREATE TABLE IF NOT EXISTS {Runs} (
            source      text        PRIMARY KEY,
            epoch       bigint      NOT NULL,
            started_at  timestamptz NOT NULL DEFAULT now()
        );
        -- The last change the bucket consumer applied for the source: everything up to it is a replay.
        {EnsureColumn(Runs, "applied_commit_lsn", "pg_lsn")}
        {EnsureColumn(Runs, "applied_change_idx", "integer")}
        -- The source's generation: which PostgreSQL cluster and timeline its LSNs come from (see SourceGenerations).
        {EnsureColumn(Runs, "generation", "bigint NOT NULL DEFAULT 0")}
        {EnsureColumn(Runs, "system_identifier", "text")}
        {EnsureColumn(Runs, "timeline", "bigint")}
        {EnsureColumn(Runs, "generation_start_lsn", "pg_lsn")}
        -- Failures were once unique on (commit_lsn, change_idx) alone, so a transaction failing in two sources kept
        -- one failure. Those rows are the one source's where the schema has only one; with several, nobody can tell.
        {Conditional($"NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '{RuleFailures}'::regclass AND conname = 'sync_rule_failures_once')",
            $"UPDATE {RuleFailures} SET source = (SELECT min(source) FROM {Runs}) WHERE source IS NULL AND (SELECT count(*) FROM {Runs}) = 1; " +
            $"ALTER TABLE {RuleFailures} DROP CONSTRAINT IF EXISTS sync_rule_failures_idempotency; " +
            $"ALTER TABLE {RuleFailures} ADD CONSTRAINT sync_rule_failures_once UNIQUE (source, commit_lsn, change_idx);")}

        CREATE TABLE IF NOT EXISTS {ApplyHolds} (
            source      text        PRIMARY KEY,
            table_name  text        NOT NULL,
            batch       bigint      NOT NULL,
            part        integer     NOT NULL,
            commit_lsn  pg_lsn      NOT NULL,
            error       text        NOT NULL,
            attempts    integer     NOT NULL,
            since       timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE IF NOT EXISTS {RecordPositions} (
            table_name  text    NOT NULL,
            record_id   text    NOT NULL,
            commit_lsn  pg_lsn  NOT NULL,
            change_idx  integer NOT NULL,
            PRIMARY KEY (table_name, record_id)
        );
        {Conditional($"NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{RecordPositions}'::regclass AND attname = 'removed')",
            // Earlier versions kept each table's last TRUNCATE under an empty record id (the applied position in
            // sync_runs replaces it) and a position for deleted records too: a record in no bucket is taken for deleted.
            $"DELETE FROM {RecordPositions} p WHERE p.record_id = '' OR NOT EXISTS (SELECT 1 FROM {BucketEdges} e WHERE e.table_name = p.table_name AND e.record_id = p.record_id); " +
            $"ALTER TABLE {RecordPositions} ADD COLUMN removed boolean NOT NULL DEFAULT false, ADD COLUMN checksum integer, ADD COLUMN parent_table text, ADD COLUMN parent_record_id text;")}
        {Conditional($"to_regclass('{Schema}.sync_record_positions_parent') IS NULL", $"CREATE INDEX sync_record_positions_parent ON {RecordPositions} (parent_table, parent_record_id) WHERE parent_table IS NOT NULL;")}

        CREATE TABLE IF NOT EXISTS {ChangelogPending} (
            ord         bigint GENERATED ALWAYS AS IDENTITY,
            source      text        NOT NULL,
            bucket_id   text        NOT NULL,
            table_name  text        NOT NULL,
            record_id   text        NOT NULL,
            operation   smallint    NOT NULL,
            commit_lsn  pg_lsn      NOT NULL,
            change_idx  integer     NOT NULL
        );
        -- Moved in slices, each the first rows in commit order (see PendingChangelog).
        {EnsureIndex(ChangelogPending, "sync_changelog_pending_order", "source", "commit_lsn", "change_idx", "ord")}

        CREATE TABLE IF NOT EXISTS {ApplyPartitions} (
            source              text        NOT NULL,
            layout              text        NOT NULL,
            partition           integer     NOT NULL,
            applied_commit_lsn  pg_lsn      NOT NULL,
            applied_change_idx  integer     NOT NULL,
            updated_at          timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, layout, partition)
        );

        CREATE TABLE IF NOT EXISTS {PartitionShapes} (
            source      text        NOT NULL,
            table_name  text        NOT NULL,
            leaves      text        NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, table_name)
        );

        CREATE TABLE IF NOT EXISTS {Snapshots} (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source          text        NOT NULL,
            table_name      text        NOT NULL,
            kind            text        NOT NULL,
            status          text        NOT NULL,
            method          text,
            snapshot        text,
            last_key        text[],
            rows_done       bigint      NOT NULL DEFAULT 0,
            rows_estimated  bigint,
            requested_at    timestamptz NOT NULL DEFAULT now(),
            started_at      timestamptz,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz
        );
        -- The last key a backfill reads, taken when it starts: rows inserted after it reach the sidecar through the stream.
        {EnsureColumn(Snapshots, "end_key", "text[]")}
        -- One open job per table and source: a second request joins the open one.
        {Conditional($"to_regclass('{Schema}.sync_snapshots_open') IS NULL", $"CREATE UNIQUE INDEX sync_snapshots_open ON {Snapshots} (source, table_name) WHERE status IN ('pending', 'running');")}
        """;

    /// <summary>Adds the column when missing. Checked in the catalog first: ALTER TABLE locks the table even when there is nothing to add.</summary>
    private static string EnsureColumn(string table, string column, string type) =>
        Conditional($"NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = '{column}' AND NOT attisdropped)",
            $"ALTER TABLE {table} ADD COLUMN {column} {type};");

    private static string Conditional(string condition, string statements) =>
        $"DO $migrate$ BEGIN IF {condition} THEN {statements} END IF; END $migrate$;";

    /// <summary>Creates the index unless one on exactly these columns exists already (a synchro server's, under its own name).</summary>
    private static string EnsureIndex(string table, string name, params string[] columns) =>
        Conditional(
            $"""
            NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = '{table}'::regclass AND i.indpred IS NULL
                AND ARRAY(SELECT a.attname::text FROM unnest(i.indkey::smallint[]) WITH ORDINALITY k(attnum, ord)
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
                    = ARRAY[{string.Join(", ", columns.Select(c => $"'{c}'"))}])
            """,
            $"CREATE INDEX {name} ON {table} ({string.Join(", ", columns)});");
}
