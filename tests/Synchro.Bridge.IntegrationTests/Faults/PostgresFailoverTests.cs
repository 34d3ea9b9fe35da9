using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Contracts;
using Synchro.Subscriptions;
using ChangeBatch = Synchro.Bridge.Changes.ChangeBatch;
using WalLsn = Synchro.Bridge.Replication.Lsn;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Faults;

/// <summary>
/// PostgreSQL fails over under the bridge: a primary with a streaming standby that synchronizes the
/// bridge's failover slot (PostgreSQL 17+), the primary killed with SIGKILL mid-stream, the standby
/// promoted, the workload going on against it. The bridge finds the new primary through its
/// two-host connection string and goes on from the synchronized slot, with no step from outside.
/// </summary>
public sealed class PostgresFailoverTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Versions", "17+")]
    public async Task primary_killed_mid_stream_and_standby_promoted_the_bridge_goes_on_from_the_synchronized_slot_and_loses_nothing()
    {
        Assert.True(TestServers.PostgresVersion >= 17, "failover slots need PostgreSQL 17 or newer");
        await using var pair = await PostgresPair.StartAsync(TestServers.PostgresVersion);
        await using var scenario = await FaultScenario.CreateOnAsync(pair.Either());
        var env = scenario.Env;
        var settings = scenario.Settings();
        settings["Synchro:Postgres:ConnectionString"] = pair.Either(env.Name);
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.failover", "public.items");
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        // The standby holds a synchronized copy of the slot before anything is written.
        await using (var standby = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(pair.Standby) { Database = env.Name }.ConnectionString))
        {
            await standby.OpenAsync();
            await Eventually.Until(async () =>
            {
                await using var synced = new NpgsqlCommand($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND synced AND failover AND NOT temporary", standby);
                return (long)(await synced.ExecuteScalarAsync())!;
            }, n => n == 1, "the standby to synchronize the slot", TimeSpan.FromSeconds(90));
        }

        // The primary dies while the bridge is busy with the first half of the workload.
        var writers = pair.Either(env.Name);
        await MixedWorkload.RunAsync(writers, clients: 3, transactionsPerClient: 150, seed: 17, CancellationToken.None);
        var written = await env.CurrentWalLsnAsync();
        await Eventually.Until(env.ConfirmedFlushLsnAsync, lsn => lsn > 0, "the bridge to acknowledge part of the workload");
        var acknowledgedAtKill = await env.ConfirmedFlushLsnAsync();
        await pair.KillPrimaryAsync();
        await pair.PromoteAsync();
        NpgsqlConnection.ClearAllPools();
        output.WriteLine($"measured: killed with {new Lsn(acknowledgedAtKill)} acknowledged of {new Lsn(written)} written");

        // The second half goes to the promoted standby; the bridge follows by itself.
        await MixedWorkload.RunLaterClientsAsync(writers, firstClient: 3, clients: 3, transactionsPerClient: 150, seed: 18, CancellationToken.None);
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(3));
        await scenario.AssertExactAsync();

        // Subscribers got every change that survived at least once: their last word on each record is the table's.
        var table = await env.RowsAsync("SELECT id::text, coalesce(owner_id::text, 'NULL'), coalesce(title, 'NULL') FROM items ORDER BY items.id");
        // A key change leaves its old record id: that id's last word is a delete at the same position.
        var rebuilt = subscriber.Changes
            .Where(c => c.Operation != ChangeOperation.Read)
            .SelectMany(c => c.OldRecordId is { } old
                ? new[] { (Id: old, c.Position, Row: (Row?)null), (Id: c.RecordId!, c.Position, Row: c.NewRow) }
                : [(Id: c.RecordId!, c.Position, Row: c.Operation == ChangeOperation.Delete ? null : c.NewRow)])
            .GroupBy(c => c.Id)
            .Select(g => g.MaxBy(c => c.Position))
            .Where(c => c.Row is not null)
            .Select(c => $"{c.Id}|{c.Row!["owner_id"].Text ?? "NULL"}|{c.Row["title"].Text ?? "NULL"}")
            .OrderBy(r => long.Parse(r.Split('|')[0], System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
        Assert.Equal(table, rebuilt);
    }

    [Fact]
    [Trait("Versions", "all")]
    public async Task without_a_synchronized_slot_a_promotion_refuses_to_go_on_and_accept_gap_with_the_snapshot_converges()
    {
        await using var pair = await PostgresPair.StartAsync(TestServers.PostgresVersion);
        await using var scenario = await FaultScenario.CreateOnAsync(pair.Either());
        var env = scenario.Env;
        var settings = TestEnvironment.WithSnapshot(scenario.Settings());
        settings["Synchro:Postgres:ConnectionString"] = pair.Either(env.Name);
        // What PostgreSQL before 17 gives: no copy of the slot on the standby.
        settings["Synchro:Replication:Failover"] = "false";
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        var writers = pair.Either(env.Name);
        await MixedWorkload.RunAsync(writers, clients: 3, transactionsPerClient: 100, seed: 21, CancellationToken.None);
        // Something acknowledged, and on the standby: a bridge that never stored a position may start afresh.
        await using (var standby = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(pair.Standby) { Database = env.Name }.ConnectionString))
        {
            await standby.OpenAsync();
            await Eventually.Until(async () =>
            {
                await using var stored = new NpgsqlCommand("SELECT count(*) FROM sync_wal_position", standby);
                return (long)(await stored.ExecuteScalarAsync())!;
            }, n => n == 1, "an acknowledged position on the standby");
        }

        await pair.KillPrimaryAsync();
        await pair.PromoteAsync();
        NpgsqlConnection.ClearAllPools();
        await MixedWorkload.RunLaterClientsAsync(writers, firstClient: 3, clients: 3, transactionsPerClient: 100, seed: 22, CancellationToken.None);

        // The slot is gone with the old primary: the bridge stops rather than snapshot silently over the gap.
        Assert.Equal(1, await bridge.WaitForExitAsync(TimeSpan.FromMinutes(2)));
        Assert.Contains($"Replication slot '{env.Name}' disappeared while the bridge ran", bridge.RecentOutput, StringComparison.Ordinal);

        // The documented recovery: the new slot's snapshot writes what changed and deletes what went.
        // A new slot starts at the end of the WAL, so its acknowledged position says nothing about
        // the snapshot: wait for the snapshot's job as well.
        var snapshotsDone = await env.ScalarAsync<long>("SELECT count(*) FROM sync_snapshots WHERE status = 'done'");
        settings["Synchro:Replication:AcceptGap"] = "true";
        var recovered = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(recovered);
        await Snapshots.InitialSnapshotTests.WaitForSnapshotsAsync(scenario, recovered, (int)snapshotsDone + 1);
        await scenario.WaitForCatchUpAsync(recovered, TimeSpan.FromMinutes(3));
        var expected = await AuditOracle.ComputeAsync(env, "items", row => AuditOracle.OwnerRule(row, "owner_id", "owner"));
        Assert.Equal(expected.Edges.ToList(), await env.RowsAsync("SELECT e FROM (SELECT record_id || '|' || bucket_id AS e FROM sync_bucket_edges WHERE table_name = 'items') n ORDER BY e COLLATE \"C\""));
        // A reader pulling the changelog in seq order ends with exactly the edges: its last word on
        // every bucket and record is an insert or update where the record is, a delete where it is not.
        var lastWords = await env.RowsAsync(
            """
            SELECT DISTINCT ON (bucket_id, record_id) record_id || '|' || bucket_id, operation
            FROM sync_changelog WHERE table_name = 'items' ORDER BY bucket_id, record_id, seq DESC
            """);
        Assert.Equal(expected.Edges.ToList(), lastWords.Where(w => !w.EndsWith("|3", StringComparison.Ordinal)).Select(w => w[..w.LastIndexOf('|')]).Order(StringComparer.Ordinal).ToList());
        Assert.Equal(0, await env.ScalarAsync<long>("SELECT count(*) FROM (SELECT 1 FROM sync_changelog GROUP BY commit_lsn, change_idx, bucket_id, table_name, record_id HAVING count(*) > 1) d"));
    }

    /// <summary>
    /// An asynchronous standby that fell behind is promoted: what the old primary had past it (rows,
    /// their sidecar writes, change sets subscribers saw) is gone, and the new timeline's LSNs run
    /// through the same range again. Batches of the lost history still queued for the bucket consumer
    /// (here held by a lock on the old primary) are not applied on the new one, the next run starts a
    /// new generation, and a subscriber keeping a kit checkpoint takes every change of the new history.
    /// </summary>
    [Fact]
    public async Task a_lagging_standby_promoted_gets_no_change_of_the_lost_history_and_nothing_of_its_own_is_taken_for_a_replay()
    {
        await using var pair = await PostgresPair.StartAsync(TestServers.PostgresVersion);
        await using var scenario = await FaultScenario.CreateOnAsync(pair.Either());
        var env = scenario.Env;
        var writers = pair.Either(env.Name);
        var readerSettings = scenario.Settings();
        readerSettings["Synchro:Postgres:ConnectionString"] = writers;
        readerSettings["Synchro:Replication:Failover"] = "false";
        readerSettings["Synchro:Roles"] = "Replication";
        var consumerSettings = scenario.Settings();
        consumerSettings["Synchro:Postgres:ConnectionString"] = writers;
        consumerSettings["Synchro:Roles"] = "Buckets";
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.lagging", ["public.items"], [], batchesOfSource: env.Source);
        var consumer = scenario.Start(consumerSettings);
        await Eventually.Until(async () => (await FaultScenario.HealthAsync(consumerSettings)).Healthy, "the bucket consumer to run");
        var reader = scenario.Start(readerSettings);
        await scenario.WaitForSlotHeldAsync(reader);

        // Shared history: written, applied, and replayed by the standby.
        await MixedWorkload.RunAsync(writers, clients: 3, transactionsPerClient: 60, seed: 31, CancellationToken.None);
        await scenario.WaitForCatchUpAsync(reader, TimeSpan.FromMinutes(2));
        var shared = await env.CurrentWalLsnAsync();
        await using var standby = new NpgsqlConnection(pair.StandbyOf(env.Name));
        await standby.OpenAsync();
        await Eventually.Until(() => ScalarAsync<string>(standby, "SELECT pg_last_wal_replay_lsn()::text"), lsn => WalLsn.Parse(lsn) >= shared, "the standby to replay the shared history");

        // The standby stops following; the primary goes on alone (asynchronous replication).
        await using (var stopFollowing = new NpgsqlCommand("ALTER SYSTEM SET primary_conninfo = ''", standby))
            await stopFollowing.ExecuteNonQueryAsync();
        await ScalarAsync<bool>(standby, "SELECT pg_reload_conf()");
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby'"), n => n == 0, "the standby to stop streaming");
        var parted = await env.CurrentWalLsnAsync();

        // The lost history: 12 MB of other WAL first, so its changes lie beyond all the new timeline writes;
        // its batches are published but wait for the bucket consumer, held by a lock on sync_runs.
        await env.ExecuteAsync("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 50000) g");
        await using var holder = new NpgsqlConnection(writers);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await using (var lockRuns = new NpgsqlCommand("LOCK TABLE sync_runs IN ACCESS EXCLUSIVE MODE", holder, hold))
            await lockRuns.ExecuteNonQueryAsync();
        await MixedWorkload.RunLaterClientsAsync(writers, firstClient: 3, clients: 3, transactionsPerClient: 30, seed: 32, CancellationToken.None);
        var beforeLast = await env.CurrentWalLsnAsync();
        await env.ExecuteAsync("INSERT INTO items (id, owner_id, title) VALUES (900000000, 1, 'last of the lost history')");
        List<ChangeBatch> Lost() => subscriber.Batches.Where(b => b.Sets.SelectMany(s => s.Changes).Any(c => c.CommitLsn > parted)).ToList();
        await Eventually.Until(() => Task.FromResult(Lost()), lost => lost.Any(b => b.Sets.SelectMany(s => s.Changes).Any(c => c.CommitLsn > beforeLast)), "the lost history's batches to be published");
        var lost = Lost();
        Assert.NotEmpty(lost);

        await pair.KillPrimaryAsync();
        await pair.PromoteAsync();
        NpgsqlConnection.ClearAllPools();
        Assert.Equal(1, await reader.WaitForExitAsync(TimeSpan.FromMinutes(2)));

        // The consumer meets the lost batches on the new primary: each is refused, none applied.
        await Eventually.Until(async () => (Refused: lost.Count(b => consumer.RecentOutput.Contains($"Batch {b.BatchSequence} part {b.PartIndex} was read on timeline 1, and the database is now on timeline 2", StringComparison.Ordinal)),
                Applied: WalLsn.Parse(await env.ScalarAsync<string>($"SELECT greatest(coalesce((SELECT applied_commit_lsn FROM sync_runs WHERE source = '{env.Source}'), '0/0'), coalesce((SELECT max(applied_commit_lsn) FROM sync_apply_partitions WHERE source = '{env.Source}'), '0/0'))::text"))),
            r => r.Refused == lost.Count || r.Applied > parted, "the bucket consumer to refuse or apply the lost history's batches");
        Assert.True(WalLsn.Parse(await env.ScalarAsync<string>($"SELECT coalesce((SELECT applied_commit_lsn FROM sync_runs WHERE source = '{env.Source}'), '0/0')::text")) <= parted, "a batch of the lost history was applied on the new primary");

        // The slot went with the old primary: the documented recovery, then the new history.
        readerSettings["Synchro:Replication:AcceptGap"] = "true";
        var recovered = scenario.Start(readerSettings);
        await scenario.WaitForSlotHeldAsync(recovered);
        await MixedWorkload.RunLaterClientsAsync(writers, firstClient: 6, clients: 3, transactionsPerClient: 30, seed: 33, CancellationToken.None);
        await scenario.WaitForCatchUpAsync(recovered, TimeSpan.FromMinutes(2));
        Assert.Equal(1, await env.ScalarAsync<long>($"SELECT generation FROM sync_runs WHERE source = '{env.Source}'"));
        await scenario.AssertExactAsync();

        // The subscriber saw the lost history, then the new one at lower LSNs: kept by LSN alone, its
        // checkpoint would skip the new changes; the kit's generation-aware checkpoint takes them all.
        var arrivals = subscriber.Arrivals.ToList();
        var newHistory = arrivals.Where(a => a.Generation.Number == 1).SelectMany(a => a.Set.Changes).Select(c => c.Position).ToHashSet();
        Assert.NotEmpty(newHistory);
        var lostPeak = arrivals.Where(a => a.Generation.Number == 0).SelectMany(a => a.Set.Changes).Max(c => c.Position);
        Assert.True(newHistory.Min() < lostPeak, $"the new timeline's changes ({newHistory.Min()}..) should lie below the lost history's last ({lostPeak})");
        Checkpoint? checkpoint = null;
        var taken = new HashSet<ChangePosition>();
        foreach (var (generation, set) in arrivals)
        {
            var changes = set.ChangesAfter(generation, checkpoint).ToList();
            if (changes.Count == 0)
                continue;
            taken.UnionWith(changes.Select(c => c.Position));
            checkpoint = set.LastCheckpoint(generation);
        }

        Assert.Empty(newHistory.Except(taken));
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
