using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>
/// Every kind of subscriber message, produced once by a real bridge and captured off RabbitMQ as it
/// arrived: a read from the initial snapshot, inserts, an update leaving a TOASTed value unchanged, a
/// key change, deletes by key and under REPLICA IDENTITY FULL, a truncate, a composite key, a schema
/// change, a replayed transaction's origin, and logical messages in and out of a transaction.
/// </summary>
public sealed class CapturedWire : IAsyncLifetime
{
    private TestEnvironment? _env;

    /// <summary>The deliveries, in the order they came off the subscriber's queues.</summary>
    internal IReadOnlyList<RawDelivery> Deliveries { get; private set; } = [];

    public async Task InitializeAsync()
    {
        _env = await TestEnvironment.CreateAsync("wire_contract_every_kind");
        var env = _env;
        await env.ExecuteAsync("""
            CREATE TABLE docs (id bigint PRIMARY KEY, user_id bigint, title text, body text);
            CREATE TABLE archived (id bigint PRIMARY KEY, title text);
            ALTER TABLE archived REPLICA IDENTITY FULL;
            CREATE TABLE memberships (org_id bigint, member text, role text, PRIMARY KEY (org_id, member));
            INSERT INTO docs VALUES (1, 7, 'existing', 'read by the snapshot');
            """);
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.wire",
            ["public.docs", "public.archived", "public.memberships"], ["audit.#"]);
        await env.StartBridgeAsync(TestEnvironment.WithSnapshot(env.BridgeSettings(("docs", "user_id"), ("archived", null), ("memberships", null))));

        // Each write is delivered before the next: every message holds one change, a truncate travels
        // in a set of its own (no columns), and the key change's new row is complete (the row was not
        // yet deleted when the bridge read it), so the README's examples can match exactly.
        var (changes, messages) = (0, 0);
        async Task DeliveredAsync(int newChanges, int newMessages = 0)
        {
            (changes, messages) = (changes + newChanges, messages + newMessages);
            await Eventually.Until(() => Task.FromResult(subscriber.Raw.ToList()),
                raw => WireMessages.ChangeCount(raw) == changes && raw.Count(d => !d.IsChangeSet()) == messages, $"{changes} changes and {messages} logical messages");
        }

        await DeliveredAsync(1); // the existing row, read by the snapshot
        foreach (var sql in new[]
        {
            // Random hex does not compress, so 100 kB stays far above the TOAST threshold.
            "INSERT INTO docs SELECT 2, 7, NULL, string_agg(md5(random()::text), '') FROM generate_series(1, 3200)",
            "UPDATE docs SET title = 'final' WHERE id = 2",
            "UPDATE docs SET id = 3 WHERE id = 2",
            "DELETE FROM docs WHERE id = 3",
            "INSERT INTO archived VALUES (1, 'a')",
            "UPDATE archived SET title = 'b' WHERE id = 1",
            "DELETE FROM archived WHERE id = 1",
            "INSERT INTO archived VALUES (2, 'c')",
            "TRUNCATE archived",
            "INSERT INTO memberships VALUES (1, 'ann', 'owner')",
            "ALTER TABLE memberships ADD COLUMN since date; INSERT INTO memberships VALUES (2, 'bob', 'viewer', '2026-11-30')",
        })
        {
            await env.ExecuteAsync(sql);
            await DeliveredAsync(1);
        }

        await InsertFromElsewhereAsync(env, "INSERT INTO docs VALUES (4, 7, 'replayed', 'from upstream')");
        await DeliveredAsync(1);
        await env.ExecuteAsync("SELECT pg_logical_emit_message(false, 'audit.now', 'at once')");
        await DeliveredAsync(0, 1);
        await env.ExecuteAsync("BEGIN; INSERT INTO docs VALUES (5, 8, 'audited', 'x'); SELECT pg_logical_emit_message(true, 'audit.tx', 'in a transaction'); COMMIT");
        await DeliveredAsync(1, 1);
        Deliveries = [.. subscriber.Raw];
    }

    /// <summary>Runs a statement as a replication origin would (logical replication applying another database's changes).</summary>
    private static async Task InsertFromElsewhereAsync(TestEnvironment env, string sql)
    {
        // The origin is stamped on the commit record, so each statement commits on its own, in one session.
        await using var session = await env.DataSource.OpenConnectionAsync();
        foreach (var statement in new[]
        {
            $"SELECT pg_replication_origin_create('{env.Name}_upstream')",
            $"SELECT pg_replication_origin_session_setup('{env.Name}_upstream')",
            sql,
            "SELECT pg_replication_origin_session_reset()",
            $"SELECT pg_replication_origin_drop('{env.Name}_upstream')",
        })
        {
            await using var command = new NpgsqlCommand(statement, session);
            await command.ExecuteNonQueryAsync();
        }
    }

    public async Task DisposeAsync()
    {
        if (_env is not null)
            await _env.DisposeAsync();
    }
}
