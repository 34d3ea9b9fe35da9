using Synchro.Bridge.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Replication;

public sealed class LargeTransactionTests(ITestOutputHelper output)
{
    private const int Rows = 1_000_000;

    /// <summary>The payload alone is 192 MB as .NET strings: a bridge holding the transaction could not run under this cap.</summary>
    private const long HeapLimit = 100L * 1024 * 1024;

    /// <summary>The capped heap plus the runtime, native buffers and code.</summary>
    private const long ResidentBound = 300L * 1024 * 1024;

    [Fact]
    public async Task a_million_row_transaction_is_replicated_completely_in_bounded_memory()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE items (id bigint PRIMARY KEY, user_id bigint NOT NULL, payload text NOT NULL)");
        using var bridge = BridgeProcess.Start(env.BridgeSettings(("items", "user_id")), HeapLimit);
        await Eventually.Until(
            () => env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND active)"),
            "the bridge process to hold the slot");

        var started = DateTime.UtcNow;
        await env.ExecuteAsync($"INSERT INTO items SELECT g, g % 100, repeat(md5(g::text), 3) FROM generate_series(1, {Rows}) g");
        var written = await env.CurrentWalLsnAsync();
        await Eventually.Until(
            async () => bridge.HasExited ? throw new InvalidOperationException("The bridge exited:\n" + bridge.RecentOutput) : await env.ConfirmedFlushLsnAsync(),
            lsn => lsn >= written, "the slot to confirm the whole transaction", TimeSpan.FromMinutes(10));
        var elapsed = DateTime.UtcNow - started;
        var peak = bridge.PeakResidentBytes();

        Assert.Equal((long)Rows, await env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"));
        Assert.Equal((long)Rows, await env.ScalarAsync<long>("SELECT count(DISTINCT record_id) FROM sync_bucket_edges"));
        Assert.Equal(100L, await env.ScalarAsync<long>("SELECT count(DISTINCT bucket_id) FROM sync_changelog"));
        output.WriteLine($"{Rows:N0} rows in one transaction: applied and confirmed in {elapsed.TotalSeconds:0.0} s ({Rows / elapsed.TotalSeconds:N0} rows/s), GC heap capped at {HeapLimit / 1024 / 1024} MB, bridge peak RSS {peak / 1024.0 / 1024.0:0} MB");
        Assert.True(peak < ResidentBound, $"The bridge's peak RSS was {peak / 1024 / 1024} MB, over the {ResidentBound / 1024 / 1024} MB bound.");
    }
}
