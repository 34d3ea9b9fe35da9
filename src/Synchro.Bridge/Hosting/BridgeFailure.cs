namespace Synchro.Bridge.Hosting;

/// <summary>The error that stopped the bridge, kept so the command line can print it as one line.</summary>
public sealed class BridgeFailure
{
    private Exception? _error;

    public Exception? Error => Volatile.Read(ref _error);

    public void Record(Exception error) => Interlocked.CompareExchange(ref _error, error, null);
}
