using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Position;

public sealed class CrashRecoveryTests
{
    [Fact]
    public async Task bridge_killed_mid_transaction_loses_nothing_and_applies_nothing_twice()
    {
        const int rows = 100_000;
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE items (id bigint PRIMARY KEY, user_id bigint NOT NULL)");
        var settings = env.BridgeSettings(("items", "user_id"));
        settings["Synchro:Batching:MaxBatchChanges"] = "1000";
        var slotActive = $"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND active)";

        using (var first = BridgeProcess.Start(settings))
        {
            await Eventually.Until(() => env.ScalarAsync<bool>(slotActive), "the first bridge to hold the slot");
            await env.ExecuteAsync($"INSERT INTO items SELECT g, g % 10 FROM generate_series(1, {rows}) g");
            await env.ExecuteAsync("INSERT INTO items VALUES (0, 1)");
            // Killed once part of the big transaction is applied, and before its end is acknowledged.
            await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n >= 5_000, "part of the transaction applied");
            first.Kill();
        }

        var appliedAtCrash = await env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog");
        Assert.InRange(appliedAtCrash, 5_000, rows);
        var written = await env.CurrentWalLsnAsync();
        Assert.True(await env.ConfirmedFlushLsnAsync() < written, "the slot must not have confirmed the unapplied rest");

        using var second = BridgeProcess.Start(settings);
        await Eventually.Until(
            async () => second.HasExited ? throw new InvalidOperationException("The bridge exited:\n" + second.RecentOutput) : await env.ConfirmedFlushLsnAsync(),
            lsn => lsn >= written, "the restarted bridge to confirm everything", TimeSpan.FromMinutes(5));

        Assert.Equal(rows + 1L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"));
        Assert.Equal(rows + 1L, await env.ScalarAsync<long>("SELECT count(DISTINCT (commit_lsn, change_idx)) FROM sync_changelog"));
        Assert.Equal(rows + 1L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_bucket_edges"));
    }
}
