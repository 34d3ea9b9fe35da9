using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Synchro.Bridge.Position;
using Synchro.Bridge.Telemetry;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// What an operator's tools read over HTTP: ASP.NET Core health checks at <c>/health/live</c> (the
/// process works) and <c>/health/ready</c> (it streams the slot, reaches the broker, and nothing is
/// stalled), and OpenTelemetry's Prometheus exporter at <c>/metrics</c>. Metrics and traces also go
/// to an OTLP collector when one is configured.
/// </summary>
internal static class OperatorEndpoints
{
    public const string LivePath = "/health/live";
    public const string ReadyPath = "/health/ready";
    public const string MetricsPath = "/metrics";

    private const string Live = "live";
    private const string Ready = "ready";

    /// <summary>The meter and activity source MassTransit reports on (its consume, publish and send spans, and its counters).</summary>
    private const string MassTransitInstrumentation = "MassTransit";

    public static void AddOperatorEndpoints(this IServiceCollection services, SynchroOptions settings)
    {
        services.AddSingleton<BridgeMetrics>();
        // MassTransit adds its bus check (tagged ready) to these on its own.
        services.AddHealthChecks()
            .AddCheck<LivenessCheck>("bridge", tags: [Live])
            .AddCheck<ReadinessCheck>("replication", tags: [Ready]);

        // A malformed endpoint is reported by the options validator when the bridge starts.
        var otlp = Uri.TryCreate(settings.Telemetry.OtlpEndpoint, UriKind.Absolute, out var endpoint) ? endpoint : null;
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(settings.Telemetry.ServiceName))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(BridgeMetrics.MeterName, MassTransitInstrumentation).AddRuntimeInstrumentation().AddPrometheusExporter();
                if (otlp is not null)
                    metrics.AddOtlpExporter(o => o.Endpoint = otlp);
            });
        // Spans cost on every statement: recorded only when someone collects them.
        if (otlp is not null)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(BridgeMetrics.MeterName, MassTransitInstrumentation)
                .AddNpgsql()
                .AddOtlpExporter(o => o.Endpoint = otlp));
        }
    }

    /// <summary>Serves the endpoints on <c>Synchro:Http:Urls</c>, or replaces the web server with none when it is empty.</summary>
    public static void ConfigureServer(WebApplicationBuilder builder, string urls)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (string.IsNullOrWhiteSpace(urls))
            builder.Services.AddSingleton<IServer, NoServer>();
        else
            builder.WebHost.UseUrls(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    public static void MapOperatorEndpoints(this WebApplication app)
    {
        // The checks are resolved per request, not here: resolving them builds the bus, which reads
        // options that may be invalid, and that must surface as the command's one-line error at start.
        app.MapGet(LivePath, (HealthCheckService checks, HttpContext context) => ReportAsync(checks, Live, context));
        app.MapGet(ReadyPath, (HealthCheckService checks, HttpContext context) => ReportAsync(checks, Ready, context));
        app.MapPrometheusScrapingEndpoint(MetricsPath);
    }

    /// <summary>
    /// Runs the checks with the tag: 200 when all are healthy, else 503 (degraded is not ready:
    /// MassTransit reports a bus that lost its broker as degraded, and a standby is degraded too),
    /// with the status and each check's description, so a failing probe says why.
    /// </summary>
    private static async Task ReportAsync(HealthCheckService checks, string tag, HttpContext context)
    {
        var report = await checks.CheckHealthAsync(check => check.Tags.Contains(tag), context.RequestAborted);
        context.Response.StatusCode = report.Status == HealthStatus.Healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.CacheControl = "no-store";
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            status = report.Status.ToString(),
            checks = report.Entries.Select(e => new { name = e.Key, status = e.Value.Status.ToString(), description = e.Value.Description ?? e.Value.Exception?.Message }),
        }), context.RequestAborted);
    }

    /// <summary>The addresses the server listens on once started (a port 0 is resolved to the one taken).</summary>
    public static IReadOnlyCollection<string> Addresses(IServiceProvider services) =>
        services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];

    /// <summary>Where a client on this host reaches the first of <paramref name="urls"/> (a wildcard host is loopback).</summary>
    public static Uri LocalAddress(string urls)
    {
        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0];
        foreach (var wildcard in new[] { "://0.0.0.0", "://+", "://*", "://[::]" })
            first = first.Replace(wildcard, "://127.0.0.1", StringComparison.Ordinal);
        return new Uri(first.TrimEnd('/') + "/");
    }

    /// <summary>The running bridge's answer on /health/ready: 200 or not, its status and each check.</summary>
    public static async Task<(bool Ready, string Status, IReadOnlyList<CheckStatus> Checks)> AskReadyAsync(HttpClient http, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(http);
        using var response = await http.GetAsync(ReadyPath.TrimStart('/'), cancellationToken);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        var checks = body.RootElement.GetProperty("checks").EnumerateArray()
            .Select(c => new CheckStatus(c.GetProperty("name").GetString()!, c.GetProperty("status").GetString()!, c.GetProperty("description").GetString()))
            .ToList();
        return (response.IsSuccessStatusCode, body.RootElement.GetProperty("status").GetString()!, checks);
    }

    /// <summary>Asks the running bridge's /health/ready: healthy on 200, with the failing checks' descriptions otherwise.</summary>
    public static async Task<(bool Healthy, string Detail)> CheckReadyAsync(string urls, CancellationToken cancellationToken)
    {
        var address = LocalAddress(urls);
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            var (ready, _, checks) = await AskReadyAsync(http, cancellationToken);
            return (ready, string.Join("; ", checks.Where(c => ready || c.Status != "Healthy").Select(c => $"{c.Name}: {c.Description}")));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !cancellationToken.IsCancellationRequested)
        {
            return (false, $"no answer at {new Uri(address, ReadyPath)}: the bridge is not running, or serves HTTP elsewhere ({e.Message}).");
        }
    }

    /// <summary>Alive unless a fatal error is stopping the bridge.</summary>
    private sealed class LivenessCheck(BridgeFailure failure) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(failure.Error is { } error
                ? HealthCheckResult.Unhealthy(CommandLine.Describe(error) ?? error.Message)
                : HealthCheckResult.Healthy("running"));
    }

    /// <summary>
    /// Ready while the slot streams (when this process reads it) and the bridge's own health holds; a
    /// hot standby is degraded: live and where it should be, but not the one doing the work.
    /// </summary>
    private sealed class ReadinessCheck(BridgeHealth health, ActiveRun activeRun, IOptions<SynchroOptions> options) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var report = health.Evaluate();
            if (!report.Healthy)
                return Task.FromResult(HealthCheckResult.Unhealthy(report.Detail));
            if (activeRun.Standby is not null)
                return Task.FromResult(HealthCheckResult.Degraded(report.Detail));
            if (options.Value.Roles.HasFlag(BridgeRoles.Replication) && activeRun.Tracker is null)
                return Task.FromResult(HealthCheckResult.Unhealthy("not streaming the replication slot (starting, or reconnecting after an interruption)."));
            return Task.FromResult(HealthCheckResult.Healthy(report.Detail));
        }
    }

    /// <summary>Stands in for Kestrel when no HTTP address is configured.</summary>
    private sealed class NoServer : IServer
    {
        public IFeatureCollection Features { get; } = new FeatureCollection();

        public Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken)
            where TContext : notnull => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose()
        {
        }
    }
}
