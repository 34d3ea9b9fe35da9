using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Position;
using Synchro.Bridge.Publishing;

namespace Synchro.Bridge.Replication;

/// <summary>
/// The slot reader role: slot → decoder → batcher → publisher, and acknowledged LSNs back to the
/// slot. A transient failure restarts the run from the slot's confirmed position (replays are
/// absorbed downstream); a condition the operator must fix stops the bridge with its message.
/// </summary>
internal sealed class ReplicationService(
    IOptions<SynchroOptions> options,
    ChangeSetPublisher publisher,
    ActiveRun activeRun,
    IPositionStore positionStore,
    NpgsqlDataSource dataSource,
    BridgeFailure failure,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<ReplicationService> logger) : BackgroundService
{
    private static readonly TimeSpan RestartDelay = TimeSpan.FromSeconds(2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (SynchroException e)
            {
                failure.Record(e);
                lifetime.StopApplication();
                return;
            }
            catch (Exception e) when (IsTransient(e))
            {
                activeRun.Interrupted(e.Message, time.GetUtcNow());
                ReplicationLog.Restarting(logger, e.Message, RestartDelay.TotalSeconds);
                await Task.Delay(RestartDelay, time, stoppingToken);
            }
            catch (Exception e)
            {
                failure.Record(e);
                lifetime.StopApplication();
                return;
            }
        }
    }

    private async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        var runId = Guid.NewGuid();
        using var tracker = new AckTracker(runId, settings.Batching.MaxInFlightBatches);
        activeRun.Tracker = tracker;
        var events = Channel.CreateBounded<DecodedEvent>(new BoundedChannelOptions(settings.Batching.DecodedEventBuffer)
        {
            SingleReader = true,
            SingleWriter = true,
        });
        await using var reader = new SlotReader(settings.Postgres.ConnectionString, settings.Replication.SlotName, settings.Replication.PublicationName, new RelationCatalog(dataSource));
        var reporter = new PositionReporter(positionStore, settings.Replication.SlotName, settings.Replication.IdleAckInterval, time, activeRun, logger);

        using var runCancellation = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var token = runCancellation.Token;
        ReplicationLog.Started(logger, settings.Replication.SlotName, runId);

        var reading = Task.Run(async () =>
        {
            try
            {
                await reader.RunAsync(events.Writer, token);
            }
            finally
            {
                events.Writer.TryComplete();
            }
        }, token);
        var batching = Task.Run(() => BatchAndPublishAsync(events.Reader, new ChangeBatcher(settings.Replication.SlotName, runId, settings.Batching), tracker, token), token);
        var reporting = Task.Run(() => reporter.RunAsync(tracker, reader, token), token);

        // The first task to end, for whatever reason, ends the run; the others are cancelled.
        var first = await Task.WhenAny(reading, batching, reporting);
        await runCancellation.CancelAsync();
        try
        {
            await Task.WhenAll(reading, batching, reporting);
        }
        catch (OperationCanceledException) when (first.IsCompletedSuccessfully || first.IsCanceled)
        {
        }
        finally
        {
            activeRun.Tracker = null;
        }

        await first; // rethrows the failure that ended the run
        if (!stoppingToken.IsCancellationRequested)
            throw new NpgsqlException("The replication stream ended unexpectedly.");
    }

    private async Task BatchAndPublishAsync(ChannelReader<DecodedEvent> events, ChangeBatcher batcher, AckTracker tracker, CancellationToken cancellationToken)
    {
        var maxDelay = options.Value.Batching.MaxBatchDelay;
        DateTimeOffset? flushAt = null;
        while (true)
        {
            var next = await ReadAsync(events, flushAt, cancellationToken);
            if (next.Completed)
                return;
            if (next.Event is null)
            {
                await FlushAsync(batcher.Cut(), tracker, cancellationToken);
                flushAt = null;
                continue;
            }

            var full = batcher.Add(next.Event);
            if (full is not null)
            {
                await FlushAsync(full, tracker, cancellationToken);
                flushAt = null;
            }

            if (batcher.HasPending)
                flushAt ??= time.GetUtcNow() + maxDelay;
        }
    }

    /// <summary>The next event, or none when the flush time came first.</summary>
    private async Task<(DecodedEvent? Event, bool Completed)> ReadAsync(ChannelReader<DecodedEvent> events, DateTimeOffset? flushAt, CancellationToken cancellationToken)
    {
        if (events.TryRead(out var ready))
            return (ready, false);
        var wait = flushAt is null ? Timeout.InfiniteTimeSpan : flushAt.Value - time.GetUtcNow();
        if (flushAt is not null && wait <= TimeSpan.Zero)
            return (null, false);
        using var timer = new CancellationTokenSource(wait, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            return await events.WaitToReadAsync(linked.Token) && events.TryRead(out var item) ? (item, false) : (null, events.Completion.IsCompleted);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, false);
        }
    }

    private async Task FlushAsync(OutgoingBatch? batch, AckTracker tracker, CancellationToken cancellationToken)
    {
        if (batch is null)
            return;
        // Messages first: a batch without change sets is acknowledged as soon as it is registered.
        await publisher.PublishMessagesAsync(batch, cancellationToken);
        await tracker.RegisterAsync(batch.Sequence, batch.Parts.Count, batch.AckLsn, cancellationToken);
        await publisher.PublishAsync(batch, cancellationToken);
        ReplicationLog.Published(logger, batch.Sequence, batch.Parts.Count, batch.ChangeCount);
    }

    /// <summary>Lost connections (database or broker) are retried; an error PostgreSQL reports about our request is not.</summary>
    private static bool IsTransient(Exception e) => e is not PostgresException { IsTransient: false };
}

internal static partial class ReplicationLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Streaming slot {Slot} (run {RunId})")]
    public static partial void Started(ILogger logger, string slot, Guid runId);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Debug, Message = "Published batch {Batch}: {Parts} change sets, {Changes} changes")]
    public static partial void Published(ILogger logger, long batch, int parts, int changes);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Replication interrupted ({Reason}); restarting from the slot's confirmed position in {Seconds} s")]
    public static partial void Restarting(ILogger logger, string reason, double seconds);
}
