using Synchro.Bridge.Position;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Replication;

public sealed class ByteBudgetTests
{
    [Fact]
    public async Task reading_waits_while_the_budget_is_spent_and_resumes_when_a_batch_is_confirmed()
    {
        var budget = new ByteBudget(1_000);
        using var tracker = new AckTracker(Guid.NewGuid(), 8, bytesReleased: budget.Release);
        await budget.AcquireAsync(600, CancellationToken.None);
        await tracker.RegisterAsync(0, 1, 100, CancellationToken.None, bytes: 600);

        var blocked = budget.AcquireAsync(600, CancellationToken.None).AsTask();
        Assert.False(blocked.IsCompleted);

        tracker.Confirm(new ChangeSetApplied("s", tracker.RunId, 0, 0));
        await blocked.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(600, budget.Used);
    }

    [Fact]
    public async Task one_item_larger_than_the_whole_budget_passes_when_nothing_else_is_held()
    {
        var budget = new ByteBudget(1_000);

        await budget.AcquireAsync(5_000, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(5_000, budget.Used);
        var next = budget.AcquireAsync(1, CancellationToken.None).AsTask();
        Assert.False(next.IsCompleted);
        budget.Release(5_000);
        await next.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task a_row_larger_than_what_is_left_does_not_wait_for_a_chunk_whose_watermark_is_behind_it()
    {
        var budget = new ByteBudget(1_000);
        await budget.AcquireAheadOfStreamAsync(250, CancellationToken.None);

        await budget.AcquireAsync(900, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1_150, budget.Used);
        Assert.Null(budget.StreamWaitingSince);

        // Once the watermark is read the chunk's bytes are the stream's: the next row waits for them.
        budget.ReachedStream(250);
        var next = budget.AcquireAsync(100, CancellationToken.None).AsTask();
        Assert.False(next.IsCompleted);
        Assert.NotNull(budget.StreamWaitingSince);
        budget.Release(1_150);
        await next.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Null(budget.StreamWaitingSince);
    }
}
