using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.IntegrationTests.Buckets;

/// <summary>WAL → bus → sidecar tables on real PostgreSQL and RabbitMQ.</summary>
public sealed class EndToEndTests
{
    private const string TodosTable = "CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint, title text NOT NULL)";

    [Trait("Versions", "all")]
    [Fact]
    public async Task insert_move_to_another_owner_and_delete_write_exactly_the_expected_changelog_and_edges()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(TodosTable);
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'write tests'), (2, NULL, 'shared'), (3, 7, 'ship')");
        await env.ExecuteAsync("UPDATE todos SET user_id = 8 WHERE id = 1");
        await env.ExecuteAsync("UPDATE todos SET title = 'ship it' WHERE id = 3");
        await env.ExecuteAsync("DELETE FROM todos WHERE id = 2");

        string[] expected =
        [
            "user:7|todos|1|1", "global|todos|2|1", "user:7|todos|3|1",
            "user:8|todos|1|1", "user:7|todos|1|3",
            "user:7|todos|3|2",
            "global|todos|2|3",
        ];
        var changelog = await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Length, "seven changelog rows");
        Assert.Equal(expected, changelog);
        Assert.Equal(["todos|1|user:8", "todos|3|user:7"], await env.EdgesAsync());
        Assert.Equal(0L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures"));
    }

    [Fact]
    public async Task a_batch_delivered_twice_leaves_the_sidecar_tables_identical()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(TodosTable);
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.todos-copy", [], [], env.Source);
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'a'), (2, 8, 'b')");
        await env.ExecuteAsync("UPDATE todos SET user_id = 9 WHERE id = 1");
        await Eventually.Until(() => Task.FromResult(subscriber.Confirmations.Count >= subscriber.Batches.Count && !subscriber.Batches.IsEmpty), "every batch confirmed");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 4, "four changelog rows");
        var tablesBefore = await SidecarSnapshotAsync(env);

        var first = subscriber.Batches.First();
        await subscriber.Publisher.Publish(first);
        await Eventually.Until(
            () => Task.FromResult(subscriber.Confirmations.Count(c => c.RunId == first.RunId && c.BatchSequence == first.BatchSequence)),
            count => count == 2, "the duplicate batch confirmed");

        Assert.Equal(tablesBefore, await SidecarSnapshotAsync(env));
        Assert.Equal(["user:7|todos|1|1", "user:8|todos|2|1", "user:9|todos|1|1", "user:7|todos|1|3"], await env.ChangelogAsync());
    }

    [Fact]
    public async Task a_subscriber_bound_to_one_table_receives_exactly_that_tables_changes()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(TodosTable);
        await env.ExecuteAsync("CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric(10,2) NOT NULL)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.orders-only", "public.orders");
        await env.StartBridgeAsync(("todos", "user_id"), ("orders", "user_id"));

        // The todos change set is applied before the orders change is made, so had it been routed to
        // the subscriber it would be queued ahead of the orders change set.
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'not for this subscriber')");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 1, "the todos change applied");
        await env.ExecuteAsync("INSERT INTO orders VALUES (10, 7, 12.50)");
        await env.ExecuteAsync("UPDATE orders SET total = 99.99 WHERE id = 10");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 3, "the orders changes applied");
        await Eventually.Until(() => Task.FromResult(subscriber.Received.Sum(s => s.Changes.Count)), n => n == 2, "two orders changes received");

        Assert.All(subscriber.Received, set => Assert.Equal(("public", "orders"), (set.Schema, set.Table)));
        var changes = subscriber.Received.SelectMany(s => s.Changes).ToList();
        Assert.Equal([Contracts.ChangeOperation.Insert, Contracts.ChangeOperation.Update], changes.Select(c => c.Operation));
        Assert.All(changes, c => Assert.Equal("10", c.RecordId));
        Assert.Equal(
            ["id=10 (bigint)", "user_id=7 (bigint)", "total=99.99 (numeric(10,2))"],
            changes[1].NewRow!.Select(v => $"{v.Name}={v.Text} ({v.Type})"));
    }

    [Fact]
    public async Task without_a_broker_the_bridge_runs_on_the_in_memory_bus()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(TodosTable);
        var settings = env.BridgeSettings(("todos", "user_id"));
        settings["Synchro:RabbitMq:Uri"] = "";
        using var host = TestEnvironment.BuildBridge(settings);
        await host.StartAsync();
        try
        {
            await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'a'), (2, NULL, 'b')");
            await env.ExecuteAsync("UPDATE todos SET user_id = 8 WHERE id = 1");
            var written = await env.CurrentWalLsnAsync();

            await Eventually.Until(env.ConfirmedFlushLsnAsync, lsn => lsn >= written, "the slot to confirm the changes");
            Assert.Equal(["user:7|todos|1|1", "global|todos|2|1", "user:8|todos|1|1", "user:7|todos|1|3"], await env.ChangelogAsync());
        }
        finally
        {
            await host.StopAsync();
        }
    }

    private static async Task<List<string>> SidecarSnapshotAsync(TestEnvironment env)
    {
        var rows = new List<string>();
        rows.AddRange(await env.RowsAsync("SELECT seq, bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM sync_changelog ORDER BY seq"));
        rows.AddRange(await env.RowsAsync("SELECT table_name, record_id, bucket_id, checksum, lsn FROM sync_bucket_edges ORDER BY 1, 2, 3"));
        rows.AddRange(await env.RowsAsync("SELECT table_name, record_id, commit_lsn, change_idx FROM sync_record_positions ORDER BY 1, 2"));
        return rows;
    }
}
