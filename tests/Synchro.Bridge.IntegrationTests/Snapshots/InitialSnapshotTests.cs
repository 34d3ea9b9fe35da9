using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Replication;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Snapshots;

/// <summary>Existing rows, read when the bridge creates its slot, against the audit oracle.</summary>
public sealed class InitialSnapshotTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(4);

    [Trait("Versions", "all")]
    [Fact]
    public async Task an_initial_snapshot_of_200_000_rows_under_concurrent_writers_leaves_the_sidecar_tables_of_the_oracle()
    {
        const int Lists = 20_000; // and 180,000 cards
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        var settings = await LoadAsync(scenario, Lists, chunkRows: 5000);

        using var stop = new CancellationTokenSource();
        var writing = ExistingRowsWorkload.RunAsync(env.ConnectionString, Lists, clients: 2, seed: 800, stop.Token);
        // Memory does not grow with the table: the heap is capped far below what 200,000 rows would hold
        // (with a smaller in-flight window than the default, so the collector does not run at the cap).
        settings["Synchro:Batching:MaxInFlightBytes"] = (8 * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var bridge = scenario.Start(settings, heapLimitBytes: 100L * 1024 * 1024);
        await WaitForSnapshotsAsync(scenario, bridge, jobs: 3);
        var afterSnapshot = await env.ScalarAsync<long>("SELECT max(id) FROM test_audit");
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT max(id) FROM test_audit"), id => id > afterSnapshot + 300, "writes after the snapshot");
        await stop.CancelAsync();
        var transactions = await writing;
        await scenario.WaitForCatchUpAsync(bridge, Deadline);

        var snapshot = await env.ScalarAsync<string>("SELECT DISTINCT snapshot FROM sync_snapshots WHERE kind = 'initial' AND snapshot IS NOT NULL");
        var before = await env.ScalarAsync<long>($"SELECT count(*) FROM test_audit WHERE table_name <> 'items' AND op = 'U' AND pg_visible_in_snapshot(xid, '{snapshot}')");
        var after = await env.ScalarAsync<long>($"SELECT count(*) FROM test_audit WHERE table_name <> 'items' AND NOT pg_visible_in_snapshot(xid, '{snapshot}')");
        output.WriteLine($"{transactions} concurrent transactions: {before} updates the snapshot saw, {after} changes after it");
        Assert.True(before > 0 && after > 0, $"writers ran before ({before}) and after ({after}) the snapshot's point");

        var (lists, cards) = await TreeOracle.ComputeAsync(env, snapshot);
        output.WriteLine($"lists: {lists}; cards: {cards}");
        await AuditOracle.AssertSidecarMatchesAsync(env, "lists", lists);
        await AuditOracle.AssertSidecarMatchesAsync(env, "cards", cards);
        Assert.Equal(0L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures"));
        // Each job read exactly the rows its table held at the snapshot's point.
        var cardsAtSnapshot = await env.ScalarAsync<long>(
            $"SELECT count(*) FILTER (WHERE op = 'I') - count(*) FILTER (WHERE op = 'D') FROM test_audit WHERE table_name = 'cards' AND pg_visible_in_snapshot(xid, '{snapshot}')");
        Assert.Equal([$"lists|{Lists}|exported", $"cards|{cardsAtSnapshot}|exported", "notes|0|exported"],
            await env.RowsAsync("SELECT table_name, rows_done, method FROM sync_snapshots ORDER BY id"));
        output.WriteLine("snapshot: " + string.Join("; ", await env.RowsAsync(
            "SELECT table_name || ' ' || rows_done || ' rows in ' || round(extract(epoch FROM finished_at - started_at), 1) || ' s' FROM sync_snapshots ORDER BY id")));
        bridge.AssertRunning();
    }

    [Fact]
    public async Task a_snapshot_killed_half_way_resumes_after_its_last_confirmed_chunk_without_duplicates_or_gaps()
    {
        const int Lists = 2_000; // and 18,000 cards
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        var settings = await LoadAsync(scenario, Lists, chunkRows: 500);

        var bridge = scenario.Start(settings);
        await Eventually.Until(async () =>
        {
            bridge.AssertRunning();
            return await env.ScalarAsync<bool>("SELECT to_regclass('sync_snapshots') IS NOT NULL")
                ? await env.ScalarAsync<long>("SELECT coalesce(max(rows_done), 0) FROM sync_snapshots WHERE table_name = 'cards'")
                : 0;
        }, rows => rows >= 4_000, "a fifth of the cards to be confirmed", Deadline);
        bridge.Kill();
        var confirmed = await env.ScalarAsync<long>("SELECT rows_done FROM sync_snapshots WHERE table_name = 'cards'");
        var placed = await env.ScalarAsync<long>("SELECT count(*) FROM sync_bucket_edges WHERE table_name = 'cards'");
        output.WriteLine($"killed with {confirmed} cards confirmed and {placed} placed");
        Assert.InRange(confirmed, 4_000, Lists * ExistingRowsWorkload.CardsPerList - 1);

        bridge = scenario.Start(settings);
        await WaitForSnapshotsAsync(scenario, bridge, jobs: 3);
        await scenario.WaitForCatchUpAsync(bridge, Deadline);

        // Every row placed once: one insert per bucket and record, no changelog row written twice.
        var snapshot = await env.ScalarAsync<string>("SELECT DISTINCT snapshot FROM sync_snapshots WHERE kind = 'initial' AND snapshot IS NOT NULL");
        var (lists, cards) = await TreeOracle.ComputeAsync(env, snapshot);
        await AuditOracle.AssertSidecarMatchesAsync(env, "lists", lists);
        await AuditOracle.AssertSidecarMatchesAsync(env, "cards", cards);
        // The cards resumed in chunks between watermarks after the last confirmed chunk (each row counted once), and notes never started before the kill.
        Assert.Equal([$"lists|{Lists}|exported|done", $"cards|{Lists * ExistingRowsWorkload.CardsPerList}|watermark|done", "notes|0|watermark|done"],
            await env.RowsAsync("SELECT table_name, rows_done, method, status FROM sync_snapshots ORDER BY id"));
        // Every job keeps the snapshot the initial snapshot started in, resumed or not.
        Assert.Equal(1L, await env.ScalarAsync<long>("SELECT count(DISTINCT coalesce(snapshot, 'none')) FROM sync_snapshots"));
        bridge.AssertRunning();
    }

    [Fact]
    public async Task snapshot_rows_reach_subscribers_as_complete_reads_before_the_first_streamed_change()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE notes (id bigint PRIMARY KEY, user_id bigint, body text); INSERT INTO notes VALUES (1, 7, 'a'), (2, NULL, 'b'), (3, 8, NULL)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.notes", "public.notes");
        await env.StartBridgeAsync(TestEnvironment.WithSnapshot(env.BridgeSettings(("notes", "user_id"))));
        await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 3, "the three existing rows");
        await env.ExecuteAsync("INSERT INTO notes VALUES (4, 7, 'd')");

        var changes = await Eventually.Until(() => Task.FromResult(subscriber.Changes), c => c.Count == 4, "the insert after the snapshot");
        var slotStart = Lsn.Parse(await env.ScalarAsync<string>($"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{env.Name}'"));
        Assert.Equal(
            ["Read 1 id=1,user_id=7,body=a", "Read 2 id=2,user_id=NULL,body=b", "Read 3 id=3,user_id=8,body=NULL", "Insert 4 id=4,user_id=7,body=d"],
            changes.Select(c => $"{c.Operation} {c.RecordId} {string.Join(",", c.NewRow!.Select(v => $"{v.Name}={v.Text ?? "NULL"}"))}"));
        Assert.All(changes.Take(3), c => Assert.Null(c.OldRow));
        // The reads form one transaction just before the slot's first change, numbered in key order.
        Assert.Equal([0, 1, 2], changes.Take(3).Select(c => c.ChangeIndex));
        Assert.Single(changes.Take(3).Select(c => c.CommitLsn).Distinct());
        Assert.True(changes[0].CommitLsn < changes[3].CommitLsn && changes[0].CommitLsn.Value < slotStart);
        // The bucket consumer applies independently of subscribers: its rows may come a moment later.
        Assert.Equal(["user:7|notes|1|1", "global|notes|2|1", "user:8|notes|3|1", "user:7|notes|4|1"],
            await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 4, "the four changelog rows"));
    }

    [Fact]
    public async Task a_slot_dropped_under_a_running_bridge_stops_it_instead_of_snapshotting_again()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        var settings = TestEnvironment.WithSnapshot(scenario.Settings());
        var bridge = scenario.Start(settings);
        await WaitForSnapshotsAsync(scenario, bridge, jobs: 1);
        await env.ExecuteAsync("INSERT INTO items VALUES (1, 4, 'before', NULL)");
        await scenario.WaitForCatchUpAsync(bridge, Deadline);

        // The walsender must go first: an active slot cannot be dropped. The bridge may take it back in between.
        await Eventually.Until(async () =>
        {
            await env.ExecuteAsync($"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND active_pid IS NOT NULL");
            await env.ExecuteAsync($"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND NOT active");
            return await env.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}'") == 0;
        }, "the slot to be dropped");

        Assert.Equal(1, await bridge.WaitForExitAsync(Deadline));
        Assert.Contains($"synchro-bridge: Replication slot '{env.Name}' disappeared while the bridge ran, but sync_wal_position says", bridge.RecentOutput, StringComparison.Ordinal);
        Assert.Equal(0L, await env.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}'"));
        Assert.Equal(1L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_snapshots"));
    }

    /// <summary>Audited lists and cards with existing rows, and a bridge's settings for them (and notes).</summary>
    private static async Task<Dictionary<string, string?>> LoadAsync(FaultScenario scenario, int lists, int chunkRows)
    {
        await scenario.Env.ExecuteAsync(TreeWorkload.CreateTablesSql);
        await AuditOracle.InstallAsync(scenario.Env, "lists", "cards");
        await scenario.Env.ExecuteAsync(ExistingRowsWorkload.LoadSql(lists));
        var settings = TestEnvironment.WithSnapshot(scenario.Env.BridgeSettings());
        TreeWorkload.Configure(settings);
        settings["Synchro:Snapshot:ChunkRows"] = chunkRows.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return settings;
    }

    internal static Task WaitForSnapshotsAsync(FaultScenario scenario, BridgeProcess bridge, int jobs) =>
        Eventually.Until(async () =>
        {
            bridge.AssertRunning();
            // The bridge creates the table when it starts.
            return await scenario.Env.ScalarAsync<bool>("SELECT to_regclass('sync_snapshots') IS NOT NULL")
                ? await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_snapshots WHERE status = 'done'")
                : 0;
        }, done => done >= jobs, $"{jobs} snapshot jobs to be done", Deadline);
}
