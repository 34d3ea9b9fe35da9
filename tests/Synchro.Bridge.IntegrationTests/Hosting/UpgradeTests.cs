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

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
