using System.Threading.Channels;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Position;

/// <summary>
/// Turns out-of-order confirmations into a contiguous acknowledged LSN: the end of the longest
/// prefix of batches whose change sets are all confirmed. A batch that is never confirmed (a poison
/// message) holds the acknowledgement where it is. Also bounds the in-flight window, in batches and
/// (through the callback that returns a batch's bytes) in bytes, and knows how long confirmations
/// have stalled, so the run can give up waiting.
/// </summary>
internal sealed class AckTracker : IDisposable
{
    private readonly Lock _gate = new();
    private readonly SortedDictionary<long, PendingBatch> _pending = [];
    private readonly SemaphoreSlim _window;
    private readonly TimeProvider _time;
    private readonly Action<long> _bytesReleased;
    private readonly Channel<ulong> _acknowledged = Channel.CreateBounded<ulong>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
    private readonly List<(long Sequence, TaskCompletionSource Confirmed)> _waiters = [];
    private ulong _acknowledgedLsn;
    private long _nextExpected;
    private DateTimeOffset _lastProgress;

    public AckTracker(Guid runId, int maxInFlightBatches, TimeProvider? time = null, Action<long>? bytesReleased = null)
    {
        RunId = runId;
        _window = new SemaphoreSlim(maxInFlightBatches, maxInFlightBatches);
        _time = time ?? TimeProvider.System;
        _bytesReleased = bytesReleased ?? (_ => { });
        _lastProgress = _time.GetUtcNow();
    }

    public Guid RunId { get; }

    /// <summary>Each newly acknowledged LSN; a slow reader sees only the latest.</summary>
    public ChannelReader<ulong> Acknowledged => _acknowledged.Reader;

    /// <summary>The highest LSN acknowledged so far in this run (0 before the first).</summary>
    public ulong AcknowledgedLsn
    {
        get { lock (_gate) return _acknowledgedLsn; }
    }

    /// <summary>Batches published and not yet confirmed (with the ones before them).</summary>
    public int InFlight
    {
        get { lock (_gate) return _pending.Count; }
    }

    /// <summary>Ends when the oldest batch in flight is confirmed; at once when none is.</summary>
    public Task WhenOldestConfirmedAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_pending.Count == 0)
                return Task.CompletedTask;
        }

        return WhenConfirmedAsync(_nextExpected, cancellationToken);
    }

    /// <summary>Nothing published is waiting for confirmation.</summary>
    public bool IsIdle
    {
        get { lock (_gate) return _pending.Count == 0; }
    }

    /// <summary>How long batches have been waiting without any new confirmation; zero when none waits.</summary>
    public TimeSpan StalledFor
    {
        get
        {
            lock (_gate)
                return _pending.Count == 0 ? TimeSpan.Zero : _time.GetUtcNow() - _lastProgress;
        }
    }

    /// <summary>The oldest batch still waiting: its sequence and the parts not yet confirmed.</summary>
    public (long Sequence, int Unconfirmed)? OldestPending
    {
        get
        {
            lock (_gate)
                return _pending.TryGetValue(_nextExpected, out var head) ? (_nextExpected, head.Remaining) : null;
        }
    }

    /// <summary>Registers a batch before it is published; waits while the in-flight window is full.</summary>
    /// <param name="bytes">Bytes of column data the batch holds, returned through the callback once it is confirmed.</param>
    public async Task RegisterAsync(long sequence, int partCount, ulong? ackLsn, CancellationToken cancellationToken, long bytes = 0)
    {
        await _window.WaitAsync(cancellationToken);
        lock (_gate)
        {
            if (sequence != _nextExpected + _pending.Count)
                throw new InvalidOperationException($"Batch {sequence} registered out of order.");
            if (_pending.Count == 0)
                _lastProgress = _time.GetUtcNow(); // the stall clock starts when something waits
            _pending.Add(sequence, new PendingBatch(partCount, ackLsn, bytes));
            AdvanceLocked();
        }
    }

    /// <summary>Records a confirmation; duplicates and confirmations of other runs are ignored.</summary>
    /// <returns>True when the confirmation belonged to this run and was new.</returns>
    public bool Confirm(ChangeSetApplied applied)
    {
        ArgumentNullException.ThrowIfNull(applied);
        return applied.RunId == RunId && Confirm(applied.BatchSequence, applied.PartIndex);
    }

    /// <summary>Records that the publisher's own part of a batch is done (its subscriber change sets are confirmed by the broker).</summary>
    public void ConfirmPublished(long sequence, int partIndex) => Confirm(sequence, partIndex);

    private bool Confirm(long sequence, int partIndex)
    {
        lock (_gate)
        {
            if (!_pending.TryGetValue(sequence, out var batch) || !batch.Confirm(partIndex))
                return false;
            _lastProgress = _time.GetUtcNow();
            AdvanceLocked();
            return true;
        }
    }

    /// <summary>Ends once the batch and every batch before it are confirmed.</summary>
    public Task WhenConfirmedAsync(long sequence, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (sequence < _nextExpected)
                return Task.CompletedTask;
            var confirmed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((sequence, confirmed));
            return confirmed.Task.WaitAsync(cancellationToken);
        }
    }

    private void AdvanceLocked()
    {
        var advanced = false;
        while (_pending.TryGetValue(_nextExpected, out var head) && head.IsComplete)
        {
            _pending.Remove(_nextExpected);
            _nextExpected++;
            _window.Release();
            _bytesReleased(head.Bytes);
            if (head.AckLsn is { } lsn && lsn > _acknowledgedLsn)
            {
                _acknowledgedLsn = lsn;
                advanced = true;
            }
        }

        if (advanced)
            _acknowledged.Writer.TryWrite(_acknowledgedLsn);
        foreach (var waiter in _waiters.Where(w => w.Sequence < _nextExpected))
            waiter.Confirmed.TrySetResult();
        _waiters.RemoveAll(w => w.Sequence < _nextExpected);
    }

    public void Dispose() => _window.Dispose();

    private sealed class PendingBatch(int partCount, ulong? ackLsn, long bytes)
    {
        private readonly bool[] _confirmed = new bool[partCount];

        public ulong? AckLsn { get; } = ackLsn;

        public long Bytes { get; } = bytes;

        public int Remaining { get; private set; } = partCount;

        public bool IsComplete => Remaining == 0;

        public bool Confirm(int partIndex)
        {
            if ((uint)partIndex >= (uint)_confirmed.Length || _confirmed[partIndex])
                return false;
            _confirmed[partIndex] = true;
            Remaining--;
            return true;
        }
    }
}
