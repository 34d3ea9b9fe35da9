using System.Threading.Channels;
using Synchro.Contracts;

namespace Synchro.Bridge.Position;

/// <summary>
/// Turns out-of-order confirmations into a contiguous acknowledged LSN: the end of the longest
/// prefix of batches whose change sets are all confirmed. A batch that is never confirmed (a poison
/// message) holds the acknowledgement where it is. Also bounds the in-flight window.
/// </summary>
internal sealed class AckTracker : IDisposable
{
    private readonly Lock _gate = new();
    private readonly SortedDictionary<long, PendingBatch> _pending = [];
    private readonly SemaphoreSlim _window;
    private readonly Channel<ulong> _acknowledged = Channel.CreateBounded<ulong>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
    private ulong _acknowledgedLsn;
    private long _nextExpected;

    public AckTracker(Guid runId, int maxInFlightBatches)
    {
        RunId = runId;
        _window = new SemaphoreSlim(maxInFlightBatches, maxInFlightBatches);
    }

    public Guid RunId { get; }

    /// <summary>Each newly acknowledged LSN; a slow reader sees only the latest.</summary>
    public ChannelReader<ulong> Acknowledged => _acknowledged.Reader;

    /// <summary>The highest LSN acknowledged so far in this run (0 before the first).</summary>
    public ulong AcknowledgedLsn
    {
        get { lock (_gate) return _acknowledgedLsn; }
    }

    /// <summary>Nothing published is waiting for confirmation.</summary>
    public bool IsIdle
    {
        get { lock (_gate) return _pending.Count == 0; }
    }

    /// <summary>Registers a batch before it is published; waits while the in-flight window is full.</summary>
    public async Task RegisterAsync(long sequence, int partCount, ulong? ackLsn, CancellationToken cancellationToken)
    {
        await _window.WaitAsync(cancellationToken);
        lock (_gate)
        {
            if (sequence != _nextExpected + _pending.Count)
                throw new InvalidOperationException($"Batch {sequence} registered out of order.");
            _pending.Add(sequence, new PendingBatch(partCount, ackLsn));
            AdvanceLocked();
        }
    }

    /// <summary>Records a confirmation; duplicates and confirmations of other runs are ignored.</summary>
    /// <returns>True when the confirmation belonged to this run and was new.</returns>
    public bool Confirm(ChangeSetApplied applied)
    {
        ArgumentNullException.ThrowIfNull(applied);
        if (applied.RunId != RunId)
            return false;
        lock (_gate)
        {
            if (!_pending.TryGetValue(applied.BatchSequence, out var batch) || !batch.Confirm(applied.PartIndex))
                return false;
            AdvanceLocked();
            return true;
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
            if (head.AckLsn is { } lsn && lsn > _acknowledgedLsn)
            {
                _acknowledgedLsn = lsn;
                advanced = true;
            }
        }

        if (advanced)
            _acknowledged.Writer.TryWrite(_acknowledgedLsn);
    }

    public void Dispose() => _window.Dispose();

    private sealed class PendingBatch(int partCount, ulong? ackLsn)
    {
        private readonly bool[] _confirmed = new bool[partCount];
        private int _remaining = partCount;

        public ulong? AckLsn { get; } = ackLsn;

        public bool IsComplete => _remaining == 0;

        public bool Confirm(int partIndex)
        {
            if ((uint)partIndex >= (uint)_confirmed.Length || _confirmed[partIndex])
                return false;
            _confirmed[partIndex] = true;
            _remaining--;
            return true;
        }
    }
}
