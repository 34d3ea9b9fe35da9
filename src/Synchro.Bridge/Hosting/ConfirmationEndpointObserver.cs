using MassTransit;
using Synchro.Bridge.Position;

namespace Synchro.Bridge.Hosting;

/// <summary>
/// The confirmation queue is this process's own and not durable: when the broker connection is lost
/// it goes away, and confirmations published meanwhile are lost. When the endpoint comes back (or
/// faults), the current run is told, so it re-reads the slot at once instead of waiting for the
/// confirmation timeout.
/// </summary>
internal sealed class ConfirmationEndpointObserver(ActiveRun activeRun) : IReceiveEndpointObserver
{
    private int _readyCount;

    public Task Ready(ReceiveEndpointReady ready)
    {
        ArgumentNullException.ThrowIfNull(ready);
        if (IsConfirmationEndpoint(ready.InputAddress) && Interlocked.Increment(ref _readyCount) > 1)
            activeRun.ConfirmationsMayBeLost();
        return Task.CompletedTask;
    }

    public Task Faulted(ReceiveEndpointFaulted faulted)
    {
        ArgumentNullException.ThrowIfNull(faulted);
        if (IsConfirmationEndpoint(faulted.InputAddress))
            activeRun.ConfirmationsMayBeLost();
        return Task.CompletedTask;
    }

    public Task Stopping(ReceiveEndpointStopping stopping) => Task.CompletedTask;

    public Task Completed(ReceiveEndpointCompleted completed) => Task.CompletedTask;

    private static bool IsConfirmationEndpoint(Uri address) => address.AbsolutePath.Contains(".applied.", StringComparison.Ordinal);
}
