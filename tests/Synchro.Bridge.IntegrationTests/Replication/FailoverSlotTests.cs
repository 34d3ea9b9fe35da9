using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Replication;

/// <summary>
/// From PostgreSQL 17 the bridge creates its slot as a failover slot (Replication:Failover, on by
/// default), which standbys running sync_replication_slots copy; before 17 it is an ordinary slot.
/// Both ways of creating it are covered: from SQL (stream only) and on the replication connection
/// with an exported snapshot (the initial snapshot).
/// </summary>
public sealed class FailoverSlotTests
{
    [Theory]
    [Trait("Versions", "all")]
    [InlineData("StreamOnly", true)]
    [InlineData("Initial", true)]
    [InlineData("Initial", false)]
    public async Task from_postgresql_17_the_slot_is_a_failover_slot_unless_turned_off(string snapshotMode, bool failover)
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint); INSERT INTO todos VALUES (1, 7)");
        var settings = env.BridgeSettings(("todos", "user_id"));
        settings["Synchro:Snapshot:Mode"] = snapshotMode;
        settings["Synchro:Replication:Failover"] = failover ? "true" : "false";
        await env.StartBridgeAsync(settings);

        await env.ExecuteAsync("INSERT INTO todos VALUES (2, 8)");
        var expected = snapshotMode == "Initial" ? new[] { "user:7|todos|1|1", "user:8|todos|2|1" } : ["user:8|todos|2|1"];
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Length, "the rows"));

        var major = await env.ScalarAsync<int>("SELECT current_setting('server_version_num')::int / 10000");
        if (major >= 17)
            Assert.Equal(failover, await env.ScalarAsync<bool>($"SELECT failover FROM pg_replication_slots WHERE slot_name = '{env.Name}'"));
        else
            Assert.Equal(["pgoutput"], await env.RowsAsync($"SELECT plugin FROM pg_replication_slots WHERE slot_name = '{env.Name}'"));
    }
}
