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
    private const int Changes = 14;
    private const int LogicalMessages = 2;
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

        await Eventually.Until(() => Task.FromResult(WireMessages.ChangeCount(subscriber.Raw)), n => n == 1, "the existing row, read by the snapshot");

        // Random hex does not compress, so 100 kB stays far above the TOAST threshold.
        await env.ExecuteAsync("INSERT INTO docs SELECT 2, 7, NULL, string_agg(md5(random()::text), '') FROM generate_series(1, 3200)");
        await env.ExecuteAsync("UPDATE docs SET title = 'final' WHERE id = 2");
        await env.ExecuteAsync("UPDATE docs SET id = 3 WHERE id = 2");
        await env.ExecuteAsync("DELETE FROM docs WHERE id = 3");
        await env.ExecuteAsync("INSERT INTO archived VALUES (1, 'a')");
        await env.ExecuteAsync("UPDATE archived SET title = 'b' WHERE id = 1");
        await env.ExecuteAsync("DELETE FROM archived WHERE id = 1");
        await env.ExecuteAsync("INSERT INTO archived VALUES (2, 'c')");
        await env.ExecuteAsync("TRUNCATE archived");
        await env.ExecuteAsync("INSERT INTO memberships VALUES (1, 'ann', 'owner')");
        await env.ExecuteAsync("ALTER TABLE memberships ADD COLUMN since date");
        await env.ExecuteAsync("INSERT INTO memberships VALUES (2, 'bob', 'viewer', '2026-11-30')");
        await InsertFromElsewhereAsync(env, "INSERT INTO docs VALUES (4, 7, 'replayed', 'from upstream')");
        await env.ExecuteAsync("SELECT pg_logical_emit_message(false, 'audit.now', 'at once')");
        await env.ExecuteAsync("BEGIN; INSERT INTO docs VALUES (5, 8, 'audited', 'x'); SELECT pg_logical_emit_message(true, 'audit.tx', 'in a transaction'); COMMIT");

        Deliveries = await Eventually.Until(() => Task.FromResult(subscriber.Raw.ToList()),
            raw => WireMessages.ChangeCount(raw) == Changes && raw.Count(d => !d.IsChangeSet()) == LogicalMessages,
            $"{Changes} changes and {LogicalMessages} logical messages");
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
