using MassTransit;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Position;

/// <summary>Hands downstream confirmations to the current run's ack tracker.</summary>
internal sealed class ChangeSetAppliedConsumer(ActiveRun activeRun) : IConsumer<ChangeSetApplied>
{
    public Task Consume(ConsumeContext<ChangeSetApplied> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        // No tracker, or another run's: the change set is replayed by the current run and confirmed again.
        activeRun.Tracker?.Confirm(context.Message);
        return Task.CompletedTask;
    }
}
