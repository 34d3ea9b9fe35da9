using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Position;

/// <summary>
/// With several apply partitions a transaction's changelog rows wait in sync_changelog_pending until
/// every partition has applied it, then move into sync_changelog before its LSN is acknowledged. A
/// transaction far larger than one attempt of the position store can move must still get through.
/// </summary>
public sealed class PendingChangelogTests
{
    [Fact]
    public async Task a_transaction_whose_pending_changelog_outlasts_one_attempt_moves_in_slices_and_is_acknowledged_exactly()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var settings = scenario.Settings();
        settings["Synchro:Apply:Partitions"] = "2";
        // Stands in for millions of rows against the default 10 s: moving this transaction's 120,000
        // changelog rows in one statement takes longer than an attempt may, each slice far less.
        settings["Synchro:Replication:PositionStoreAttemptTimeout"] = "00:00:00.300";
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        await MixedWorkload.RunAsync(scenario.ConnectionString, clients: 2, transactionsPerClient: 50, seed: 41, CancellationToken.None);
        await MixedWorkload.BigTransactionAsync(scenario.ConnectionString, rows: 120_000, firstId: 50_000_000, CancellationToken.None);
        await MixedWorkload.RunLaterClientsAsync(scenario.ConnectionString, firstClient: 2, clients: 2, transactionsPerClient: 50, seed: 42, CancellationToken.None);

        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(3));
        await scenario.AssertExactAsync();
        Assert.Equal(0, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog_pending"));
    }
}
