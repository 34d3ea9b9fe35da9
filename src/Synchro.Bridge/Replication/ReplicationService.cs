using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Position;
using Synchro.Bridge.Replication.Snapshots;
using Synchro.Bridge.Publishing;
using Synchro.Bridge.Sources;
using Synchro.Bridge.Sidecar;
using Synchro.Bridge.Telemetry;

namespace Synchro.Bridge.Replication;

/// <summary>
/// The slot reader role: slot → decoder → batcher → publisher, and acknowledged LSNs back to the
/// slot. A transient failure (a lost connection, a server restart, a confirmation that never came)
/// ends the run, releases the slot and restarts from the slot's confirmed position with back-off
/// (replays are absorbed downstream); a condition the operator must fix stops the bridge with its
/// message. While another instance holds the slot, this one waits as its hot standby.
/// </summary>
internal sealed class ReplicationService(
    IOptions<SynchroOptions> options,
    ChangeSetPublisher publisher,
    ActiveRun activeRun,
    IPositionStore positionStore,
    IApplyHolds holds,
    PendingChangelog pendingChangelog,
    SourceGenerations generations,
    NpgsqlDataSource dataSource,
    DecodingServer decoding,
    SnapshotJobs snapshotJobs,
    BucketRules rules,
    SourceIdentity source,
    BridgeInstance instance,
    BridgeFailure failure,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    BridgeMetrics metrics,
    ILogger<ReplicationService> logger) : BackgroundService
{
    private static readonly TimeSpan StandbyPoll = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxRestartDelay = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Batches in flight below which a quiet stream is flushed at once: one being applied and one
    /// waiting keep the consumer busy; more would only make changes wait in its queue.
    /// </summary>
    private const int LiveWindow = 2;

    // Consecutive runs ended by the confirmation timeout without any progress: each doubles the next
    // timeout (up to 32x), so a consumer that stays away does not make us queue a window per minute.
    private int _timeoutsWithoutProgress;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        var ownership = new SlotOwnership(decoding.DataSource, settings.Replication.SlotName, instance.ApplicationName);
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!await TakeSlotAsync(ownership, stoppingToken))
                    continue;
                await RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (SlotInUseException)
            {
                // Taken between our look and our start: the next look tells a standby from a stale session.
                activeRun.Interrupted("the slot was taken by another session", time.GetUtcNow());
            }
            catch (Exception e) when (TransientFailures.IsTransient(e))
            {
                // The back-off grows until a run acknowledges something (which clears the interruption).
                if (activeRun.LastInterruption is null)
                {
                    failures = 0;
                    _timeoutsWithoutProgress = e is ConfirmationTimeoutException ? 1 : 0;
                }
                else if (e is ConfirmationTimeoutException)
                {
                    _timeoutsWithoutProgress++;
                }

                failures++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(MaxRestartDelay.TotalMilliseconds, 250 * Math.Pow(2, Math.Min(failures, 10))));
                activeRun.Interrupted(e.Message, time.GetUtcNow());
                ReplicationLog.Restarting(logger, e.Message, delay.TotalSeconds);
                try
                {
                    await Task.Delay(delay, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            catch (Exception e)
            {
                // A bug or a condition the operator must fix: retrying it unchanged would loop forever.
                failure.Record(e);
                lifetime.StopApplication();
                return;
            }
        }
    }

    /// <summary>
    /// True when the slot is free to take. Our own stale session (left by a broken connection) is
    /// ended; another live holder makes this instance wait as its standby.
    /// </summary>
    private async Task<bool> TakeSlotAsync(SlotOwnership ownership, CancellationToken stoppingToken)
    {
        var holder = await ownership.HolderAsync(stoppingToken);
        if (holder is null)
        {
            if (activeRun.Standby is not null)
                ReplicationLog.TakingOver(logger, options.Value.Replication.SlotName);
            activeRun.Active();
            return true;
        }

        if (ownership.IsOurs(holder))
        {
            ReplicationLog.EndingStaleSession(logger, options.Value.Replication.SlotName, holder.Pid);
            await ownership.TerminateAsync(holder, stoppingToken);
        }
        else
        {
            var described = holder.ToString();
            if (activeRun.Standby is null)
                ReplicationLog.Standby(logger, options.Value.Replication.SlotName, described);
            activeRun.WaitingAsStandby(described, time.GetUtcNow());
        }

        await Task.Delay(StandbyPoll, time, stoppingToken);
        return false;
    }

    private async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        var runId = Guid.NewGuid();
        var budget = new ByteBudget(settings.Batching.MaxInFlightBytes, time);
        activeRun.Budget = budget;
        using var tracker = new AckTracker(runId, settings.Batching.MaxInFlightBatches, time, budget.Release);
        activeRun.Tracker = tracker;
        var events = Channel.CreateBounded<DecodedEvent>(new BoundedChannelOptions(settings.Batching.DecodedEventBuffer)
        {
            SingleReader = true,
            SingleWriter = true,
        });
        var connectionString = await ReplicationConnectionStringAsync(stoppingToken);
        // A standby cannot create a failover slot: only a primary's slots are synchronized.
        var reader = new SlotReader(connectionString, settings.Replication.SlotName, settings.Replication.PublicationName, new RelationCatalog(decoding.DataSource), settings.Replication.Failover && !decoding.OnStandby);
        var reporter = new PositionReporter(positionStore, (lsn, ct) => pendingChangelog.PublishBeforeAsync(source.Name, lsn, ct), new StandbyFlush(decoding), settings.Replication.SlotName, settings.Replication.IdleAckInterval, time, activeRun, logger);
        metrics.Observe(new RunReadings(() => reader.ServerWalEnd, () => reporter.Reported, () => tracker.InFlight, () => tracker.StalledFor));
        var tables = SnapshotRunner.ParentsFirst(settings.Tables.Select(t => TableName.Parse(t.Name)).ToList(), rules.Loaded);
        var snapshots = new SnapshotRunner(dataSource, decoding.DataSource, snapshotJobs, source.Name, tables, settings.Snapshot.ChunkRows, progress => activeRun.SnapshotProgress = progress, logger);
        var watermarks = new WatermarkChunks(source.Name, runId);
        var chunkProgress = Channel.CreateUnbounded<(long Sequence, IReadOnlyList<ChunkProgress> Progress)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

        using var runCancellation = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var token = runCancellation.Token;

        // Before anything is read: LSNs that went backwards (a restore, a promoted standby) start a new generation.
        var server = await reader.IdentifyAsync(token);
        var (generation, newBecause) = await generations.EnterAsync(
            source.Name, settings.Replication.SlotName, tables, server, token);
        source.SetGeneration(generation.Number, generation.Start, server.Timeline);
        if (newBecause is not null)
            ReplicationLog.NewGeneration(logger, source.Name, generation.Number, new Contracts.Lsn(generation.Start), newBecause);
        await CheckSlotNotAheadAsync(token);

        // A new slot starts with the initial snapshot: its rows go out before the slot's first change.
        (ulong ConsistentPoint, string SnapshotName)? exported = null;
        if (settings.Snapshot.Mode == SnapshotMode.Initial && !await SlotExistsAsync(token))
        {
            // Start-up checked the slot; one that vanished since took changes with it (never re-snapshot silently).
            if (await positionStore.LoadAsync(settings.Replication.SlotName, token) is { } stored)
            {
                throw new SynchroException(
                    $"Replication slot '{settings.Replication.SlotName}' disappeared while the bridge ran, but sync_wal_position says the sidecar tables were brought to {Lsn.Format(stored)}: the changes since then were lost with the slot. Resynchronise the sidecar tables from the application tables, or run synchro-bridge run --accept-gap to read the existing rows again and go on, knowingly.");
            }

            await snapshots.PlanInitialAsync(token);
            exported = await decoding.CreatingSlotAsync(reader.CreateSlotWithSnapshotAsync, token);
        }

        ReplicationLog.Started(logger, settings.Replication.SlotName, runId);
        var streaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reading = Task.Run(async () =>
        {
            try
            {
                if (exported is { } start)
                    await snapshots.ReadExportedAsync(start.ConsistentPoint, start.SnapshotName, events.Writer, budget, token);
                streaming.TrySetResult();
                await reader.RunAsync(events.Writer, budget, token);
            }
            catch (Exception e)
            {
                // The batcher rethrows it, so whichever task ends first, the run ends with the real cause.
                events.Writer.TryComplete(e);
                throw;
            }
            finally
            {
                events.Writer.TryComplete();
            }
        }, token);
        var batching = Task.Run(() => BatchAndPublishAsync(events.Reader, new ChangeBatcher(source.Name, runId, settings.Batching, watermarks, ApplyLayout.For(settings.Apply.Partitions, rules.Set)), tracker, chunkProgress.Writer, token), token);
        var reporting = Task.Run(() => reporter.RunAsync(tracker, reader, token), token);
        var watching = Task.Run(() => WatchConfirmationsAsync(tracker, token), token);
        var backfilling = Task.Run(async () =>
        {
            await streaming.Task.WaitAsync(token);
            await snapshots.RunWatermarkJobsAsync(watermarks, budget, token);
        }, token);
        var saving = Task.Run(() => snapshots.SaveProgressAsync(chunkProgress.Reader, tracker, token), token);
        var publication = new PublicationWatch(dataSource, settings.Replication.PublicationName, settings.Tables.Select(t => TableName.Parse(t.Name)).ToList());
        var watchingPublication = Task.Run(() => publication.RunAsync(drift => activeRun.PublicationDrift = drift, time, token), token);
        var partitions = new PartitionWatch(dataSource, snapshotJobs, source.Name, tables, settings.Snapshot.Mode == SnapshotMode.Initial, logger);
        var watchingPartitions = Task.Run(() => partitions.RunAsync(time, token), token);

        // The first task to end, for whatever reason, ends the run; the others are cancelled.
        var first = await Task.WhenAny(reading, batching, reporting, watching, backfilling, saving, watchingPublication, watchingPartitions);
        await runCancellation.CancelAsync();
        try
        {
            await Task.WhenAll(reading, batching, reporting, watching, backfilling, saving, watchingPublication, watchingPartitions);
        }
        catch (Exception)
        {
            // The other tasks end cancelled, or fail because the run is torn down: the first one says why.
        }
        finally
        {
            activeRun.Tracker = null;
            activeRun.SnapshotProgress = null;
            activeRun.PublicationDrift = null;
            metrics.Observe(null);
            await CloseAsync(reader);
        }

        await first; // rethrows the failure that ended the run
        if (!stoppingToken.IsCancellationRequested)
            throw new SynchroTransientException("The replication stream ended unexpectedly.");
    }

    /// <summary>Closes the replication connection, without waiting on a server that no longer answers.</summary>
    private static async Task CloseAsync(SlotReader reader)
    {
        var closing = reader.DisposeAsync().AsTask();
        if (await Task.WhenAny(closing, Task.Delay(ProbeTimeout)) != closing)
            _ = closing.ContinueWith(t => t.Exception, TaskScheduler.Default); // observed, never awaited
    }

    /// <summary>
    /// Gives every wait for confirmations a deadline. When change sets wait unconfirmed, it first
    /// checks that PostgreSQL still accepts connections: a server that shuts down or restarts waits
    /// for its walsenders, so the slot is released at once. Past the confirmation timeout the run
    /// ends and the slot is re-read, unless the bucket consumer reports a change set it holds: then
    /// the operator must act, and re-reading would only queue copies behind it. A confirmation queue
    /// re-created after a broker interruption ends the run at once: confirmations may have been lost.
    /// </summary>
    private async Task WatchConfirmationsAsync(AckTracker tracker, CancellationToken cancellationToken)
    {
        var settings = options.Value.Replication;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500), time);
        var lastProbe = DateTimeOffset.MinValue;
        while (await timer.WaitForNextTickAsync(cancellationToken))
        {
            if (activeRun.TakeConfirmationsLost() && !tracker.IsIdle)
            {
                throw new SynchroTransientException(
                    "The confirmation queue was re-created after a broker interruption, so confirmations in flight may be lost; re-reading the slot from its confirmed position.");
            }

            var stalled = tracker.StalledFor;
            if (stalled < settings.DownstreamProbeAfter)
                continue;

            var now = time.GetUtcNow();
            if (now - lastProbe >= settings.DownstreamProbeAfter)
            {
                lastProbe = now;
                await ProbeDatabaseAsync(cancellationToken);
            }

            if (stalled < settings.ConfirmationTimeout * Math.Pow(2, Math.Min(_timeoutsWithoutProgress, 5)))
                continue;
            var hold = await holds.ReadAsync(source.Name, cancellationToken);
            activeRun.HeldDownstream(hold);
            if (hold is null)
            {
                throw new ConfirmationTimeoutException(
                    $"No change set was confirmed for {stalled.TotalSeconds:0} s (oldest waiting: batch {tracker.OldestPending?.Sequence}); re-reading the slot from its confirmed position.");
            }
        }
    }

    private async Task ProbeDatabaseAsync(CancellationToken cancellationToken)
    {
        await ProbeAsync(options.Value.Postgres.ConnectionString, cancellationToken);
        // A standby that shuts down waits for its walsenders too.
        if (decoding.OnStandby)
            await ProbeAsync(decoding.ConnectionString, cancellationToken);
    }

    private static async Task ProbeAsync(string connectionString, CancellationToken cancellationToken)
    {
        // A connection of its own, not the pool's: the question is whether the server takes new ones.
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Timeout = (int)ProbeTimeout.TotalSeconds };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(ProbeTimeout);
        try
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(deadline.Token);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(deadline.Token);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && (e is OperationCanceledException || TransientFailures.IsTransient(e)))
        {
            throw new SynchroTransientException(
                $"PostgreSQL does not accept connections ({e.Message}) while change sets wait for confirmation; releasing the slot so it can shut down or restart, and resuming when it is back.", e);
        }
    }

    /// <summary>
    /// The slot is told a position only after sync_wal_position holds it, so a slot ahead of it lost
    /// history: a standby promoted with a copy of the slot but without the sidecar writes behind it,
    /// or the slot moved by hand. Streaming on would skip the changes in between; start-up says so too.
    /// </summary>
    private async Task CheckSlotNotAheadAsync(CancellationToken cancellationToken)
    {
        var slot = options.Value.Replication.SlotName;
        await using var command = decoding.DataSource.CreateCommand("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = slot });
        if (await command.ExecuteScalarAsync(cancellationToken) is not string confirmed || await positionStore.LoadAsync(slot, cancellationToken) is not { } stored)
            return;
        if (Lsn.Parse(confirmed) > stored)
        {
            throw new SynchroException(
                $"Not streaming: replication slot '{slot}' is at {confirmed}, after {Lsn.Format(stored)}, the position sync_wal_position says the sidecar tables were brought to (a standby promoted with a copy of the slot but not the sidecar writes behind it?): the changes in between are not in the slot. Resynchronise the sidecar tables, or run synchro-bridge run --accept-gap to go on without them, knowingly.");
        }
    }

    /// <summary>
    /// The replication connection's: Npgsql replicates from one host only, so with several hosts
    /// (<c>Host=a,b;Target Session Attributes=primary</c>) it is the one a regular connection reaches
    /// now; after a fail-over, the next run finds the new primary the same way.
    /// </summary>
    private async Task<string> ReplicationConnectionStringAsync(CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(decoding.ConnectionString) { ApplicationName = instance.ApplicationName };
        if (builder.Host?.Contains(',', StringComparison.Ordinal) == true)
        {
            await using var connection = await decoding.DataSource.OpenConnectionAsync(cancellationToken);
            builder.Host = connection.Host;
            builder.Port = connection.Port;
            builder.Remove("Target Session Attributes");
        }

        return builder.ConnectionString;
    }

    private async Task<bool> SlotExistsAsync(CancellationToken cancellationToken)
    {
        await using var command = decoding.DataSource.CreateCommand("SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)");
        command.Parameters.Add(new NpgsqlParameter { Value = options.Value.Replication.SlotName });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private async Task BatchAndPublishAsync(ChannelReader<DecodedEvent> events, ChangeBatcher batcher, AckTracker tracker, ChannelWriter<(long, IReadOnlyList<ChunkProgress>)> chunkProgress, CancellationToken cancellationToken)
    {
        var maxDelay = options.Value.Batching.MaxBatchDelay;
        DateTimeOffset? flushAt = null;
        long? epoch = null;
        Task? heldBack = null;
        while (true)
        {
            var next = await ReadAsync(events, flushAt, heldBack, cancellationToken);
            heldBack = null;
            if (next.Completed)
                return;
            if (next.Event is null)
            {
                epoch = await FlushAsync(batcher.Cut(), tracker, chunkProgress, epoch, cancellationToken);
                flushAt = null;
                continue;
            }

            var full = batcher.Add(next.Event);
            if (full is not null)
            {
                epoch = await FlushAsync(full, tracker, chunkProgress, epoch, cancellationToken);
                flushAt = null;
            }

            if (!batcher.HasPending)
                continue;
            if (batcher.AtTransactionBoundary && events.Count == 0)
            {
                // The stream went quiet after a commit. With the consumer idle or busy with one batch,
                // publish now: waiting would only add latency. With more in flight, a new batch would
                // only queue behind them: keep gathering until the oldest is confirmed, so batches
                // grow with the load instead of the queue (and the time a change waits in it).
                if (tracker.InFlight < LiveWindow)
                {
                    epoch = await FlushAsync(batcher.Cut(), tracker, chunkProgress, epoch, cancellationToken);
                    flushAt = null;
                    continue;
                }

                heldBack = tracker.WhenOldestConfirmedAsync(cancellationToken);
            }

            flushAt ??= time.GetUtcNow() + maxDelay;
        }
    }

    /// <summary>
    /// The next event; none when the flush time came first, or when <paramref name="heldBack"/> (a
    /// held-back flush waiting for a confirmation) ended first.
    /// </summary>
    private async Task<(DecodedEvent? Event, bool Completed)> ReadAsync(ChannelReader<DecodedEvent> events, DateTimeOffset? flushAt, Task? heldBack, CancellationToken cancellationToken)
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
            var readable = events.WaitToReadAsync(linked.Token).AsTask();
            if (heldBack is not null && await Task.WhenAny(readable, heldBack) != readable)
            {
                await linked.CancelAsync();
                await readable.ContinueWith(static _ => { }, TaskScheduler.Default); // observed: cancelled by us
                return events.TryRead(out var arrived) ? (arrived, false) : (null, false);
            }

            return await readable && events.TryRead(out var item) ? (item, false) : (null, events.Completion.IsCompleted);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (null, false);
        }
    }

    /// <returns>The run's epoch, taken at its first change set.</returns>
    private async Task<long?> FlushAsync(OutgoingBatch? batch, AckTracker tracker, ChannelWriter<(long, IReadOnlyList<ChunkProgress>)> chunkProgress, long? epoch, CancellationToken cancellationToken)
    {
        if (batch is null)
            return epoch;
        if (batch.BucketParts.Count > 0)
        {
            // Every run that publishes has a higher epoch than the ones before, so their change sets
            // still queued are superseded. Taken once data flows: only then is the slot surely ours
            // (a standby that lost the race for it must not supersede the active run).
            epoch ??= await positionStore.BeginRunAsync(source.Name, cancellationToken);
            batch = batch with
            {
                Parts = batch.Parts.Select(p => p with { RunEpoch = epoch.Value }).ToList(),
                BucketParts = batch.BucketParts.Select(p => p with { RunEpoch = epoch.Value, Generation = source.Generation, Timeline = source.Timeline }).ToList(),
            };
        }

        metrics.Read(batch.ChangeCount);
        var publishing = Stopwatch.StartNew();
        using var activity = BridgeMetrics.Activities.StartActivity("publish batch", ActivityKind.Producer);
        activity?.SetTag("synchro.batch", batch.Sequence);
        activity?.SetTag("synchro.changes", batch.ChangeCount);
        // The bucket consumer confirms each part of the batch; one more part is ours: the subscribers'
        // change sets and logical messages, confirmed by the broker. Without it the slot could be
        // acknowledged (every part applied, or none to apply) before those were published, and a crash
        // in between would lose them for subscribers. Registered before anything is published: a batch
        // of non-transactional messages alone would otherwise leave the tracker idle, and the idle
        // acknowledgement would pass the messages while their publish still waits for the broker.
        var published = batch.BucketParts.Count;
        if (batch.Barrier)
            await tracker.WhenConfirmedAsync(batch.Sequence - 1, cancellationToken); // every partition has applied what came before
        await tracker.RegisterAsync(batch.Sequence, published + 1, batch.AckLsn, cancellationToken, batch.Bytes);
        activeRun.Publishing = new PublishWait(batch.Sequence, time.GetUtcNow());
        try
        {
            await publisher.PublishMessagesAsync(batch, cancellationToken);
            await publisher.PublishAsync(batch, cancellationToken);
        }
        finally
        {
            activeRun.Publishing = null;
        }

        tracker.ConfirmPublished(batch.Sequence, published);
        metrics.Published(batch.ChangeCount, publishing.Elapsed);
        if (batch.Barrier)
            await tracker.WhenConfirmedAsync(batch.Sequence, cancellationToken); // and nothing after it overtakes it
        if (batch.Progress.Count > 0)
            chunkProgress.TryWrite((batch.Sequence, batch.Progress)); // saved once the batch is confirmed
        ReplicationLog.Published(logger, batch.Sequence, batch.Parts.Count, batch.ChangeCount);
        return epoch;
    }
}

