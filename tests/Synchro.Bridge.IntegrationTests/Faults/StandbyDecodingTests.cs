using Npgsql;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Faults;

/// <summary>
/// Standby decoding (PostgreSQL 16+): the slot on a hot standby, the sidecar tables on the primary.
/// The slot is created and read there, the initial snapshot imported there, the slot told a
/// position only once the standby has replayed the sidecar writes behind it; when the primary dies
/// and that standby is promoted, the bridge goes on from the same slot.
/// </summary>
public sealed class StandbyDecodingTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Versions", "16+")]
    public async Task slot_on_a_hot_standby_streams_exactly_and_goes_on_when_that_standby_is_promoted()
    {
        Assert.True(TestServers.PostgresVersion >= 16, "a slot on a standby needs PostgreSQL 16 or newer");
        await using var pair = await PostgresPair.StartAsync(TestServers.PostgresVersion);
        await using var scenario = await FaultScenario.CreateOnAsync(pair.Either());
        var env = scenario.Env;
        var settings = TestEnvironment.WithSnapshot(scenario.Settings());
        settings["Synchro:Postgres:ConnectionString"] = pair.Either(env.Name);
        settings["Synchro:Postgres:DecodingConnectionString"] = pair.StandbyOf(env.Name);
        // Rows before the first start, inserted only (the oracle's history of each is its insert): the
        // initial snapshot reads them in the snapshot the standby exports.
        await env.ExecuteAsync($"INSERT INTO items (id, owner_id, title) SELECT g, g % 7, 'existing ' || g FROM generate_series({20 * MixedWorkload.ClientIdSpan + 1}, {20 * MixedWorkload.ClientIdSpan + 300}) g");

        await using (var standbyServer = NpgsqlDataSource.Create(pair.Standby))
        {
            // The test's database, created on the primary a moment ago, reaches the standby through its WAL.
            await Eventually.Until(async () =>
            {
                await using var command = standbyServer.CreateCommand($"SELECT count(*) FROM pg_database WHERE datname = '{env.Name}'");
                return (long)(await command.ExecuteScalarAsync())!;
            }, n => n == 1, "the standby to replay the test's database");
        }

        await using var standby = NpgsqlDataSource.Create(pair.StandbyOf(env.Name));
        async Task<ulong> StandbySlotAsync(string column)
        {
            await using var command = standby.CreateCommand($"SELECT coalesce(max({column}), '0/0')::text FROM pg_replication_slots WHERE slot_name = '{env.Name}'");
            return Synchro.Bridge.Replication.Lsn.Parse((string)(await command.ExecuteScalarAsync())!);
        }

        async Task WaitForCatchUpAsync(BridgeProcess bridge)
        {
            var written = await env.CurrentWalLsnAsync();
            await Eventually.Until(async () =>
            {
                bridge.AssertRunning();
                return await StandbySlotAsync("confirmed_flush_lsn");
            }, lsn => lsn >= written, $"the standby's slot to acknowledge everything written (up to {new Contracts.Lsn(written)})", TimeSpan.FromMinutes(2));
        }

        var bridge = scenario.Start(settings);
        await Eventually.Until(async () =>
        {
            bridge.AssertRunning();
            await using var command = standby.CreateCommand($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND active");
            return (long)(await command.ExecuteScalarAsync())!;
        }, n => n == 1, "the bridge to hold its slot on the standby");
        Assert.Equal(0L, await env.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}'"));
        await Snapshots.InitialSnapshotTests.WaitForSnapshotsAsync(scenario, bridge, jobs: 1);
        Assert.Equal(300L, await env.ScalarAsync<long>("SELECT rows_done FROM sync_snapshots WHERE kind = 'initial'"));

        await MixedWorkload.RunLaterClientsAsync(pair.Either(env.Name), firstClient: 0, clients: 3, transactionsPerClient: 100, seed: 42, CancellationToken.None);
        await WaitForCatchUpAsync(bridge);
        // The standby has the sidecar writes behind every position its slot was told.
        await using (var stored = standby.CreateCommand($"SELECT confirmed_lsn FROM sync_wal_position WHERE slot_name = '{env.Name}'"))
            Assert.True((ulong)(long)(await stored.ExecuteScalarAsync())! >= await StandbySlotAsync("confirmed_flush_lsn"));
        await scenario.AssertExactAsync();

        // The primary dies under a writer; the standby that holds the slot is promoted and takes the writes.
        var audited = await env.ScalarAsync<long>("SELECT count(*) FROM test_audit");
        var writing = MixedWorkload.RunLaterClientsAsync(pair.Either(env.Name), firstClient: 3, clients: 2, transactionsPerClient: 150, seed: 43, CancellationToken.None);
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM test_audit"), n => n > audited + 50, "the writer to be under way");
        var acknowledgedAtKill = await StandbySlotAsync("confirmed_flush_lsn");
        var writtenAtKill = await env.CurrentWalLsnAsync();
        await pair.KillPrimaryAsync();
        output.WriteLine($"measured: killed with {new Contracts.Lsn(acknowledgedAtKill)} acknowledged on the standby of {new Contracts.Lsn(writtenAtKill)} written");
        await pair.PromoteAsync();
        NpgsqlConnection.ClearAllPools();
        try
        {
            await writing;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            output.WriteLine($"the writer stopped with the primary: {e.Message}");
        }

        await MixedWorkload.RunLaterClientsAsync(pair.Either(env.Name), firstClient: 5, clients: 3, transactionsPerClient: 100, seed: 44, CancellationToken.None);
        await WaitForCatchUpAsync(bridge);
        await scenario.AssertExactAsync();
        Assert.Equal(1L, await env.ScalarAsync<long>($"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{env.Name}'"));
        output.WriteLine(bridge.RecentOutput);
    }
}
