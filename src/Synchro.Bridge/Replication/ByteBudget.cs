namespace Synchro.Bridge.Replication;

/// <summary>
/// Bytes of column data that may be read from the slot but not yet confirmed downstream. The slot
/// reader takes bytes before it hands an event on and waits while the budget is spent; the ack
/// tracker gives a batch's bytes back once every change set of it is confirmed. Rows are counted
/// in bytes, not in number, so large rows cannot blow the memory bound.
/// </summary>
internal sealed class ByteBudget(long capacity)
{
    private readonly Lock _gate = new();
    private long _used;
    private TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Capacity { get; } = capacity;

    public long Used
    {
        get { lock (_gate) return _used; }
    }

    public async ValueTask AcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task released;
            lock (_gate)
            {
                // One item larger than the whole budget still passes when nothing else is held,
                // or it would wait forever.
                if (_used == 0 || _used + bytes <= Capacity)
                {
                    _used += bytes;
                    return;
                }

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
