using System.IO.Hashing;
using System.Text;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Sidecar;

/// <summary>The sidecar tables stay readable by a synchro server: its own tables are adopted, older bridge tables converted.</summary>
public sealed class SynchroCompatibilityTests
{
    /// <summary>The Go library's tables and indexes, as ../shared/SYNCHRO-SCHEMA.md lists them (index names are the Go migration's own).</summary>
    private const string GoSchema =
        """
        CREATE TABLE sync_changelog (seq bigserial PRIMARY KEY, bucket_id text NOT NULL, table_name text NOT NULL, record_id text NOT NULL,
                                     operation smallint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
        CREATE INDEX idx_sync_changelog_bucket_seq ON sync_changelog (bucket_id, seq);
        CREATE INDEX idx_sync_changelog_table_record ON sync_changelog (table_name, record_id);
        CREATE TABLE sync_bucket_edges (table_name text NOT NULL, record_id text NOT NULL, bucket_id text NOT NULL, checksum integer,
                                        updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, record_id, bucket_id));
        CREATE INDEX idx_sync_bucket_edges_bucket ON sync_bucket_edges (bucket_id, table_name, record_id);
        CREATE TABLE sync_rule_failures (id bigserial PRIMARY KEY, table_name text NOT NULL, record_id text NOT NULL, operation smallint NOT NULL,
                                         error_text text NOT NULL, payload jsonb, created_at timestamptz NOT NULL DEFAULT now());
        CREATE INDEX idx_sync_rule_failures_created ON sync_rule_failures (created_at);
        CREATE TABLE sync_wal_position (slot_name text PRIMARY KEY, confirmed_lsn bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
        """;

    private const string GoColumns =
        """
        SELECT table_name || '.' || column_name || ' ' || data_type || CASE WHEN is_nullable = 'YES' THEN ' null' ELSE '' END
        FROM information_schema.columns
        WHERE table_schema = 'public' AND (table_name, column_name) IN (
            ('sync_changelog', 'seq'), ('sync_changelog', 'bucket_id'), ('sync_changelog', 'table_name'), ('sync_changelog', 'record_id'),
            ('sync_changelog', 'operation'), ('sync_changelog', 'created_at'),
            ('sync_bucket_edges', 'table_name'), ('sync_bucket_edges', 'record_id'), ('sync_bucket_edges', 'bucket_id'),
            ('sync_bucket_edges', 'checksum'), ('sync_bucket_edges', 'updated_at'),
            ('sync_rule_failures', 'id'), ('sync_rule_failures', 'table_name'), ('sync_rule_failures', 'record_id'), ('sync_rule_failures', 'operation'),
            ('sync_rule_failures', 'error_text'), ('sync_rule_failures', 'payload'), ('sync_rule_failures', 'created_at'),
            ('sync_wal_position', 'slot_name'), ('sync_wal_position', 'confirmed_lsn'), ('sync_wal_position', 'updated_at'))
        ORDER BY 1
        """;

    private static readonly string[] GoTypes =
    [
        "sync_bucket_edges.bucket_id text", "sync_bucket_edges.checksum integer null", "sync_bucket_edges.record_id text",
        "sync_bucket_edges.table_name text", "sync_bucket_edges.updated_at timestamp with time zone",
        "sync_changelog.bucket_id text", "sync_changelog.created_at timestamp with time zone", "sync_changelog.operation smallint",
        "sync_changelog.record_id text", "sync_changelog.seq bigint", "sync_changelog.table_name text",
        "sync_rule_failures.created_at timestamp with time zone", "sync_rule_failures.error_text text", "sync_rule_failures.id bigint",
        "sync_rule_failures.operation smallint", "sync_rule_failures.payload jsonb null", "sync_rule_failures.record_id text",
        "sync_rule_failures.table_name text",
        "sync_wal_position.confirmed_lsn bigint", "sync_wal_position.slot_name text", "sync_wal_position.updated_at timestamp with time zone",
    ];

    [Fact]
    public async Task a_synchro_servers_tables_are_adopted_with_their_types_and_indexes_and_filled_as_its_pull_path_reads_them()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(GoSchema + "CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint, title text)");
        // What the Go server wrote before the bridge took over.
        await env.ExecuteAsync(
            """
            INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ('user:1', 'todos', '99', 1);
            INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id, checksum) VALUES ('todos', '99', 'user:1', 12345);
            INSERT INTO sync_rule_failures (table_name, record_id, operation, error_text) VALUES ('todos', '98', 1, 'no owner');
            """);

