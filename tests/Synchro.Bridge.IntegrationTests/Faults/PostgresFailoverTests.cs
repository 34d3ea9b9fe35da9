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
}
