namespace Synchro.Bridge.Replication;

/// <summary>
/// Bytes of column data that may be read from the slot but not yet confirmed downstream. The slot
/// reader takes bytes before it hands an event on and waits while the budget is spent; the ack
/// tracker gives a batch's bytes back once every change set of it is confirmed. Rows are counted
/// in bytes, not in number, so large rows cannot blow the memory bound.
/// <para>
/// A backfill chunk takes its bytes before its watermark enters the stream and gives them to a batch
/// only once the slot reader reaches the watermark. The reader must never wait for those bytes:
/// they come back only after it has read on. So a row larger than what is left passes once nothing
/// <em>the stream</em> holds is left (chunks waiting for their watermark do not count), and the bound
/// is the budget plus one such row.
/// </para>
/// </summary>
internal sealed class ByteBudget(long capacity, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private DateTimeOffset? _streamWaitingSince;

    private readonly Lock _gate = new();
    private long _used;
    private long _aheadOfStream;
    private TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Capacity { get; } = capacity;

    public long Used
    {
        get { lock (_gate) return _used; }
    }

    /// <summary>Since when the slot reader has waited for bytes to come back; null while it does not wait.</summary>
    public DateTimeOffset? StreamWaitingSince
    {
        get { lock (_gate) return _streamWaitingSince; }
    }

    /// <summary>Takes bytes for what the stream hands on (a row read from the slot or an exported snapshot).</summary>
    public ValueTask AcquireAsync(long bytes, CancellationToken cancellationToken) => AcquireAsync(bytes, aheadOfStream: false, cancellationToken);

    /// <summary>
    /// Takes bytes for a chunk that waits for its watermark in the stream; <see cref="ReachedStream"/>
    /// when the reader has reached it, or <see cref="Release"/> and <see cref="ReachedStream"/> when it never will.
    /// </summary>
    public ValueTask AcquireAheadOfStreamAsync(long bytes, CancellationToken cancellationToken) => AcquireAsync(bytes, aheadOfStream: true, cancellationToken);

    /// <summary>The chunk's watermark was read: its bytes are the stream's now, released with its batch.</summary>
    public void ReachedStream(long bytes)
    {
        lock (_gate)
            _aheadOfStream -= bytes;
    }

    private async ValueTask AcquireAsync(long bytes, bool aheadOfStream, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task released;
            lock (_gate)
            {
                // One item larger than what is left still passes once nothing it could wait for is
                // held (for the stream: nothing but chunks behind it), or it would wait forever.
                var waitable = aheadOfStream ? _used : _used - _aheadOfStream;
                if (waitable == 0 || _used + bytes <= Capacity)
                {
                    _used += bytes;
                    if (aheadOfStream)
                        _aheadOfStream += bytes;
                    else
                        _streamWaitingSince = null;
                    return;
                }

                if (!aheadOfStream)
                    _streamWaitingSince ??= _time.GetUtcNow();
                released = _released.Task;
            }

            await released.WaitAsync(cancellationToken);
        }
    }

    public void Release(long bytes)
    {
        if (bytes == 0)
            return;
        TaskCompletionSource released;
        lock (_gate)
        {
            _used -= bytes;
            released = _released;
            _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        released.TrySetResult();
    }
}
