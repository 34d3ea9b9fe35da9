using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.IntegrationTests.Hosting;

/// <summary>/health/live, /health/ready and /metrics of a running bridge, against real PostgreSQL and RabbitMQ.</summary>
public sealed class OperatorEndpointTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task ready_turns_unhealthy_while_rabbitmq_is_stopped_and_healthy_again_after_while_live_stays_healthy()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var host = await env.StartBridgeAsync(("todos", "user_id"));
        var baseUri = BaseUri(host);

        var ready = await Eventually.Until(() => ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.OK, "the bridge to be ready");
        Assert.Equal("Healthy", ready.Status);
        Assert.Equal(["bridge"], (await ProbeAsync(baseUri, OperatorEndpoints.LivePath)).Checks.Keys);

        await FaultScenario.ServersAsync("stop-rabbitmq");
        Probe outage;
        Probe liveDuringOutage;
        try
        {
            outage = await Eventually.Until(() => ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.ServiceUnavailable, "ready to turn unhealthy without the broker");
            liveDuringOutage = await ProbeAsync(baseUri, OperatorEndpoints.LivePath);
        }
        finally
        {
            await FaultScenario.ServersAsync("start-rabbitmq");
        }

        // The failing check is the bus's (MassTransit's own health check); the bridge's own checks may follow it.
        Assert.NotEqual("Healthy", outage.Status);
        Assert.NotEqual("Healthy", outage.Checks["masstransit-bus"].Status);
        Assert.Equal((HttpStatusCode.OK, "Healthy"), (liveDuringOutage.Code, liveDuringOutage.Status));

        var back = await Eventually.Until(() => ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.OK, "ready again once RabbitMQ is back", TimeSpan.FromSeconds(90));
        Assert.Equal("Healthy", back.Status);
        Assert.All(back.Checks.Values, c => Assert.Equal("Healthy", c.Status));
    }

    [Fact]
    public async Task metrics_expose_read_published_applied_changelog_and_lag_series_with_the_exact_counts_of_a_workload()
    {
        const int Rows = 1_500;
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var host = await env.StartBridgeAsync(("todos", "user_id"));
        var baseUri = BaseUri(host);
        await Eventually.Until(() => ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.OK, "the bridge to be ready");

        // 15 transactions of 100 rows, each row in one owner's bucket.
        for (var t = 0; t < Rows / 100; t++)
            await env.ExecuteAsync($"INSERT INTO todos SELECT g, g % 7 FROM generate_series({t * 100 + 1}, {(t + 1) * 100}) g");
        var during = await ScrapeAsync(baseUri);

        // The counters move in different tasks (the publish confirmation, the apply, the move into
        // sync_changelog) and the acknowledged LSN appears with the first acknowledgement: wait for all.
        var after = await Eventually.Until(
            () => ScrapeAsync(baseUri),
            m => m.Value("synchro_changes_published_total") == Rows && m.Value("synchro_changes_applied_total") == Rows && m.Value("synchro_changelog_rows_total") == Rows && m.Has("synchro_acknowledged_lsn"),
            $"{Rows} changes published, applied and in the changelog in the metrics, and an acknowledgement");
        // Each row is in exactly one bucket: one changelog row each.
        Assert.Equal((Rows, Rows), (after.Value("synchro_changes_read_total"), await env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog")));
        Assert.Equal(0, after.Value("synchro_rule_failures_total"));

        // Every series the README's metrics table names is exposed (the series of a running slot reader while the workload ran).
        foreach (var series in new[] { "synchro_replication_lag_bytes", "synchro_acknowledged_lsn", "synchro_in_flight", "synchro_acknowledgement_stalled_seconds" })
            Assert.True(during.Has(series) || after.Has(series), $"{series} is not exposed:\n{after.Text}");
        // One apply per part and one publish per batch; the batcher may merge the 15 transactions into fewer batches.
        Assert.InRange(after.Value("synchro_apply_duration_seconds_count"), 1, Rows / 100);
        Assert.InRange(after.Value("synchro_publish_duration_seconds_count"), 1, Rows / 100);

        // The README's table of series is what /metrics exposes, no more and no less.
        var readme = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "README.md"));
        var watching = readme[readme.IndexOf("### Watching it", StringComparison.Ordinal)..];
        watching = watching[..watching.IndexOf("\n### ", 1, StringComparison.Ordinal)];
        var documented = System.Text.RegularExpressions.Regex.Matches(watching, @"^\| `(synchro_[a-z_]+)", System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        var exposed = System.Text.RegularExpressions.Regex.Matches(after.Text + during.Text, @"^(synchro_[a-z_]+?)(_bucket|_sum|_count)?[{ ]", System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.Equal(documented.Order(StringComparer.Ordinal), exposed.Order(StringComparer.Ordinal));

        // The dashboard shipped with docker-compose.yml queries only series the bridge exposes.
        var dashboard = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "dashboards", "synchro-bridge.json"));
        var queried = System.Text.RegularExpressions.Regex.Matches(dashboard, @"\b(synchro|dotnet)_[a-z_]+").Select(m => m.Value).Distinct().ToList();
        Assert.NotEmpty(queried);
        Assert.All(queried, series => Assert.True(after.Has(series) || during.Has(series), $"the dashboard queries {series}, which /metrics does not expose"));

        // The acknowledged LSN is one the slot reaches: PostgreSQL takes it from the status update the bridge sent.
        var acknowledged = (ulong)after.Value("synchro_acknowledged_lsn");
        Assert.True(acknowledged > 0);
        await Eventually.Until(env.ConfirmedFlushLsnAsync, confirmed => confirmed >= acknowledged, $"the slot to confirm the acknowledged LSN {acknowledged}");
    }

    internal static Uri BaseUri(IHost host)
    {
        var address = OperatorEndpoints.Addresses(host.Services).Single();
        return new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
    }

    internal sealed record Probe(HttpStatusCode Code, string Status, Dictionary<string, (string Status, string? Description)> Checks)
    {
        /// <summary>With each check, so a timed-out wait says what the endpoint last answered.</summary>
        public override string ToString() => $"{(int)Code} {Status}: " + string.Join("; ", Checks.Select(c => $"{c.Key} {c.Value.Status} ({c.Value.Description})"));
    }

    internal static async Task<Probe> ProbeAsync(Uri baseUri, string path)
    {
        using var response = await Http.GetAsync(new Uri(baseUri, path));
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var checks = body.RootElement.GetProperty("checks").EnumerateArray().ToDictionary(
            c => c.GetProperty("name").GetString()!,
            c => (c.GetProperty("status").GetString()!, c.GetProperty("description").GetString()));
        return new Probe(response.StatusCode, body.RootElement.GetProperty("status").GetString()!, checks);
    }

    internal static async Task<Scrape> ScrapeAsync(Uri baseUri)
    {
        using var response = await Http.GetAsync(new Uri(baseUri, OperatorEndpoints.MetricsPath));
        response.EnsureSuccessStatusCode();
        return new Scrape(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Prometheus text: the sum over all label sets of a series.</summary>
    internal sealed record Scrape(string Text)
    {
        /// <summary>Each line is <c>name{labels} value [timestamp]</c>, or <c>name value [timestamp]</c>.</summary>
        private IEnumerable<double> Samples(string series) =>
            from line in Text.Split('\n')
            where line.StartsWith(series + "{", StringComparison.Ordinal) || line.StartsWith(series + " ", StringComparison.Ordinal)
            let rest = line[(line.StartsWith(series + "{", StringComparison.Ordinal) ? line.IndexOf("} ", StringComparison.Ordinal) + 2 : series.Length + 1)..]
            select double.Parse(rest.Split(' ')[0], CultureInfo.InvariantCulture);

        public bool Has(string series) => Samples(series).Any();

        public double Value(string series) => Samples(series).DefaultIfEmpty(0).Sum();
    }
}

/// <summary><c>synchro-bridge status --json</c> as an operator's script runs it: its own process, against a running bridge and a stopped one.</summary>
public sealed class StatusCommandTests
{
    [Fact]
    public async Task status_json_reports_the_slot_queue_and_bridge_of_a_running_bridge_and_then_of_the_stopped_one()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("CREATE TABLE todos (id bigint PRIMARY KEY, user_id bigint)");
        var host = await env.StartBridgeAsync(("todos", "user_id"));
        var baseUri = OperatorEndpointTests.BaseUri(host);
        await Eventually.Until(() => OperatorEndpointTests.ProbeAsync(baseUri, OperatorEndpoints.ReadyPath), p => p.Code == HttpStatusCode.OK, "the bridge to be ready");
        await env.ExecuteAsync("INSERT INTO todos SELECT g, g % 3 FROM generate_series(1, 10) g");
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog"), n => n == 10, "ten changelog rows");

        var settings = env.BridgeSettings(("todos", "user_id"));
        settings["Synchro:Http:Urls"] = baseUri.ToString();
        settings["Synchro:RabbitMq:ManagementUri"] = TestServers.RabbitManagement.ToString();
        var queue = $"synchro.{env.Source}.bucket-assignment";

        // RabbitMQ's management API reports a queue's counts with its statistics rounds (every 5 s): the first
        // round can come from the moment the queue was declared, before the bridge's consumer attached.
        var (runningExit, running) = await Eventually.Until(
            () => StatusAsync(settings), s => QueueReported(s.Status) && s.Status.GetProperty("queues")[0].GetProperty("consumers").GetInt64() == 1, "status to report the queue's consumer");
        Assert.Equal(0, runningExit);
        var slot = running.GetProperty("slot");
        Assert.Equal((env.Name, true, true), (slot.GetProperty("name").GetString(), slot.GetProperty("exists").GetBoolean(), slot.GetProperty("active").GetBoolean()));
        Assert.Equal(JsonValueKind.Null, running.GetProperty("apply").GetProperty("held").ValueKind);
        Assert.Equal(0, running.GetProperty("apply").GetProperty("open_rule_failures").GetInt64());
        var runningQueue = running.GetProperty("queues").EnumerateArray().Single();
        Assert.Equal((queue, true, 1L), (runningQueue.GetProperty("name").GetString(), runningQueue.GetProperty("exists").GetBoolean(), runningQueue.GetProperty("consumers").GetInt64()));
        Assert.Equal("Healthy", running.GetProperty("bridge").GetProperty("ready").GetString());
        Assert.Contains("masstransit-bus", running.GetProperty("bridge").GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()));
        // One server, no standby: before 17 the slot cannot fail over at all; from 17 nobody can tell where it is synchronized.
        var major = await env.ScalarAsync<int>("SELECT current_setting('server_version_num')::int / 10000");
        Assert.StartsWith(
            major < 17 ? $"not protected: PostgreSQL {major} does not copy logical slots to standbys" : "cannot tell: the connection string names no standby",
            running.GetProperty("failover").GetProperty("verdict").GetString(), StringComparison.Ordinal);

        await host.StopAsync();
        var (stoppedExit, stopped) = await Eventually.Until(
            () => StatusAsync(settings), s => QueueReported(s.Status) && s.Status.GetProperty("queues")[0].GetProperty("consumers").GetInt64() == 0, "status to report the queue without consumers");
        Assert.Equal(1, stoppedExit);
        var stoppedSlot = stopped.GetProperty("slot");
        Assert.Equal((true, false), (stoppedSlot.GetProperty("exists").GetBoolean(), stoppedSlot.GetProperty("active").GetBoolean()));
        // Everything written was acknowledged before the bridge stopped: the slot's lag is what came after (nothing of ours).
        Assert.Equal(await env.ConfirmedFlushLsnAsync(), Lsn.Parse(stoppedSlot.GetProperty("confirmed_lsn").GetString()!));
        var stoppedQueue = stopped.GetProperty("queues").EnumerateArray().Single();
        Assert.Equal((queue, 0L, 0L), (stoppedQueue.GetProperty("name").GetString(), stoppedQueue.GetProperty("ready").GetInt64(), stoppedQueue.GetProperty("consumers").GetInt64()));
        Assert.Equal("not running", stopped.GetProperty("bridge").GetProperty("ready").GetString());
        Assert.StartsWith($"no answer at {baseUri}", stopped.GetProperty("bridge").GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    private static bool QueueReported(JsonElement status) =>
        status.GetProperty("queues").EnumerateArray().All(q => q.GetProperty("consumers").ValueKind == JsonValueKind.Number && q.GetProperty("ready").ValueKind == JsonValueKind.Number);

    private static async Task<(int ExitCode, JsonElement Status)> StatusAsync(Dictionary<string, string?> settings)
    {
        using var status = BridgeProcess.Start(settings, null, "status", "--json");
        var exit = await status.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var line = status.RecentOutput.Split(Environment.NewLine).SingleOrDefault(l => l.StartsWith('{'))
            ?? throw new InvalidOperationException($"status printed no JSON line:\n{status.RecentOutput}");
        return (exit, JsonDocument.Parse(line).RootElement.Clone());
    }
}
