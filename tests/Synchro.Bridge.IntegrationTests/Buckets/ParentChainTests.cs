using System.Diagnostics;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Replication;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Buckets;

/// <summary>Parent chains, cascades and commit order from real WAL, with the bridge as its own process.</summary>
public sealed class ParentChainTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CatchUp = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task a_root_changing_owner_moves_its_100_000_descendants_in_one_change_within_a_100_mb_heap()
    {
        const int Tasks = 1_000, CommentsPerTask = 100, Descendants = Tasks + Tasks * CommentsPerTask;
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(
            """
            CREATE TABLE projects (id bigint PRIMARY KEY, owner_id bigint);
            CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint REFERENCES projects, title text);
            CREATE TABLE comments (id bigint PRIMARY KEY, task_id bigint REFERENCES tasks, body text);
            """);
        var settings = scenario.Env.BridgeSettings(("projects", "owner_id"), ("tasks", null), ("comments", null));
        var bridge = scenario.Start(settings, heapLimitBytes: 100L * 1024 * 1024);
        await scenario.WaitForSlotHeldAsync(bridge);

        await scenario.Env.ExecuteAsync($"INSERT INTO projects VALUES (1, 1); INSERT INTO tasks SELECT g, 1, 'task ' || g FROM generate_series(1, {Tasks}) g");
        for (var chunk = 0; chunk < 10; chunk++)
        {
            await scenario.Env.ExecuteAsync(
                $"INSERT INTO comments SELECT g, (g - 1) / {CommentsPerTask} + 1, 'comment ' || g FROM generate_series({chunk * Tasks * CommentsPerTask / 10 + 1}, {(chunk + 1) * Tasks * CommentsPerTask / 10}) g");
        }

        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        Assert.Equal((long)Descendants + 1, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_bucket_edges WHERE bucket_id = 'owner:1'"));

        var clock = Stopwatch.StartNew();
        await scenario.Env.ExecuteAsync("UPDATE projects SET owner_id = 2 WHERE id = 1");
        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        output.WriteLine($"{Descendants} descendants moved in {clock.Elapsed.TotalSeconds:F1} s (from the commit to the slot's acknowledgement)");

        bridge.AssertRunning();
        var move = await scenario.Env.RowsAsync(
            "SELECT bucket_id, operation, count(*) FROM sync_changelog WHERE commit_lsn = (SELECT max(commit_lsn) FROM sync_changelog) GROUP BY 1, 2 ORDER BY 1, 2");
        Assert.Equal([$"owner:1|3|{Descendants + 1}", $"owner:2|1|{Descendants + 1}"], move);
        Assert.Equal([$"owner:2|{Descendants + 1}"], await scenario.Env.RowsAsync("SELECT bucket_id, count(*) FROM sync_bucket_edges GROUP BY 1"));
    }

    [Fact]
    public async Task within_every_bucket_fed_by_several_tables_seq_order_is_commit_order()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(TreeWorkload.CreateTablesSql);
        var settings = scenario.Env.BridgeSettings();
        TreeWorkload.Configure(settings);
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        await TreeWorkload.RunAsync(scenario.ConnectionString, clients: 4, transactionsPerClient: 250, seed: 70, CancellationToken.None);
        await scenario.WaitForCatchUpAsync(bridge, CatchUp);

        var buckets = await scenario.Env.ScalarAsync<long>("SELECT count(DISTINCT bucket_id) FROM sync_changelog");
        var mixed = await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM (SELECT bucket_id FROM sync_changelog GROUP BY 1 HAVING count(DISTINCT table_name) = 3) b");
        Assert.True(mixed >= 5 && mixed == buckets, $"{mixed} of {buckets} buckets hold rows of all three tables");
        // Every pair of neighbours in seq order within a bucket is in commit order.
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>(
            """
            SELECT count(*) FROM (
                SELECT commit_lsn, change_idx, lag(commit_lsn) OVER w AS prev_lsn, lag(change_idx) OVER w AS prev_idx
                FROM sync_changelog WINDOW w AS (PARTITION BY bucket_id ORDER BY seq)) n
            WHERE (prev_lsn, prev_idx) > (commit_lsn, change_idx)
            """));
        // A card inserted in its list's transaction comes after the list in the list's bucket.
        Assert.True(await scenario.Env.ScalarAsync<long>(
            """
            SELECT count(*) FROM sync_changelog i JOIN cards it ON it.id::text = i.record_id
            JOIN sync_changelog l ON l.table_name = 'lists' AND l.record_id = it.list_id::text AND l.commit_lsn = i.commit_lsn AND l.bucket_id = i.bucket_id AND l.operation = 1
            WHERE i.table_name = 'cards' AND i.operation = 1 AND l.seq < i.seq
            """) > 0, "some card was inserted in the transaction of its list");
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures"));
    }

    [Fact]
    public async Task a_tree_workload_re_read_after_kills_leaves_exactly_the_tables_of_a_fault_free_run()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(TreeWorkload.CreateTablesSql);
        var faulty = scenario.Env.BridgeSettings();
        TreeWorkload.Configure(faulty);
        faulty["Synchro:Batching:MaxBatchChanges"] = "200";
        // A second bridge on its own slot writes the same stream, never interrupted, into schema clean.
        var clean = new Dictionary<string, string?>(faulty)
        {
            ["Synchro:Source"] = "clean",
            ["Synchro:Replication:SlotName"] = scenario.Env.Name + "_clean",
            ["Synchro:Replication:PublicationName"] = scenario.Env.Name + "_clean",
            ["Synchro:Postgres:SidecarSchema"] = "clean",
        };
        var reference = scenario.Start(clean);
        var bridge = scenario.Start(faulty);
        await scenario.WaitForSlotHeldAsync(bridge);
        await scenario.WaitForCleanReferenceAsync();

        using var stop = new CancellationTokenSource();
        var writing = TreeWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 500, seed: 80, stop.Token);
        for (var kill = 0; kill < 4 && !writing.IsCompleted; kill++)
        {
            var applied = await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog");
            await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n > applied + 100 || writing.IsCompleted, "progress before the kill");
            bridge.Kill();
            bridge = scenario.Start(faulty);
            await scenario.WaitForSlotHeldAsync(bridge);
        }

        await writing;
        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        await scenario.AssertSameSidecarTablesAsCleanReferenceAsync(CatchUp);

        Assert.True(await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM public.sync_changelog WHERE table_name = 'cards' AND operation = 3") > 0, "some cards were moved or deleted");
        reference.AssertRunning();
    }
}
