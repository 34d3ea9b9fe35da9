using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Replication;

/// <summary>
/// A declaratively partitioned table is published through its root (publish_via_partition_root):
/// every partition's rows, existing and streamed, carry the root's name and are placed by its rule.
/// </summary>
public sealed class PartitionedTableTests
{
    [Fact]
    [Trait("Versions", "all")]
    public async Task a_partitioned_table_is_captured_through_its_root_and_placed_by_its_rule_across_partitions()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(
            """
            CREATE TABLE orders (id bigint, region text, user_id bigint, note text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
            CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
            INSERT INTO orders VALUES (1, 'eu', 7, 'a'), (2, 'us', 8, 'b');
            """);
        await env.StartBridgeAsync(TestEnvironment.WithSnapshot(env.BridgeSettings(("orders", "user_id"))));
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= 2, "the snapshot's two rows");

        await env.ExecuteAsync("INSERT INTO orders VALUES (3, 'us', 7, 'c')");
        await env.ExecuteAsync("UPDATE orders SET user_id = 9 WHERE id = 2");
        // A new partition key moves the row to another partition: PostgreSQL sends a delete and an insert.
        await env.ExecuteAsync("UPDATE orders SET region = 'us' WHERE id = 1");
        // A partition created while the bridge runs is published with its root.
        await env.ExecuteAsync("CREATE TABLE orders_asia PARTITION OF orders FOR VALUES IN ('asia')");
        await env.ExecuteAsync("INSERT INTO orders VALUES (4, 'asia', 8, 'd')");
        await env.ExecuteAsync("DELETE FROM orders WHERE id = 3");

        string[] expected =
        [
            """user:7|orders|["1","eu"]|1""", """user:8|orders|["2","us"]|1""",
            """user:7|orders|["3","us"]|1""",
            """user:9|orders|["2","us"]|1""", """user:8|orders|["2","us"]|3""",
            """user:7|orders|["1","eu"]|3""", """user:7|orders|["1","us"]|1""",
            """user:8|orders|["4","asia"]|1""",
            """user:7|orders|["3","us"]|3""",
        ];
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Length, "nine changelog rows"));
        Assert.Equal(["""orders|["1","us"]|user:7""", """orders|["2","us"]|user:9""", """orders|["4","asia"]|user:8"""], await env.EdgesAsync());
        Assert.Equal(["public|orders"], await env.RowsAsync($"SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = '{env.Name}'"));
        Assert.True(await env.ScalarAsync<bool>($"SELECT pubviaroot FROM pg_publication WHERE pubname = '{env.Name}'"));
    }

    [Fact]
    public async Task a_publication_made_without_publish_via_partition_root_is_switched_to_it_at_start()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(
            $"""
            CREATE TABLE orders (id bigint, region text, user_id bigint, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
            CREATE PUBLICATION "{env.Name}" FOR TABLE orders;
            """);
        await env.StartBridgeAsync(("orders", "user_id"));

        await env.ExecuteAsync("INSERT INTO orders VALUES (1, 'eu', 7)");

        Assert.Equal(["""user:7|orders|["1","eu"]|1"""], await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= 1, "the insert"));
        Assert.True(await env.ScalarAsync<bool>($"SELECT pubviaroot FROM pg_publication WHERE pubname = '{env.Name}'"));
    }

    [Fact]
    [Trait("Versions", "all")]
    public async Task a_partition_truncated_attached_with_rows_or_detached_is_noticed_and_backfilled_by_itself()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(
            """
            CREATE TABLE orders (id bigint, region text, user_id bigint, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
            CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
            """);
        await env.StartBridgeAsync(TestEnvironment.WithSnapshot(env.BridgeSettings(("orders", "user_id"))));
        await env.ExecuteAsync("INSERT INTO orders VALUES (1, 'eu', 7), (2, 'us', 8), (3, 'eu', 8)");
        List<string> expected = ["""user:7|orders|["1","eu"]|1""", """user:8|orders|["2","us"]|1""", """user:8|orders|["3","eu"]|1"""];
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Count, "the three inserts"));

        // None of these reaches the stream through the root; each is found and its table backfilled.
        await env.ExecuteAsync("TRUNCATE orders_eu");
        expected.AddRange(["""user:7|orders|["1","eu"]|3""", """user:8|orders|["3","eu"]|3"""]);
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Count, "the truncated partition's records deleted"));

        await env.ExecuteAsync("CREATE TABLE orders_asia (LIKE orders); INSERT INTO orders_asia VALUES (5, 'asia', 9)");
        await env.ExecuteAsync("ALTER TABLE orders ATTACH PARTITION orders_asia FOR VALUES IN ('asia')");
        expected.Add("""user:9|orders|["5","asia"]|1""");
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Count, "the attached partition's row placed"));

        await env.ExecuteAsync("ALTER TABLE orders DETACH PARTITION orders_us");
        expected.Add("""user:8|orders|["2","us"]|3""");
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Count, "the detached partition's record deleted"));
        Assert.Equal(["""orders|["5","asia"]|user:9"""], await env.EdgesAsync());
    }
}
