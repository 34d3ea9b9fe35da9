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
    /// Creates the tables when missing. Column names and operation codes are synchro's, so a synchro
    /// server reads what we write; the extra columns carry idempotency keys and LSNs.
    /// </summary>
    public async Task MigrateAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // The advisory lock keeps two instances starting together from racing on CREATE.
        command.CommandText =
            $"""
            SELECT pg_advisory_xact_lock(hashtext('synchro:migrations'));
            CREATE SCHEMA IF NOT EXISTS {Schema};
            CREATE TABLE IF NOT EXISTS {Changelog} (
                seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                bucket_id   text        NOT NULL,
                table_name  text        NOT NULL,
                record_id   text        NOT NULL,
                operation   smallint    NOT NULL CHECK (operation IN (1, 2, 3)),
                created_at  timestamptz NOT NULL DEFAULT now(),
                commit_lsn  pg_lsn      NOT NULL,
                change_idx  integer     NOT NULL,
                -- record_id too: one TRUNCATE (one change) deletes many records from the same bucket.
                CONSTRAINT sync_changelog_idempotency UNIQUE (commit_lsn, change_idx, bucket_id, record_id)
            );
            CREATE INDEX IF NOT EXISTS sync_changelog_bucket_seq ON {Changelog} (bucket_id, seq);
            CREATE TABLE IF NOT EXISTS {BucketEdges} (
                table_name  text        NOT NULL,
                record_id   text        NOT NULL,
                bucket_id   text        NOT NULL,
                checksum    bigint      NOT NULL,
                lsn         pg_lsn      NOT NULL,
                updated_at  timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (table_name, record_id, bucket_id)
            );
            CREATE INDEX IF NOT EXISTS sync_bucket_edges_bucket ON {BucketEdges} (bucket_id);
            CREATE TABLE IF NOT EXISTS {RuleFailures} (
                id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                table_name  text        NOT NULL,
                record_id   text        NOT NULL,
                operation   smallint    NOT NULL,
                commit_lsn  pg_lsn      NOT NULL,
                change_idx  integer     NOT NULL,
                error       text        NOT NULL,
                payload     jsonb       NOT NULL,
                created_at  timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT sync_rule_failures_idempotency UNIQUE (commit_lsn, change_idx)
            );
            CREATE TABLE IF NOT EXISTS {WalPosition} (
                slot_name     text        PRIMARY KEY,
                confirmed_lsn pg_lsn      NOT NULL,
                updated_at    timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE IF NOT EXISTS {Runs} (
                source      text        PRIMARY KEY,
                epoch       bigint      NOT NULL,
                started_at  timestamptz NOT NULL DEFAULT now()
            );
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
            """;
        await command.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }
}
