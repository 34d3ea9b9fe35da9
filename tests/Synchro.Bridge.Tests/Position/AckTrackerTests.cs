using Synchro.Bridge.Position;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Position;

public sealed class AckTrackerTests
{
    private static readonly Guid Run = Guid.NewGuid();

    private static ChangeSetApplied Applied(long batch, int part, Guid? run = null) => new("slot", run ?? Run, batch, part);

    [Fact]
    public async Task out_of_order_confirmations_acknowledge_only_the_contiguous_prefix()
    {
        using var tracker = new AckTracker(Run, maxInFlightBatches: 10);
        await tracker.RegisterAsync(0, 1, 100, CancellationToken.None);
        await tracker.RegisterAsync(1, 2, 200, CancellationToken.None);
        await tracker.RegisterAsync(2, 1, 300, CancellationToken.None);

        Assert.True(tracker.Confirm(Applied(2, 0)));
        Assert.True(tracker.Confirm(Applied(1, 1)));
        Assert.Equal(0UL, tracker.AcknowledgedLsn);

        Assert.True(tracker.Confirm(Applied(0, 0)));
        Assert.Equal(100UL, tracker.AcknowledgedLsn);

        Assert.True(tracker.Confirm(Applied(1, 0)));
        Assert.Equal(300UL, tracker.AcknowledgedLsn);
        Assert.True(tracker.IsIdle);
    }

    [Fact]
    public async Task an_unconfirmed_poison_batch_holds_the_acknowledgement_before_it()
    {
        using var tracker = new AckTracker(Run, maxInFlightBatches: 10);
        await tracker.RegisterAsync(0, 1, 100, CancellationToken.None);
        await tracker.RegisterAsync(1, 1, 200, CancellationToken.None);
        await tracker.RegisterAsync(2, 1, 300, CancellationToken.None);

        tracker.Confirm(Applied(0, 0));
        tracker.Confirm(Applied(2, 0));

        Assert.Equal(100UL, tracker.AcknowledgedLsn);
        Assert.False(tracker.IsIdle);
    }

    [Fact]
    public async Task a_chunk_of_an_open_transaction_passes_without_moving_the_acknowledgement()
    {
        using var tracker = new AckTracker(Run, maxInFlightBatches: 10);
        await tracker.RegisterAsync(0, 1, 100, CancellationToken.None);
        await tracker.RegisterAsync(1, 1, null, CancellationToken.None);
        await tracker.RegisterAsync(2, 1, 500, CancellationToken.None);

        tracker.Confirm(Applied(0, 0));
        tracker.Confirm(Applied(1, 0));
        Assert.Equal(100UL, tracker.AcknowledgedLsn);

        tracker.Confirm(Applied(2, 0));
        Assert.Equal(500UL, tracker.AcknowledgedLsn);
    }

    [Fact]
    public async Task duplicate_and_foreign_run_confirmations_are_ignored()
    {
        using var tracker = new AckTracker(Run, maxInFlightBatches: 10);
        await tracker.RegisterAsync(0, 2, 100, CancellationToken.None);

        Assert.False(tracker.Confirm(Applied(0, 0, Guid.NewGuid())));
        Assert.True(tracker.Confirm(Applied(0, 0)));
        Assert.False(tracker.Confirm(Applied(0, 0)));
        Assert.False(tracker.Confirm(Applied(0, 7)));
        Assert.Equal(0UL, tracker.AcknowledgedLsn);

        Assert.True(tracker.Confirm(Applied(0, 1)));
        Assert.Equal(100UL, tracker.AcknowledgedLsn);
    }

    [Fact]
    public async Task a_batch_without_change_sets_is_acknowledged_at_once()
    {
        using var tracker = new AckTracker(Run, maxInFlightBatches: 10);
        await tracker.RegisterAsync(0, 0, 100, CancellationToken.None);

        Assert.Equal(100UL, tracker.AcknowledgedLsn);
        Assert.True(tracker.Acknowledged.TryRead(out var lsn));
        Assert.Equal(100UL, lsn);
    }

    [Fact]
    public async Task registering_waits_while_the_in_flight_window_is_full()
    {
        using var tracker = new AckTracker(Run, maxInFlightBatches: 2);
        await tracker.RegisterAsync(0, 1, 100, CancellationToken.None);
        await tracker.RegisterAsync(1, 1, 200, CancellationToken.None);

        var third = tracker.RegisterAsync(2, 1, 300, CancellationToken.None);
        Assert.False(third.IsCompleted);

        tracker.Confirm(Applied(0, 0));
        await third.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(third.IsCompletedSuccessfully);
    }
}
