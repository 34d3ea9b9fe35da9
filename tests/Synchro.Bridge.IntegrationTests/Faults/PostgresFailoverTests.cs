using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Contracts;
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
}
