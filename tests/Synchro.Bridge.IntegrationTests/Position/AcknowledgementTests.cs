using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Position;

public sealed class AcknowledgementTests
{
    [Fact]
    public async Task the_slot_advances_only_after_the_consumer_has_applied_the_change()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        await env.StartBridgeAsync(("todos", "user_id"));
        var before = await env.ConfirmedFlushLsnAsync();

        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        var committed = await env.CurrentWalLsnAsync();

        var flushed = await Eventually.Until(env.ConfirmedFlushLsnAsync, lsn => lsn >= committed, "confirmed_flush_lsn to pass the insert");
        Assert.True(flushed > before);
        // Stored before it is reported: the position table is never behind the slot.
        var stored = Synchro.Bridge.Replication.Lsn.Parse(await env.ScalarAsync<string>($"SELECT ('0/0'::pg_lsn + confirmed_lsn)::text FROM sync_wal_position WHERE slot_name = '{env.Name}'"));
        Assert.True(stored >= flushed, $"sync_wal_position {stored:X} is behind confirmed_flush_lsn {flushed:X}");
        Assert.Equal(["user:7|todos|1|1"], await env.ChangelogAsync());
    }

    [Fact]
    public async Task writes_to_unpublished_tables_do_not_hold_the_slot_back()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        await env.ExecuteAsync("CREATE TABLE audit (id bigserial PRIMARY KEY, note text)");
        await env.StartBridgeAsync(("todos", "user_id"));

        await env.ExecuteAsync("INSERT INTO audit (note) SELECT 'noise' FROM generate_series(1, 1000)");
        var written = await env.CurrentWalLsnAsync();

        await Eventually.Until(env.ConfirmedFlushLsnAsync, lsn => lsn >= written, "the idle slot to advance past unpublished writes");
        Assert.Empty(await env.ChangelogAsync());
    }
}
