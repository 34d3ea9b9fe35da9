using System.Net;
using System.Net.Http.Json;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>A queue on the bus that refuses messages (full, with overflow reject-publish) while the bridge runs.</summary>
public sealed class FullQueueTests
{
    [Fact]
    public async Task a_full_subscriber_queue_holds_the_stream_unacknowledged_names_the_refusal_and_resumes_once_drained()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var settings = env.BridgeSettings(("todos", "user_id"));
        settings["Synchro:Health:AckStallThreshold"] = "00:00:01";
        var host = await env.StartBridgeAsync(settings);
        var baseUri = OperatorEndpointTests.BaseUri(host);
        await Eventually.Until(() => OperatorEndpointTests.ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.OK, "the bridge to be ready");

        // A first change: the bridge declares the change-set exchange when it first publishes to it.
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n == 1, "the first change applied");

        // A subscriber's queue that is full: it takes nothing more, and the broker nacks what is routed to it.
        using var management = TestEnvironment.Management();
        (await management.PutAsJsonAsync($"api/queues/{env.Name}/full-subscriber", new { durable = true, arguments = new Dictionary<string, object> { ["x-max-length"] = 0, ["x-overflow"] = "reject-publish" } })).EnsureSuccessStatusCode();
        (await management.PostAsJsonAsync($"api/bindings/{env.Name}/e/{Contracts.WireNames.ChangeSetExchange}/q/full-subscriber", new { routing_key = "#" })).EnsureSuccessStatusCode();

        await env.ExecuteAsync("INSERT INTO todos VALUES (2, 7)");
        var written = await env.CurrentWalLsnAsync();

        var red = await Eventually.Until(
            () => OperatorEndpointTests.ProbeAsync(baseUri, OperatorEndpoints.ReadyPath),
            p => p.Code == HttpStatusCode.ServiceUnavailable && p.Checks["replication"].Description?.Contains("for RabbitMQ to confirm", StringComparison.Ordinal) == true,
            "ready to turn red naming the unconfirmed publish");
        var description = red.Checks["replication"].Description!;
        Assert.Matches(
            "^batch [0-9]+ has waited [0-9]+ s for RabbitMQ to confirm its messages: a queue they are routed to refuses them \\(a length limit with overflow reject-publish: rabbitmqctl list_queues name messages arguments, list_policies\\) or the broker blocks publishers \\(a resource alarm\\)\\. Drain or fix that queue; the bridge goes on by itself, and nothing after the batch is acknowledged meanwhile\\.$",
            description);
        Assert.True(await env.ConfirmedFlushLsnAsync() < written, "the slot was acknowledged past a change set a subscriber never got");

        // The subscriber's operator removes the limit (here: the queue): the bridge goes on by itself.
        (await management.DeleteAsync($"api/queues/{env.Name}/full-subscriber")).EnsureSuccessStatusCode();
        await Eventually.Until(() => env.ConfirmedFlushLsnAsync(), lsn => lsn >= written, "the slot acknowledged past the change", TimeSpan.FromSeconds(60));
        Assert.Equal(["user:7|todos|1|1", "user:7|todos|2|1"], await env.ChangelogAsync());
        await Eventually.Until(() => OperatorEndpointTests.ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.OK, "ready again");
    }

    [Fact]
    public async Task a_non_transactional_message_whose_publish_waits_is_not_acknowledged_and_arrives_after_a_crash()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        var settings = scenario.Settings();
        settings["Synchro:Health:AckStallThreshold"] = "00:00:01";
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        // A first message declares the message exchange; then the only queue bound to it is full.
        using var management = TestEnvironment.Management();
        await env.ExecuteAsync("SELECT pg_logical_emit_message(false, 'audit.first', 'declares the exchange')");
        await Eventually.Until(async () => (await management.GetAsync($"api/exchanges/{env.Name}/{Contracts.WireNames.LogicalMessageExchange}")).StatusCode, code => code == HttpStatusCode.OK, "the message exchange");
        (await management.PutAsJsonAsync($"api/queues/{env.Name}/full-subscriber", new { durable = true, arguments = new Dictionary<string, object> { ["x-max-length"] = 0, ["x-overflow"] = "reject-publish" } })).EnsureSuccessStatusCode();
        (await management.PostAsJsonAsync($"api/bindings/{env.Name}/e/{Contracts.WireNames.LogicalMessageExchange}/q/full-subscriber", new { routing_key = "#" })).EnsureSuccessStatusCode();

        // Outside any transaction: nothing but the message is in flight while its publish waits.
        await env.ExecuteAsync("SELECT pg_logical_emit_message(false, 'audit.waiting', 'must not be lost')");
        var written = await env.CurrentWalLsnAsync();
        var (_, detail) = await Eventually.Until(() => FaultScenario.HealthAsync(settings), h => !h.Healthy, "health to name the waiting publish");
        Assert.Contains("for RabbitMQ to confirm its messages", detail, StringComparison.Ordinal);
        // Several idle intervals have passed by now (health turns red after 1 s, written every 5 s).
        Assert.True(await env.ConfirmedFlushLsnAsync() < written, "the slot was acknowledged past a message still waiting for the broker");

        // A crash while it waits, the queue fixed, a subscriber, a new run: PostgreSQL sends the message again.
        bridge.Kill();
        (await management.DeleteAsync($"api/queues/{env.Name}/full-subscriber")).EnsureSuccessStatusCode();
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.waiting", [], ["audit.#"]);
        var recovered = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(recovered);
        await Eventually.Until(() => Task.FromResult(subscriber.Messages.Select(m => m.Prefix).ToList()), prefixes => prefixes.Contains("audit.waiting"), "the message after the crash");
        await scenario.WaitForCatchUpAsync(recovered, TimeSpan.FromMinutes(1));
    }

    [Fact]
    public async Task a_row_larger_than_the_brokers_max_message_size_turns_health_red_with_what_to_set_and_goes_on_once_it_is_raised()
    {
        const string Default = "134217728";
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        // Node-wide, read by each new channel: the bridge's channels open after it.
        await FaultScenario.ServersAsync("rabbitmqctl", "eval", "application:set_env(rabbit, max_message_size, 1048576).");
        try
        {
            var settings = scenario.Settings();
            settings["Synchro:Health:AckStallThreshold"] = "00:00:01";
            var bridge = scenario.Start(settings);
            await scenario.WaitForSlotHeldAsync(bridge);

            await env.ExecuteAsync("INSERT INTO items VALUES (1, 7, repeat('x', 2000000))");
            var written = await env.CurrentWalLsnAsync();
            var (_, detail) = await Eventually.Until(() => FaultScenario.HealthAsync(settings), h => !h.Healthy && h.Detail.Contains("max_message_size", StringComparison.Ordinal), "health to name the broker's size limit");
            Assert.Matches(@"^batch [0-9]+ has waited [0-9]+ s: RabbitMQ refuses to take its messages \(.*message size [0-9]+ is larger than configured max size 1048576.*\)\. A change set is larger than RabbitMQ's max_message_size \(one row cannot be split\): raise max_message_size in rabbitmq\.conf on every node", detail);
            Assert.True(await env.ConfirmedFlushLsnAsync() < written, "the slot was acknowledged past a change the broker refused");

            // The operator raises the limit: the bridge goes on by itself, and nothing is lost.
            await FaultScenario.ServersAsync("rabbitmqctl", "eval", $"application:set_env(rabbit, max_message_size, {Default}).");
            await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(2));
            Assert.Equal(["items|1|owner:7"], await env.EdgesAsync());
            await scenario.AssertExactAsync();
        }
        finally
        {
            await FaultScenario.ServersAsync("rabbitmqctl", "eval", $"application:set_env(rabbit, max_message_size, {Default}).");
        }
    }
}