        await env.StartBridgeAsync(("todos", "user_id"));
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'a <b> & \"c\" é')");
        await env.ExecuteAsync("UPDATE todos SET user_id = NULL WHERE id = 1");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 4, "the bridge's three changelog rows after the Go row");

        Assert.Equal(GoTypes, await env.RowsAsync(GoColumns));
        // The Go indexes serve the bridge too: no second index on the same columns.
        Assert.Equal(0L, await env.ScalarAsync<long>(
            "SELECT count(*) FROM (SELECT indrelid, indkey::text FROM pg_index WHERE indrelid::regclass::text LIKE 'sync_%' GROUP BY 1, 2 HAVING count(*) > 1) d"));
        Assert.Equal(4L, await env.ScalarAsync<long>("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx_sync_%'"));

        // The Go pull path: buckets by seq, the latest entry per record; a bucket's checksum is BIT_XOR over its edges.
        Assert.Equal(
            ["user:1|todos|99|1", "user:7|todos|1|1", "global|todos|1|1", "user:7|todos|1|3"],
            await env.RowsAsync("SELECT bucket_id, table_name, record_id, operation FROM sync_changelog WHERE bucket_id IN ('user:1', 'user:7', 'global') AND seq > 0 ORDER BY seq LIMIT 100"));
        var expected = unchecked((int)Crc32.HashToUInt32(Encoding.UTF8.GetBytes("{\"id\":\"1\",\"title\":\"a \\u003cb\\u003e \\u0026 \\\"c\\\" é\",\"user_id\":null}")));
        Assert.Equal(expected, await env.ScalarAsync<int>("SELECT bit_xor(checksum) FROM sync_bucket_edges WHERE bucket_id = 'global'"));
        Assert.Equal(["todos|1|global", "todos|99|user:1"], await env.EdgesAsync());

        // The confirmed LSN as the 64-bit integer synchro stores.
        await Eventually.Until(
            () => env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM sync_wal_position p, pg_replication_slots s WHERE p.slot_name = '{env.Name}' AND s.slot_name = p.slot_name AND p.confirmed_lsn = (s.confirmed_flush_lsn - '0/0')::bigint)"),
            "sync_wal_position to hold the slot's confirmed LSN");
        Assert.Equal("todos|98|no owner|NULL", (await env.RowsAsync("SELECT table_name, record_id, error_text, resolved_at FROM sync_rule_failures")).Single());
    }

    [Fact]
    public async Task tables_of_an_earlier_bridge_version_are_converted_in_place_keeping_their_rows()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(
            """
            CREATE TABLE sync_changelog (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, bucket_id text NOT NULL, table_name text NOT NULL,
                record_id text NOT NULL, operation smallint NOT NULL CHECK (operation IN (1, 2, 3)), created_at timestamptz NOT NULL DEFAULT now(),
                commit_lsn pg_lsn NOT NULL, change_idx integer NOT NULL,
                CONSTRAINT sync_changelog_idempotency UNIQUE (commit_lsn, change_idx, bucket_id, record_id));
            CREATE INDEX sync_changelog_bucket_seq ON sync_changelog (bucket_id, seq);
            CREATE TABLE sync_bucket_edges (table_name text NOT NULL, record_id text NOT NULL, bucket_id text NOT NULL, checksum bigint NOT NULL,
                lsn pg_lsn NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, record_id, bucket_id));
            CREATE INDEX sync_bucket_edges_bucket ON sync_bucket_edges (bucket_id);
            CREATE TABLE sync_rule_failures (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, table_name text NOT NULL, record_id text NOT NULL,
                operation smallint NOT NULL, commit_lsn pg_lsn NOT NULL, change_idx integer NOT NULL, error text NOT NULL, payload jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(), CONSTRAINT sync_rule_failures_idempotency UNIQUE (commit_lsn, change_idx));
            CREATE TABLE sync_wal_position (slot_name text PRIMARY KEY, confirmed_lsn pg_lsn NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE sync_record_positions (table_name text NOT NULL, record_id text NOT NULL, commit_lsn pg_lsn NOT NULL, change_idx integer NOT NULL,
                PRIMARY KEY (table_name, record_id));
            INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation, commit_lsn, change_idx) VALUES ('user:1', 'todos', '5', 1, '0/100', 0);
            INSERT INTO sync_bucket_edges VALUES ('todos', '5', 'user:1', -4242424242, '0/100');
            INSERT INTO sync_rule_failures (table_name, record_id, operation, commit_lsn, change_idx, error, payload) VALUES ('todos', '6', 1, '0/100', 1, 'no owner', '{}');
            INSERT INTO sync_wal_position (slot_name, confirmed_lsn) VALUES ('old_slot', '1/16B3748');
            INSERT INTO sync_record_positions VALUES ('todos', '5', '0/100', 0), ('todos', '', '0/90', 3), ('todos', '7', '0/100', 2);
            CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint);
            """);

        using (var host = TestEnvironment.BuildBridge(env.BridgeSettings(("todos", "user_id"))))
        {
            await host.StartAsync();
            await host.StopAsync();
        }

        Assert.Equal(["sync_bucket_edges.checksum integer null", "sync_rule_failures.error_text text", "sync_wal_position.confirmed_lsn bigint"],
            (await env.RowsAsync(GoColumns)).Where(c => c.Contains("checksum") || c.Contains("error") || c.Contains("confirmed_lsn")).ToList());
        Assert.Equal(0x1_016B_3748L, await env.ScalarAsync<long>("SELECT confirmed_lsn FROM sync_wal_position WHERE slot_name = 'old_slot'"));
        // A checksum of the old form cannot be converted: cleared until the record changes.
        Assert.Equal("todos|5|user:1|NULL", (await env.RowsAsync("SELECT table_name, record_id, bucket_id, checksum FROM sync_bucket_edges")).Single());
        // Unique per source now; the old row's source cannot be told (no run was recorded), so every source lists and replays it.
        Assert.Equal("no owner|{}|NULL", (await env.RowsAsync("SELECT error_text, payload::text, source FROM sync_rule_failures")).Single());
        Assert.Equal(["sync_rule_failures_once"], await env.RowsAsync("SELECT conname FROM pg_constraint WHERE conrelid = 'sync_rule_failures'::regclass AND contype = 'u'"));
        Assert.Equal("user:1|todos|5|1", (await env.ChangelogAsync()).Single());
        Assert.Equal(["todos|5|False"], await env.RowsAsync("SELECT table_name, record_id, removed FROM sync_record_positions"));
        Assert.Equal(["sync_changelog_once"], await env.RowsAsync("SELECT conname FROM pg_constraint WHERE conrelid = 'sync_changelog'::regclass AND contype = 'u'"));
    }
}
