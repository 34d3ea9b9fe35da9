using System.Globalization;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.IntegrationTests.Buckets;

/// <summary>
/// Four apply partitions applying side by side, killed again and again, must leave the sidecar tables
/// a single uninterrupted consumer leaves: the same changelog rows in the same seq order (so within
/// every bucket seq follows commit order), the same edges and record positions.
/// </summary>
public sealed class PartitionedApplyTests
{
    private static readonly TimeSpan CatchUp = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task four_partitions_killed_while_applying_concurrently_leave_the_changelog_of_one_uninterrupted_consumer_row_for_row()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(TreeWorkload.CreateTablesSql);
        var partitioned = scenario.Settings();
        TreeWorkload.Configure(partitioned, firstIndex: 1);
        // A single partition on its own slot writes the same stream, never interrupted, into schema clean.
        var clean = new Dictionary<string, string?>(partitioned)
        {
            ["Synchro:Source"] = "clean",
            ["Synchro:Replication:SlotName"] = scenario.Env.Name + "_clean",
            ["Synchro:Replication:PublicationName"] = scenario.Env.Name + "_clean",
            ["Synchro:Postgres:SidecarSchema"] = "clean",
            ["Synchro:Health:File"] = null,
        };
        partitioned["Synchro:Apply:Partitions"] = "4";
        partitioned["Synchro:Batching:MaxBatchChanges"] = "300";
        partitioned["Synchro:Batching:MaxChangesPerSet"] = "100";
        var reference = scenario.Start(clean);
        var bridge = scenario.Start(partitioned);
        await scenario.WaitForSlotHeldAsync(bridge);
        await scenario.WaitForCleanReferenceAsync();

        // Owner-rule rows spread over the partitions; the parent-linked lists and cards go to partition 0.
        var writing = Task.WhenAll(
            MixedWorkload.RunAsync(scenario.ConnectionString, clients: 3, transactionsPerClient: 400, seed: 90, CancellationToken.None),
            TreeWorkload.RunAsync(scenario.ConnectionString, clients: 2, transactionsPerClient: 300, seed: 91, CancellationToken.None));
        bridge = await KillWhileWritingAsync(scenario, bridge, partitioned, writing, kills: 3);
        await writing;
        // A TRUNCATE is a barrier: every partition has applied what came before it, nothing after overtakes it.
        await scenario.Env.ExecuteAsync("TRUNCATE items");
        writing = MixedWorkload.RunLaterClientsAsync(scenario.ConnectionString, firstClient: 3, clients: 3, transactionsPerClient: 300, seed: 92, CancellationToken.None);
        bridge = await KillWhileWritingAsync(scenario, bridge, partitioned, writing, kills: 2);
        await writing;

        await scenario.WaitForCatchUpAsync(bridge, CatchUp);
        await scenario.AssertSameSidecarTablesAsCleanReferenceAsync(CatchUp);

        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM public.sync_changelog_pending"));
        // Every partition applied something, and the truncate moved all four to its position at least.
        Assert.Equal(4L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM public.sync_apply_partitions WHERE layout LIKE '4:%'"));
        Assert.True(await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM public.sync_changelog WHERE table_name = 'items' AND operation = 3") > 0, "the truncate removed items");
        reference.AssertRunning();
    }

    private static async Task<BridgeProcess> KillWhileWritingAsync(FaultScenario scenario, BridgeProcess bridge, Dictionary<string, string?> settings, Task writing, int kills)
    {
        for (var kill = 0; kill < kills && !writing.IsCompleted; kill++)
        {
            var applied = await scenario.Env.ScalarAsync<long>("SELECT (SELECT count(*) FROM sync_changelog) + (SELECT count(*) FROM sync_changelog_pending)");
            await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT (SELECT count(*) FROM sync_changelog) + (SELECT count(*) FROM sync_changelog_pending)"),
                n => n > applied + 100 || writing.IsCompleted, "progress before the kill");
            bridge.Kill();
            bridge = scenario.Start(settings);
            await scenario.WaitForSlotHeldAsync(bridge);
        }

        return bridge;
    }
}
