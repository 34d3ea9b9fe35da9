using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Faults;

/// <summary>
/// Real processes, real faults. Each test ends with the sidecar tables compared against the audit
/// oracle: per bucket and record the same operations in order as a fault-free run writes, the same
/// counts per operation, the same edges, no duplicate idempotency keys.
/// </summary>
public sealed class FaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CatchUp = TimeSpan.FromMinutes(3);

    [Trait("Versions", "all")]
    [Fact]
    public async Task bridge_killed_at_random_moments_loses_nothing_applies_nothing_twice_and_moves_the_slot_within_10_s()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var settings = scenario.Settings();
        var random = new Random(6);
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge); // the first bridge creates the slot: no writes before it
        int? killedSession = null;

        // Kills 1-6 land among many small transactions from three clients.
        var small = MixedWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 300, seed: 6, CancellationToken.None);
        for (var kill = 0; kill < 6; kill++)
            (bridge, killedSession) = await KillAtRandomMomentAsync(scenario, bridge, killedSession, settings, random);
        await small;

        // Kills 7-10 land while a 20,000-row transaction streams and is applied.
        await MixedWorkload.BigTransactionAsync(scenario.ConnectionString, 20_000, 3 * MixedWorkload.ClientIdSpan + 1, CancellationToken.None);
        for (var kill = 0; kill < 4; kill++)
            (bridge, killedSession) = await KillAtRandomMomentAsync(scenario, bridge, killedSession, settings, random);

        // No stall on copies from dead runs: the slot moves again soon after the last kill.
        var atLastKill = await scenario.Env.ConfirmedFlushLsnAsync();
        var written = await scenario.Env.CurrentWalLsnAsync();
        if (atLastKill < written)
        {
            var moved = Stopwatch.StartNew();
            await Eventually.Until(async () =>
            {
                bridge.AssertRunning();
                return await scenario.Env.ConfirmedFlushLsnAsync();
            }, lsn => lsn > atLastKill, "the slot to move again after the last kill", TimeSpan.FromSeconds(10));
            output.WriteLine($"measured: the slot moved {moved.Elapsed.TotalSeconds:0.0} s after the last kill");
        }

        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        await scenario.AssertExactAsync();
    }

    /// <summary>Kills the bridge once it holds the slot (not the session of the bridge killed before it), and starts the next one.</summary>
    private static async Task<(BridgeProcess Next, int KilledSession)> KillAtRandomMomentAsync(
        FaultScenario scenario, BridgeProcess bridge, int? previouslyKilledSession, Dictionary<string, string?> settings, Random random)
    {
        var session = await scenario.WaitForSlotHeldAsync(bridge, notBy: previouslyKilledSession);
        // The fault's moment: a random point in the bridge's work, not a wait for a condition.
        await Task.Delay(random.Next(300, 1500));
        bridge.Kill();
        return (scenario.Start(settings), session);
    }

    [Fact]
    public async Task postgres_fast_restart_during_a_backlog_completes_within_15_s_and_the_bridge_recovers_by_itself()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var settings = scenario.Settings();
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        await MixedWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 200, seed: 7, CancellationToken.None);
        await MixedWorkload.BigTransactionAsync(scenario.ConnectionString, 60_000, 3 * MixedWorkload.ClientIdSpan + 1, CancellationToken.None);
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n > 1_000, "the backlog to stream");

        var restart = Stopwatch.StartNew();
        await FaultScenario.ServersAsync("restart-pg", "15");
        Assert.InRange(restart.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(15));
        output.WriteLine($"measured: pg_ctl restart -m fast took {restart.Elapsed.TotalSeconds:0.0} s with a backlog streaming");
        NpgsqlConnection.ClearAllPools();
        scenario.Env.DataSource.Clear();

        // Writes after the restart too; the same bridge process carries on by itself.
        await MixedWorkload.RunLaterClientsAsync(scenario.ConnectionString, firstClient: 5, clients: 3, transactionsPerClient: 100, seed: 70, CancellationToken.None);
        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        bridge.AssertRunning();
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task rabbitmq_stopped_for_10_s_mid_stream_and_the_bridge_resumes_by_itself()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var settings = scenario.Settings(); // the default confirmation timeout (60 s): recovery must not wait for it
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        var writing = MixedWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 600, seed: 8, CancellationToken.None);
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n > 200, "changes to flow");

        await FaultScenario.ServersAsync("stop-rabbitmq");
        try
        {
            // The outage's length: the broker stays away for 10 s while the writers go on.
            await Task.Delay(TimeSpan.FromSeconds(10));
        }
        finally
        {
            await FaultScenario.ServersAsync("start-rabbitmq");
        }

        await writing;
        var recovery = Stopwatch.StartNew();
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromSeconds(45));
        output.WriteLine($"measured: caught up {recovery.Elapsed.TotalSeconds:0.0} s after the writers finished, with RabbitMQ back");
        bridge.AssertRunning();
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task postgres_connection_cut_for_5_s_is_survived_without_a_restart_from_outside()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var direct = new NpgsqlConnectionStringBuilder(scenario.ConnectionString);
        await using var proxy = TcpProxy.Start(direct.Host!, direct.Port);
        var settings = scenario.Settings();
        settings["Synchro:Postgres:ConnectionString"] = new NpgsqlConnectionStringBuilder(scenario.ConnectionString) { Port = proxy.Port }.ConnectionString;
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        var writing = MixedWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 500, seed: 9, CancellationToken.None);
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n > 200, "changes to flow");
        var walsender = await scenario.SlotHolderPidAsync();

        // A partition: PostgreSQL's side of the connections stays open, so the old walsender keeps
        // the slot until wal_sender_timeout unless the bridge recognises it as its own and ends it.
        proxy.Cut(leaveServerHanging: true);
        try
        {
            // The cut's length, not a wait for a condition.
            await Task.Delay(TimeSpan.FromSeconds(5));
        }
        finally
        {
            proxy.Restore();
        }

        await writing;
        var recovery = Stopwatch.StartNew();
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromSeconds(50)); // well inside wal_sender_timeout (60 s)
        output.WriteLine($"measured: caught up {recovery.Elapsed.TotalSeconds:0.0} s after the connection came back");
        Assert.NotEqual(walsender, await scenario.SlotHolderPidAsync());
        bridge.AssertRunning();
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task bucket_consumer_stopped_for_30_s_never_lets_the_acknowledgement_pass_applied_work()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var readerSettings = scenario.Settings();
        readerSettings["Synchro:Roles"] = "Replication";
        var consumerSettings = scenario.Settings();
        consumerSettings["Synchro:Roles"] = "Buckets";
        var consumer = scenario.Start(consumerSettings);
        await Eventually.Until(async () => (await FaultScenario.HealthAsync(consumerSettings)).Healthy, "the bucket consumer to run");
        var reader = scenario.Start(readerSettings);
        await scenario.WaitForSlotHeldAsync(reader);

        var writing = MixedWorkload.RunAsync(scenario.ConnectionString, clients: 2, transactionsPerClient: 1_500, seed: 10, CancellationToken.None);
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n > 200, "changes to flow");
        consumer.Kill();
        var acknowledgedAtKill = await scenario.Env.ConfirmedFlushLsnAsync();

        // For 30 s of writes without a consumer, nothing is applied and so nothing more may be acknowledged.
        // In the first moments a commit the killed consumer had already sent, and the confirmations of
        // change sets applied just before the kill, may still land: the baselines are taken after those.
        var outage = Stopwatch.StartNew();
        var unchangedFor = Stopwatch.StartNew();
        (ulong Acknowledged, long Applied) last = default;
        var (acknowledgedSettled, appliedSettled) = (await Eventually.Until(async () =>
        {
            var now = (await scenario.Env.ConfirmedFlushLsnAsync(), await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"));
            if (now != last)
            {
                last = now;
                unchangedFor.Restart();
            }

            return (now, unchangedFor.Elapsed);
        }, r => r.Elapsed >= TimeSpan.FromSeconds(2), "the acknowledged LSN and the changelog to stay unchanged for 2 s")).now;
        var watched = Stopwatch.StartNew();
        while (outage.Elapsed < TimeSpan.FromSeconds(30) || watched.Elapsed < TimeSpan.FromSeconds(20))
        {
            reader.AssertRunning();
            Assert.Equal(acknowledgedSettled, await scenario.Env.ConfirmedFlushLsnAsync());
            Assert.Equal(appliedSettled, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"));
            await Task.Delay(250);
        }

        Assert.True(acknowledgedSettled >= acknowledgedAtKill);
        Assert.True(await scenario.Env.CurrentWalLsnAsync() > acknowledgedSettled, "writes went on during the outage");

        scenario.Start(consumerSettings);
        await writing;
        await scenario.WaitForCatchUpAsync(reader, CatchUp);
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task a_batch_no_queue_is_bound_for_is_an_error_that_names_the_missing_queue_and_is_retried()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var readerSettings = scenario.Settings();
        readerSettings["Synchro:Roles"] = "Replication";
        readerSettings["Synchro:Health:AckStallThreshold"] = "00:00:01";
        var reader = scenario.Start(readerSettings); // no bucket consumer has declared its queue yet
        await scenario.WaitForSlotHeldAsync(reader);

        await MixedWorkload.RunAsync(scenario.ConnectionString, clients: 1, transactionsPerClient: 30, seed: 17, CancellationToken.None);
        var source = $"{scenario.Env.Name}-{scenario.Env.Name}";
        var (healthy, _) = await Eventually.Until(() => FaultScenario.HealthAsync(readerSettings),
            h => h.Detail.Contains($"RabbitMQ has no queue bound for source {source} on exchange synchro.change-batch", StringComparison.Ordinal), "health to name the missing queue");
        Assert.False(healthy);
        Assert.True(await scenario.Env.ConfirmedFlushLsnAsync() < await scenario.Env.CurrentWalLsnAsync(), "nothing unpublished may be acknowledged");

        var consumerSettings = scenario.Settings();
        consumerSettings["Synchro:Roles"] = "Buckets";
        scenario.Start(consumerSettings);
        await scenario.WaitForCatchUpAsync(reader, CatchUp);
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task the_slot_is_not_acknowledged_past_change_sets_subscribers_have_not_received()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await using var subscriber = await ChangeSetSubscriber.StartAsync(scenario.Env.AmqpUri, "items-subscriber", "public.items");
        // RabbitMQ refuses the subscribers' change sets, and only those: the bucket consumer still
        // gets every batch and confirms it. Set before the bridge opens a channel (channels keep what they were allowed).
        await scenario.Env.SetWritePermissionAsync($"^(?!{Regex.Escape(Contracts.WireNames.ChangeSetExchange)}$).*");
        var settings = scenario.Settings();
        settings["Synchro:Replication:ConfirmationTimeout"] = "00:00:03";
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        await scenario.Env.ExecuteAsync(
            """
            BEGIN;
            INSERT INTO items VALUES (1, 1, 'one', NULL), (2, 2, 'two', NULL), (3, 3, 'three', NULL);
            UPDATE items SET title = 'two again' WHERE id = 2;
            COMMIT;
            """);
        var applied = await Eventually.Until(() => scenario.Env.RowsAsync("SELECT commit_lsn::text FROM sync_changelog"), rows => rows.Count == 4, "the bucket consumer to apply the transaction");
        var commit = Contracts.Lsn.Parse(Assert.Single(applied.Distinct()));

        // MassTransit retries the refused publish; the run waits for it until ConfirmationTimeout and
        // then re-reads the slot. All along, the slot stays before the transaction.
        var refused = $"ACCESS_REFUSED - access to exchange '{Contracts.WireNames.ChangeSetExchange}' in vhost '{scenario.Env.Name}' refused";
        await Eventually.Until(async () =>
        {
            bridge.AssertRunning();
            var acknowledged = new Contracts.Lsn(await scenario.Env.ConfirmedFlushLsnAsync());
            Assert.True(acknowledged < commit, $"the slot was acknowledged to {acknowledged}, past the commit ({commit}) of change sets subscribers have not received");
            return bridge.RecentOutput;
        }, output => output.Contains(refused, StringComparison.Ordinal) && output.Contains("Replication interrupted (No change set was confirmed", StringComparison.Ordinal),
            "the broker to refuse the change sets and the run to re-read the slot");
        Assert.Empty(subscriber.Received);

        // Allowed again: the next publish goes through, the slot passes the transaction, and the
        // subscriber has every change at least once, each copy of a change (a replay) the same.
        await scenario.Env.SetWritePermissionAsync(".*");
        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        string[] expected =
        [
            $"{commit}#0 Insert 1 id=1,owner_id=1,title=one,deleted_at=NULL",
            $"{commit}#1 Insert 2 id=2,owner_id=2,title=two,deleted_at=NULL",
            $"{commit}#2 Insert 3 id=3,owner_id=3,title=three,deleted_at=NULL",
            $"{commit}#3 Update 2 id=2,owner_id=2,title=two again,deleted_at=NULL",
        ];
        var received = await Eventually.Until(() => Task.FromResult(subscriber.Changes.Select(Describe).ToList()),
            changes => changes.Distinct().Count() >= expected.Length, "the subscriber to receive the transaction");
        Assert.Equal(expected, received.Distinct());
        output.WriteLine($"measured: {received.Count} changes delivered for {expected.Length}");
        bridge.AssertRunning();
        await scenario.AssertExactAsync();

        static string Describe(Contracts.Change change) =>
            $"{change.CommitLsn}#{change.ChangeIndex} {change.Operation} {change.RecordId} {string.Join(",", change.NewRow!.Select(v => $"{v.Name}={v.Text ?? "NULL"}"))}";
    }

    [Fact]
    public async Task hot_standby_takes_over_within_10_s_of_the_active_instance_being_killed()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var activeSettings = scenario.Settings();
        var standbySettings = scenario.Settings();
        var active = scenario.Start(activeSettings);
        await scenario.WaitForSlotHeldAsync(active);
        var standby = scenario.Start(standbySettings);
        var (healthy, detail) = await Eventually.Until(() => FaultScenario.HealthAsync(standbySettings), h => h.Detail.StartsWith("standby:", StringComparison.Ordinal), "the second instance to wait as standby");
        Assert.True(healthy, detail);

        var writing = MixedWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 400, seed: 11, CancellationToken.None);
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n > 200, "changes to flow");
        var activeWalsender = await scenario.SlotHolderPidAsync();
        active.Kill();
        var takeover = Stopwatch.StartNew();
        await Eventually.Until(async () =>
        {
            standby.AssertRunning();
            return await scenario.SlotHolderPidAsync();
        }, pid => pid is not null && pid != activeWalsender, "the standby to take the slot", TimeSpan.FromSeconds(10));
        Assert.InRange(takeover.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10));
        output.WriteLine($"measured: the standby took the slot {takeover.Elapsed.TotalSeconds:0.0} s after the kill");

        await writing;
        await scenario.WaitForCatchUpAsync(standby, CatchUp);
        // The health file is rewritten every few seconds.
        await Eventually.Until(() => FaultScenario.HealthAsync(standbySettings), h => h == (true, "running"), "the former standby to report itself running");
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task a_poison_change_set_stalls_the_acknowledgement_with_red_health_and_is_applied_after_the_fix()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var settings = scenario.Settings();
        settings["Synchro:Replication:ConfirmationTimeout"] = "00:00:05";
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        // A fault that stays until someone fixes it: the sidecar write of one bucket fails every time.
        await scenario.Env.ExecuteAsync(
            """
            CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'bucket % is poisoned', NEW.bucket_id; END $$;
            CREATE TRIGGER poison BEFORE INSERT ON sync_changelog FOR EACH ROW WHEN (NEW.bucket_id = 'owner:13') EXECUTE FUNCTION poison();
            """);
        await MixedWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 150, seed: 12, CancellationToken.None);
        var written = await scenario.Env.CurrentWalLsnAsync();

        // The health file is rewritten every few seconds: wait for the report that names the hold.
        var (healthy, detail) = await Eventually.Until(() => FaultScenario.HealthAsync(settings), h => h.Detail.Contains("holds a change set", StringComparison.Ordinal), "health to name the held change set");
        Assert.False(healthy);
        Assert.StartsWith("the bucket consumer holds a change set of public.items (batch", detail, StringComparison.Ordinal);
        Assert.Contains("bucket owner:13 is poisoned", detail, StringComparison.Ordinal);
        // The consumer reports the hold before it records it in sync_apply_holds.
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_apply_holds"), n => n == 1, "the hold to be recorded once");
        // Past the confirmation timeout (5 s) the reader waits for the operator instead of re-reading the slot.
        await Eventually.Until(() => scenario.Env.ScalarAsync<int>("SELECT attempts FROM sync_apply_holds"), n => n >= 6, "the hold to last past the confirmation timeout");
        Assert.DoesNotContain("No change set was confirmed", bridge.RecentOutput, StringComparison.Ordinal);
        Assert.True(await scenario.Env.ConfirmedFlushLsnAsync() < written, "the acknowledgement must stay before the held change set");
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog WHERE bucket_id = 'owner:13'"));

        // The operator's fix; the held change set is retried in place and everything behind it follows.
        await scenario.Env.ExecuteAsync("DROP TRIGGER poison ON sync_changelog");
        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        await Eventually.Until(() => FaultScenario.HealthAsync(settings), h => h.Healthy, "health to turn green again");
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_apply_holds"));
        bridge.AssertRunning();
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task a_bridge_holding_a_poison_change_set_stops_promptly_when_asked_and_parks_nothing()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var settings = scenario.Settings();
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        await scenario.Env.ExecuteAsync(
            """
            CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'poisoned'; END $$;
            CREATE TRIGGER poison BEFORE INSERT ON sync_changelog FOR EACH ROW EXECUTE FUNCTION poison();
            """);
        await MixedWorkload.RunAsync(scenario.ConnectionString, clients: 1, transactionsPerClient: 20, seed: 16, CancellationToken.None);
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_apply_holds"), n => n == 1, "the change set to be held");

        var stopping = Stopwatch.StartNew();
        bridge.Terminate();
        Assert.Equal(0, await bridge.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        output.WriteLine($"measured: a bridge holding a change set stopped {stopping.Elapsed.TotalSeconds:0.0} s after SIGTERM");

        // The held change set went back to its queue, not to an error queue: after the fix, the next start applies it.
        using (var management = TestEnvironment.Management())
        {
            var source = $"{scenario.Env.Name}-{scenario.Env.Name}";
            Assert.Equal(System.Net.HttpStatusCode.NotFound, (await management.GetAsync($"api/queues/{scenario.Env.Name}/synchro.{source}.bucket-assignment_error")).StatusCode);
        }

        await scenario.Env.ExecuteAsync("DROP TRIGGER poison ON sync_changelog");
        var restarted = scenario.Start(settings);
        await scenario.WaitForCatchUpAsync(restarted, CatchUp);
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task a_slot_dropped_while_the_bridge_was_stopped_refuses_start_until_the_gap_is_accepted()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var settings = scenario.Settings();
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        await MixedWorkload.RunAsync(scenario.ConnectionString, clients: 1, transactionsPerClient: 50, seed: 13, CancellationToken.None);
        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        var stored = await scenario.Env.ScalarAsync<string>($"SELECT ('0/0'::pg_lsn + confirmed_lsn)::text FROM sync_wal_position WHERE slot_name = '{scenario.Env.Name}'");
        bridge.Kill();
        await scenario.Env.ExecuteAsync($"SELECT pg_drop_replication_slot('{scenario.Env.Name}')");

        var refused = scenario.Start(settings);
        Assert.Equal(2, await refused.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(
            $"synchro-bridge: Not started: replication slot '{scenario.Env.Name}' is missing, but sync_wal_position says the sidecar tables were brought to {stored}: the changes since then were lost with the slot. Resynchronise the sidecar tables from the application tables, or run synchro-bridge run --accept-gap",
            refused.RecentOutput, StringComparison.Ordinal);
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{scenario.Env.Name}'"));

        // The operator accepts the gap once; later starts need nothing.
        var accepted = scenario.Start(settings, null, "run", "--accept-gap");
        await scenario.WaitForSlotHeldAsync(accepted);
        accepted.Kill();
        var again = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(again);
        await scenario.Env.ExecuteAsync($"INSERT INTO items VALUES ({9 * MixedWorkload.ClientIdSpan}, 4, 'after the gap', NULL)");
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>($"SELECT count(*) FROM sync_changelog WHERE record_id = '{9 * MixedWorkload.ClientIdSpan}'"), n => n == 1, "a change after the gap to be applied");
    }

    [Fact]
    public async Task rows_of_128_kb_and_a_truncate_of_a_million_rows_fit_a_100_mb_heap()
    {
        const int MillionRows = 1_000_000;
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync($"CREATE TABLE big (id bigint PRIMARY KEY); INSERT INTO big SELECT generate_series(1, {MillionRows})");
        var settings = scenario.Settings();
        settings["Synchro:Tables:1:Name"] = "big";
        // The README's recommended ceiling; a bridge holding more live data fails with OutOfMemoryException.
        var bridge = scenario.Start(settings, heapLimitBytes: 100L * 1024 * 1024);
        await scenario.WaitForSlotHeldAsync(bridge);
        // The million rows existed before the slot; their edges are placed as a snapshot would place them.
        await scenario.Env.ExecuteAsync($"INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id, checksum, lsn) SELECT 'big', g::text, 'global', 0, '0/1' FROM generate_series(1, {MillionRows}) g");

        // 400 rows of 128 kB in one transaction: 51 MB of column data, more than half the heap.
        await scenario.Env.ExecuteAsync(
            "INSERT INTO items SELECT g, g % 20 + 1, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 4096) i), NULL FROM generate_series(1, 400) g");
        await scenario.Env.ExecuteAsync("TRUNCATE big");

        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        bridge.AssertRunning();
        Assert.Equal((long)MillionRows, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog WHERE table_name = 'big' AND operation = 3"));
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_bucket_edges WHERE table_name = 'big'"));
        await scenario.AssertExactAsync();
    }

    [Fact]
    public async Task two_sources_on_one_virtual_host_touch_neither_each_others_tables_nor_slots()
    {
        await using var first = await FaultScenario.CreateAsync();
        await using var second = await FaultScenario.CreateAsync("two_sources_second_database");
        var firstSettings = first.Settings();
        var secondSettings = second.Settings();
        secondSettings["Synchro:RabbitMq:Uri"] = first.Env.AmqpUri.ToString(); // one virtual host for both
        var firstBridge = first.Start(firstSettings);
        var secondBridge = second.Start(secondSettings);
        await first.WaitForSlotHeldAsync(firstBridge);
        await second.WaitForSlotHeldAsync(secondBridge);

        // The same ids in both databases: any cross-talk would show up as foreign rows or operations.
        await Task.WhenAll(
            MixedWorkload.RunAsync(first.ConnectionString, clients: 2, transactionsPerClient: 200, seed: 14, CancellationToken.None),
            MixedWorkload.RunAsync(second.ConnectionString, clients: 2, transactionsPerClient: 200, seed: 15, CancellationToken.None));
        await first.WaitForCatchUpAsync(firstBridge, CatchUp);
        await second.WaitForCatchUpAsync(secondBridge, CatchUp);
        await first.AssertExactAsync();
        await second.AssertExactAsync();

        // Each bucket queue is bound to its own source's batches only.
        Assert.Equal([first.Env.Source], await BucketQueueBindingsAsync(first.Env, first.Env.Source));
        Assert.Equal([second.Env.Source], await BucketQueueBindingsAsync(first.Env, second.Env.Source));
    }

    private static async Task<List<string>> BucketQueueBindingsAsync(TestEnvironment env, string source)
    {
        // MassTransit binds the queue to an exchange of its own name, and that exchange to the change-batch exchange.
        using var management = TestEnvironment.Management();
        var bindings = await management.GetFromJsonAsync<List<System.Text.Json.JsonElement>>(
            $"api/exchanges/{env.Name}/{Changes.BridgeWireNames.ChangeBatchExchange}/bindings/source");
        return bindings!.Where(b => b.GetProperty("destination").GetString() == $"synchro.{source}.bucket-assignment")
            .Select(b => b.GetProperty("routing_key").GetString()!).Order(StringComparer.Ordinal).ToList();
    }
}