internal static partial class ReplicationLog
{
    [LoggerMessage(EventId = 1030, Level = LogLevel.Warning, Message = "Source {Source} starts generation {Generation} at {Start}: {Because}. Stored positions past {Start} were cut back to it; subscribers are told by the Synchro-Generation headers")]
    public static partial void NewGeneration(ILogger logger, string source, long generation, Contracts.Lsn start, string because);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Streaming slot {Slot} (run {RunId})")]
    public static partial void Started(ILogger logger, string slot, Guid runId);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Debug, Message = "Published batch {Batch}: {Parts} change sets, {Changes} changes")]
    public static partial void Published(ILogger logger, long batch, int parts, int changes);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Replication interrupted ({Reason}); restarting from the slot's confirmed position in {Seconds} s")]
    public static partial void Restarting(ILogger logger, string reason, double seconds);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Slot {Slot} is held by {Holder}; waiting as its hot standby")]
    public static partial void Standby(ILogger logger, string slot, string holder);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Slot {Slot} is free; this standby takes over")]
    public static partial void TakingOver(ILogger logger, string slot);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Warning, Message = "Slot {Slot} is still held by this bridge's previous session (pid {Pid}, left by a broken connection); ending it")]
    public static partial void EndingStaleSession(ILogger logger, string slot, int pid);
}

/// <summary>Change sets stayed unconfirmed past the deadline: the run ends and the slot is re-read.</summary>
internal sealed class ConfirmationTimeoutException(string message) : SynchroTransientException(message);
