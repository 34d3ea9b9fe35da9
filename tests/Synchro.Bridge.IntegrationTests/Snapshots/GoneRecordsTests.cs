using Microsoft.Extensions.DependencyInjection;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Replication.Snapshots;

namespace Synchro.Bridge.IntegrationTests.Snapshots;

/// <summary>
/// Changes PostgreSQL never streams: a slot lost in a fail-over without a synchronized copy, a
/// partition truncated on its own. Reading the table again puts the sidecar tables back to the
/// truth, and the changelog tells readers what they missed: an insert or update for every record
/// that changed, a delete for every record that is gone.
/// </summary>
public sealed class GoneRecordsTests
{
    [Fact]
    [Trait("Versions", "all")]
    public async Task after_a_lost_slot_accept_gap_with_the_initial_snapshot_writes_what_changed_and_a_delete_for_every_record_gone()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint, title text)");
        var settings = TestEnvironment.WithSnapshot(env.BridgeSettings(("todos", "user_id")));
        var first = await env.StartBridgeAsync(settings);
        await Eventually.Until(() => env.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}'"), n => n == 1, "the slot");
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7, 'a'), (2, 8, 'b'), (3, 7, 'c')");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 3, "the three inserts");
        await first.StopAsync();

        // The slot is lost (a promoted standby without a copy of it) while the application goes on.
        await env.ExecuteAsync($"SELECT pg_drop_replication_slot('{env.Name}')");
        await env.ExecuteAsync("UPDATE todos SET user_id = 9 WHERE id = 1; DELETE FROM todos WHERE id = 2; UPDATE todos SET title = 'c2' WHERE id = 3; INSERT INTO todos VALUES (4, 8, 'd')");
        settings["Synchro:Replication:AcceptGap"] = "true";
        await env.StartBridgeAsync(settings);

        string[] expected =
        [
            "user:7|todos|1|1", "user:8|todos|2|1", "user:7|todos|3|1",
            // The snapshot's reads in key order, then the records gone:
            "user:9|todos|1|1", "user:7|todos|1|3",
            "user:7|todos|3|2",
            "user:8|todos|4|1",
            "user:8|todos|2|3",
        ];
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Length, "what the lost stretch changed"));
        Assert.Equal(["todos|1|user:9", "todos|3|user:7", "todos|4|user:8"], await env.EdgesAsync());
    }

    [Fact]
    [Trait("Versions", "all")]
    public async Task a_backfill_after_one_partition_was_truncated_deletes_its_records_from_the_buckets()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(
            """
            CREATE TABLE orders (id bigint, region text, user_id bigint, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
            CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
            """);
        var host = await env.StartBridgeAsync(("orders", "user_id"));
        await env.ExecuteAsync("INSERT INTO orders VALUES (1, 'eu', 7), (2, 'us', 8), (3, 'eu', 8)");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 3, "the three inserts");

        // Published through the root, a TRUNCATE of one partition reaches the stream not at all.
        await env.ExecuteAsync("TRUNCATE orders_eu");
        await env.ExecuteAsync("INSERT INTO orders VALUES (4, 'us', 7)");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 4, "the insert after the truncate");
        await host.Services.GetRequiredService<SnapshotJobs>().RequestAsync(env.Source, TableName.Parse("orders"), SnapshotKind.Backfill, CancellationToken.None);

        string[] expected =
        [
            """user:7|orders|["1","eu"]|1""", """user:8|orders|["2","us"]|1""", """user:8|orders|["3","eu"]|1""",
            """user:7|orders|["4","us"]|1""",
            // The backfill's reads change nothing; the records of the truncated partition leave their buckets.
            """user:7|orders|["1","eu"]|3""", """user:8|orders|["3","eu"]|3""",
        ];
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Length, "the deletes of the truncated partition"));
        Assert.Equal(["""orders|["2","us"]|user:8""", """orders|["4","us"]|user:7"""], await env.EdgesAsync());
        await Eventually.Until(() => env.RowsAsync("SELECT status FROM sync_snapshots"), s => s.SequenceEqual(["done"]), "the backfill to finish");
    }
}
