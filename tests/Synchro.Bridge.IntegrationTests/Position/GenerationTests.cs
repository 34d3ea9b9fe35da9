using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.IntegrationTests.Subscribers;
using Synchro.Contracts;

namespace Synchro.Bridge.IntegrationTests.Position;

/// <summary>
/// LSNs that go backwards start a new generation of the source's positions (invariant 10): after a
/// restore into a new cluster the sidecar tables carry positions of the old cluster, far beyond
/// the new one's LSNs, and every new change would be taken for a replay. Instead the positions are
/// cut back, the changes are applied, and subscribers are told by the generation headers.
/// </summary>
public sealed class GenerationTests
{
    [Fact]
    [Trait("Versions", "all")]
    public async Task sidecar_tables_restored_into_another_cluster_start_a_new_generation_and_no_change_is_taken_for_a_replay()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var settings = env.BridgeSettings(("todos", "user_id"));
        var first = await env.StartBridgeAsync(settings);
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7), (2, 8)");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 2, "the two inserts");
        Assert.Equal(0, await env.ScalarAsync<long>($"SELECT generation FROM sync_runs WHERE source = '{env.Source}'"));
        await first.StopAsync();

        // What a restore into a new cluster leaves: the old cluster's system identifier and positions
        // (here far ahead of this server's WAL), and no slot (slots are not restored).
        await env.ExecuteAsync(
            $"""
            UPDATE sync_runs SET system_identifier = '1', applied_commit_lsn = 'FF/0';
            UPDATE sync_record_positions SET commit_lsn = 'FF/0';
            UPDATE sync_wal_position SET confirmed_lsn = ('FF/0'::pg_lsn - '0/0'::pg_lsn)::bigint;
            SELECT pg_drop_replication_slot('{env.Name}');
            """);
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.generation", "public.todos");
        settings["Synchro:Replication:AcceptGap"] = "true";
        await env.StartBridgeAsync(settings);

        await env.ExecuteAsync("UPDATE todos SET user_id = 9 WHERE id = 1");
        await env.ExecuteAsync("DELETE FROM todos WHERE id = 2");
        await env.ExecuteAsync("INSERT INTO todos VALUES (3, 7)");

        string[] expected =
        [
            "user:7|todos|1|1", "user:8|todos|2|1",
            "user:9|todos|1|1", "user:7|todos|1|3",
            "user:8|todos|2|3",
            "user:7|todos|3|1",
        ];
        Assert.Equal(expected, await Eventually.Until(env.ChangelogAsync, rows => rows.Count >= expected.Length, "the changes after the restore"));
        Assert.Equal(["todos|1|user:9", "todos|3|user:7"], await env.EdgesAsync());
        Assert.Equal(["1|0/0"], await env.RowsAsync($"SELECT generation, generation_start_lsn::text FROM sync_runs WHERE source = '{env.Source}'"));

        var deliveries = await Eventually.Until(() => Task.FromResult(subscriber.Raw.ToList()), d => d.Sum(x => WireMessages.ChangeCount([x])) >= 3, "the three change sets");
        Assert.All(deliveries, d => Assert.Equal((1L, "0/0"), (Convert.ToInt64(d.Headers[WireNames.GenerationHeader], System.Globalization.CultureInfo.InvariantCulture), HeaderText(d.Headers[WireNames.GenerationStartHeader]))));
    }

    private static string? HeaderText(object? value) => value switch
    {
        byte[] bytes => System.Text.Encoding.UTF8.GetString(bytes),
        _ => value?.ToString(),
    };
}
