using System.Net.Http.Json;
using System.Text;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>What a bridge of an earlier version left on the broker is cleaned up at start.</summary>
public sealed class UpgradeTests
{
    [Fact]
    public async Task bindings_of_the_bucket_queue_to_the_change_set_exchange_left_by_an_earlier_version_are_removed_at_start()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var bucketExchange = $"synchro.{env.Source}.bucket-assignment";
        using var management = TestEnvironment.Management();
        (await management.PutAsync($"api/exchanges/{env.Name}/{BridgeWireNames.LegacyChangeSetExchange}", Json("""{"type":"topic","durable":true}"""))).EnsureSuccessStatusCode();
        (await management.PutAsync($"api/exchanges/{env.Name}/{bucketExchange}", Json("""{"type":"fanout","durable":true}"""))).EnsureSuccessStatusCode();
        foreach (var key in new[] { $"{env.Source}.public.todos", "#" })
            (await management.PostAsync($"api/bindings/{env.Name}/e/{BridgeWireNames.LegacyChangeSetExchange}/e/{bucketExchange}", Json($$"""{"routing_key":"{{key}}"}"""))).EnsureSuccessStatusCode();

        await env.StartBridgeAsync(("todos", "user_id"));
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 1, "the insert applied");

        var bindings = await management.GetFromJsonAsync<List<System.Text.Json.JsonElement>>($"api/exchanges/{env.Name}/{BridgeWireNames.LegacyChangeSetExchange}/bindings/source");
        Assert.DoesNotContain(bindings!, b => b.GetProperty("destination").GetString() == bucketExchange);
        Assert.Equal(["user:7|todos|1|1"], await env.ChangelogAsync());
        // Nothing was parked for a person to purge.
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await management.GetAsync($"api/queues/{env.Name}/{bucketExchange}_skipped")).StatusCode);
    }

    [Fact]
    public async Task a_bucket_queue_an_earlier_version_declared_classic_stops_start_with_what_to_do_and_is_a_quorum_queue_once_recreated()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var queue = $"synchro.{env.Source}.bucket-assignment";
        using var management = TestEnvironment.Management();
        (await management.PutAsync($"api/queues/{env.Name}/{queue}", Json("""{"durable":true,"arguments":{"x-single-active-consumer":true}}"""))).EnsureSuccessStatusCode();
        var settings = env.BridgeSettings(("todos", "user_id"));

        // The default is a quorum queue: the classic one cannot become one, and start-up says so.
        using (var refused = BridgeProcess.Start(settings, null))
        {
            var exit = await refused.WaitForExitAsync(TimeSpan.FromMinutes(1));
            Assert.True(refused.RecentOutput.Contains("RabbitMQ has the bucket queue", StringComparison.Ordinal), refused.RecentOutput);
            Assert.NotEqual(0, exit);
            Assert.Contains($"RabbitMQ has the bucket queue '{queue}' as a classic queue (declared by an earlier version, or by hand), and Synchro:RabbitMq:QueueType is Quorum: a queue's type cannot change. Either set Synchro:RabbitMq:QueueType=Classic, or stop every bridge of this source, delete the queue (rabbitmqctl delete_queue {queue}) and start again", refused.RecentOutput, StringComparison.Ordinal);
        }

        // Classic, as it was: the bridge runs on it.
        var classic = new Dictionary<string, string?>(settings) { ["Synchro:RabbitMq:QueueType"] = "Classic" };
        var onClassic = await env.StartBridgeAsync(classic);
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 1, "the insert applied on the classic queue");
        await onClassic.StopAsync();

        // Deleted as start-up says: the default declares it as a quorum queue, and nothing was lost.
        (await management.DeleteAsync($"api/queues/{env.Name}/{queue}")).EnsureSuccessStatusCode();
        await env.StartBridgeAsync(settings);
        await env.ExecuteAsync("INSERT INTO todos VALUES (2, 7)");
        await Eventually.Until(env.ChangelogAsync, rows => rows.Count == 2, "the insert applied on the quorum queue");
        var declared = await management.GetFromJsonAsync<System.Text.Json.JsonElement>($"api/queues/{env.Name}/{queue}");
        Assert.Equal("quorum", declared.GetProperty("type").GetString());
        Assert.Equal(["user:7|todos|1|1", "user:7|todos|2|1"], await env.ChangelogAsync());
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
