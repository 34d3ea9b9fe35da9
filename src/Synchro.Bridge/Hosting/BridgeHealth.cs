using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Synchro.Bridge.Position;

namespace Synchro.Bridge.Hosting;

/// <summary>What <c>synchro-bridge health</c> and the health file report.</summary>
public sealed record HealthReport(bool Healthy, string Detail, DateTimeOffset At);

/// <summary>
/// Judges the bridge's health: red after a fatal error, or when change sets are in flight and the
/// acknowledged LSN has stalled (WAL is being kept; look at the consumer's _error queue).
/// </summary>
internal sealed class BridgeHealth(BridgeFailure failure, ActiveRun activeRun, IOptions<SynchroOptions> options, TimeProvider time)
{
    private ulong _lastAcknowledged;
    private DateTimeOffset _lastProgress = time.GetUtcNow();

    public HealthReport Evaluate()
    {
        var now = time.GetUtcNow();
        if (failure.Error is { } error)
            return new HealthReport(false, CommandLine.Describe(error) ?? error.Message, now);

        // One blip is normal (a broker restart); retrying without progress for long is not.
        if (activeRun.LastInterruption is { } interruption && now - interruption.Since > options.Value.Health.AckStallThreshold)
            return new HealthReport(false, $"replication keeps failing since {interruption.Since:u}, last: {interruption.Reason}", now);

        if (activeRun.Tracker is not { } tracker)
            return new HealthReport(true, "running", now);

        var acknowledged = tracker.AcknowledgedLsn;
        if (acknowledged != _lastAcknowledged || tracker.IsIdle)
        {
            _lastAcknowledged = acknowledged;
            _lastProgress = now;
        }

        var stalledFor = now - _lastProgress;
        return stalledFor > options.Value.Health.AckStallThreshold
            ? new HealthReport(false, $"acknowledgements stalled for {stalledFor.TotalSeconds:0} s with change sets in flight; PostgreSQL keeps the WAL. Check the bucket-assignment _error queue and the logs.", now)
            : new HealthReport(true, "running", now);
    }
}

/// <summary>Rewrites the health file every few seconds, so a container health check needs no network port.</summary>
internal sealed class HealthFileWriter(BridgeHealth health, IOptions<SynchroOptions> options, TimeProvider time) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var path = options.Value.Health.File;
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            await HealthFile.WriteAsync(path, health.Evaluate(), stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}

/// <summary>Reads and writes the health file atomically (write, then rename).</summary>
public static class HealthFile
{
    public static async Task WriteAsync(string path, HealthReport report, CancellationToken cancellationToken)
    {
        var temporary = path + ".tmp";
        await File.WriteAllTextAsync(temporary, JsonSerializer.Serialize(report), cancellationToken);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Exit code 0 when the file says healthy and is fresh; otherwise 1 with the reason.</summary>
    public static async Task<(bool Healthy, string Detail)> CheckAsync(string path, TimeSpan maxAge, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(path))
            return (false, "no health file configured: set Synchro:Health:File on the running bridge and here.");
        if (!File.Exists(path))
            return (false, $"health file {path} does not exist: the bridge is not running (or not yet started).");
        var report = JsonSerializer.Deserialize<HealthReport>(await File.ReadAllTextAsync(path, cancellationToken));
        if (report is null)
            return (false, $"health file {path} is empty.");
        if (now - report.At > maxAge)
            return (false, $"health file {path} was last written {(now - report.At).TotalSeconds:0} s ago: the bridge is hung or stopped.");
        return (report.Healthy, report.Detail);
    }
}
