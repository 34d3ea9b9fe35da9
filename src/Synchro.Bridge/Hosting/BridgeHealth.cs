using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Position;

namespace Synchro.Bridge.Hosting;

/// <summary>What <c>synchro-bridge health</c> and the health file report.</summary>
public sealed record HealthReport(bool Healthy, string Detail, DateTimeOffset At);

/// <summary>
/// Judges the bridge's health: red after a fatal error, while the bucket consumer holds a change set
/// or cannot reach the database, while the position store's circuit is open, when change sets of
/// another database arrive under this source's name, or when change sets are in flight and the
/// acknowledged LSN has stalled (PostgreSQL keeps the WAL), or when the publication no longer
/// publishes exactly the configured tables. A standby waiting for the slot is healthy.
/// </summary>
internal sealed class BridgeHealth(
    BridgeFailure failure,
    ActiveRun activeRun,
    ApplyStatus applyStatus,
    PositionStoreCircuit circuit,
    IOptions<SynchroOptions> options,
    TimeProvider time)
{
    private ulong _lastAcknowledged;
    private DateTimeOffset _lastProgress = time.GetUtcNow();

    public HealthReport Evaluate()
    {
        var now = time.GetUtcNow();
        if (failure.Error is { } error)
            return new HealthReport(false, CommandLine.Describe(error) ?? error.Message, now);

        // First: a publication changed by hand is the cause of whatever else it makes go wrong.
        if (activeRun.PublicationDrift is { } drift)
            return new HealthReport(false, drift, now);

        var threshold = options.Value.Health.AckStallThreshold;
        if (applyStatus.Stall is { Transient: false } held)
            return new HealthReport(false, held.Hold.Describe(), now);
        if (applyStatus.Stall is { Transient: true } outage && now - outage.Hold.Since > threshold)
            return new HealthReport(false, $"the bucket consumer cannot reach the database since {outage.Hold.Since:u}: {outage.Hold.Error}; it keeps retrying, later change sets wait.", now);
        if (applyStatus.LastForeign is { } foreign && now - foreign.At < threshold)
            return new HealthReport(false, $"change sets of another database ({foreign.Origin}) arrive under this bridge's source name; they are not applied here. Give each bridge its own Synchro:Source.", now);
        // Before the circuit: a standby acknowledges nothing, so a circuit an outage opened while this
        // instance still held the slot would never close, and would keep a healthy standby red.
        if (activeRun.Standby is { } standby)
            return new HealthReport(true, $"standby: the slot is held by {standby.Holder} since {standby.Since:u}; this instance takes over when it is free.", now);
        if (circuit.OpenReason is { } open)
            return new HealthReport(false, $"the position store's circuit is open ({open}): acknowledgements wait until PostgreSQL answers again.", now);
        if (activeRun.Held is { } downstream)
            return new HealthReport(false, downstream.Describe(), now);


        // One blip is normal (a broker restart); retrying without progress for long is not.
        if (activeRun.LastInterruption is { } interruption && now - interruption.Since > threshold)
            return new HealthReport(false, $"replication keeps failing since {interruption.Since:u}, last: {interruption.Reason}", now);

        var running = activeRun.SnapshotProgress is { } snapshot ? "running; " + snapshot : "running";
        // Every wait of the slot reader depends on confirmations ahead of it; one that lasts is a stall whatever runs beside it.
        if (activeRun.Budget?.StreamWaitingSince is { } waiting && now - waiting > threshold)
            return new HealthReport(false, $"the slot reader has waited {(now - waiting).TotalSeconds:0} s for in-flight bytes ({activeRun.Budget.Used} of Batching:MaxInFlightBytes {activeRun.Budget.Capacity}) to be confirmed downstream; check the bucket consumer and the broker. PostgreSQL keeps the WAL meanwhile.", now);
        // A large transaction's changelog rows move into sync_changelog in slices before its LSN is
        // acknowledged: name that wait, green while slices commit, red once one does not.
        if (activeRun.ChangelogMove is { } move && now - move.Since > HealthFileWriter.Interval)
        {
            var what = $"moving the changelog rows of transactions before {new Contracts.Lsn(move.Before)} from sync_changelog_pending into sync_changelog ({move.Moved} moved in {(now - move.Since).TotalSeconds:0} s)";
            if (now - move.LastSlice > threshold)
                return new HealthReport(false, $"{what} has made no progress for {(now - move.LastSlice).TotalSeconds:0} s: look for locks on the sidecar tables (pg_stat_activity, pg_locks); acknowledgements wait for it.", now);
            running += "; " + what + ", acknowledgements follow";
        }

        if (activeRun.Tracker is not { } tracker)
            return new HealthReport(true, running, now);

        // Before the stalled acknowledgement it causes: name the broker, not the consumer.
        if (activeRun.Publishing is { } publishing && now - publishing.Since > threshold)
        {
            // A refusal of the message itself (a nack is a full queue's or an alarm's, below).
            if (activeRun.LastPublishFault is { } fault && fault.At >= publishing.Since && fault.Error.Contains("larger than configured max size", StringComparison.Ordinal))
            {
                return new HealthReport(false,
                    $"batch {publishing.Batch} has waited {(now - publishing.Since).TotalSeconds:0} s: RabbitMQ refuses to take its messages ({fault.Error}). A change set is larger than RabbitMQ's max_message_size (one row cannot be split): raise max_message_size in rabbitmq.conf on every node (RabbitMQ takes up to 536870912 bytes); a row larger than that cannot cross RabbitMQ and must shrink in the database. Nothing after the batch is acknowledged meanwhile; the bridge goes on by itself once the broker takes them.", now);
            }

            return new HealthReport(false,
                $"batch {publishing.Batch} has waited {(now - publishing.Since).TotalSeconds:0} s for RabbitMQ to confirm its messages: a queue they are routed to refuses them (a length limit with overflow reject-publish: rabbitmqctl list_queues name messages arguments, list_policies) or the broker blocks publishers (a resource alarm). Drain or fix that queue; the bridge goes on by itself, and nothing after the batch is acknowledged meanwhile.", now);
        }

        var acknowledged = tracker.AcknowledgedLsn;
        if (acknowledged != _lastAcknowledged || tracker.IsIdle)
        {
            _lastAcknowledged = acknowledged;
            _lastProgress = now;
        }

        var stalledFor = now - _lastProgress;
        return stalledFor > threshold
            ? new HealthReport(false, $"acknowledgements stalled for {stalledFor.TotalSeconds:0} s with change sets in flight; PostgreSQL keeps the WAL. Check the bucket consumer (sync_apply_holds, its health and logs).", now)
            : new HealthReport(true, running, now);
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
