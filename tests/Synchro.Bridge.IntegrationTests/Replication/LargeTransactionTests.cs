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

    [Fact]
    public async Task an_outbox_transaction_emitting_more_message_bytes_than_the_heap_holds_is_published_completely_in_bounded_memory()
    {
        const int Messages = 9_000;
        const int ContentBytes = 8_000; // 72 MB in all: held until the commit, they would not fit a heap capped at 64 MB
        const long MessageHeapLimit = 64L * 1024 * 1024;
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE items (id bigint PRIMARY KEY, user_id bigint NOT NULL, payload text NOT NULL)");
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.outbox", [], ["outbox.#"]);
        using var bridge = BridgeProcess.Start(env.BridgeSettings(("items", "user_id")), MessageHeapLimit);
        await Eventually.Until(
            () => env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{env.Name}' AND active)"),
            "the bridge process to hold the slot");

        await env.ExecuteAsync(
            $"""
            BEGIN;
            INSERT INTO items VALUES (1, 7, 'the order');
            SELECT count(pg_logical_emit_message(true, 'outbox.order', lpad(g::text, {ContentBytes}, '0'))) FROM generate_series(1, {Messages}) g;
            COMMIT;
            """);
        var written = await env.CurrentWalLsnAsync();
        await Eventually.Until(
            async () => bridge.HasExited ? throw new InvalidOperationException("The bridge exited:\n" + bridge.RecentOutput) : await env.ConfirmedFlushLsnAsync(),
            lsn => lsn >= written, "the slot to confirm the whole transaction", TimeSpan.FromMinutes(5));
        var peak = bridge.PeakResidentBytes();

        // Every message, once each at least, all of the one transaction; the row placed.
        await Eventually.Until(() => Task.FromResult(subscriber.Messages.Select(m => m.MessageLsn).Distinct().Count()), n => n == Messages, "every message at the subscriber", TimeSpan.FromMinutes(2));
        Assert.Single(subscriber.Messages.Select(m => m.CommitLsn).Distinct());
        Assert.Equal(Enumerable.Range(1, Messages).ToHashSet(), subscriber.Messages.Select(m => int.Parse(System.Text.Encoding.UTF8.GetString(m.Content), System.Globalization.CultureInfo.InvariantCulture)).ToHashSet());
        Assert.Equal(["user:7|items|1|1"], await env.ChangelogAsync());
        output.WriteLine($"{Messages:N0} transactional messages of {ContentBytes} bytes in one transaction, GC heap capped at {MessageHeapLimit / 1024 / 1024} MB: bridge peak RSS {peak / 1024.0 / 1024.0:0} MB");
        Assert.True(peak < ResidentBound, $"The bridge's peak RSS was {peak / 1024 / 1024} MB, over the {ResidentBound / 1024 / 1024} MB bound.");
    }
}
