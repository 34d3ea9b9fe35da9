using System.Collections.Concurrent;
using System.Diagnostics;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>The spans a collector receives: one trace follows a change set from the slot through RabbitMQ to the sidecar write.</summary>
public sealed class TracingTests
{
    [Fact]
    public async Task a_change_set_is_one_trace_from_its_publication_through_the_bucket_consumer_to_the_sidecar_statements()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is "Synchro.Bridge" or "MassTransit" or "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);

        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        await env.StartBridgeAsync(("todos", "user_id"));
        await env.ExecuteAsync("INSERT INTO todos VALUES (1, 7)");
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n == 1, "the change applied");

        // The batch's own span, and in its trace MassTransit's consume of the bucket part and the
        // changelog insert Npgsql ran for it.
        var trace = await Eventually.Until(
            () => Task.FromResult(spans.Where(s => s.Source.Name == "Synchro.Bridge" && s.OperationName == "publish batch" && Convert.ToInt64(s.GetTagItem("synchro.changes") ?? 0, System.Globalization.CultureInfo.InvariantCulture) == 1)
                .Select(s => spans.Where(t => t.TraceId == s.TraceId).ToList())
                .FirstOrDefault(t => t.Any(c => c.Source.Name == "MassTransit" && c.Kind == ActivityKind.Consumer)
                    && t.Any(c => c.Source.Name == "Npgsql" && Statement(c).Contains("INSERT INTO", StringComparison.Ordinal) && Statement(c).Contains("sync_changelog ", StringComparison.Ordinal)))),
            t => t is not null,
            "one trace with the batch, its consume and its changelog insert");

        Assert.Single(trace!, s => s.Source.Name == "Synchro.Bridge" && s.OperationName == "publish batch");
    }

    /// <summary>The SQL an Npgsql span carries (the attribute's name changed with the semantic conventions).</summary>
    private static string Statement(Activity span) => (span.GetTagItem("db.query.text") ?? span.GetTagItem("db.statement"))?.ToString() ?? "";
}
