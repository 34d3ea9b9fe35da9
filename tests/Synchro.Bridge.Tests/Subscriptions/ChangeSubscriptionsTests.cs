using Synchro.Contracts;
using Synchro.Subscriptions;

namespace Synchro.Bridge.Tests.Subscriptions;

public sealed class ChangeSubscriptionsTests
{
    [Theory]
    [InlineData("*", "public.orders", "*.public.orders")]
    [InlineData("app-slot", "public.*", "app-slot.public.*")]
    [InlineData("*", "*.orders", "*.*.orders")]
    [InlineData("*", "#", "#")]
    [InlineData("app-slot", "#", "app-slot.#")]
    public void a_table_pattern_becomes_its_routing_key(string source, string table, string routingKey) =>
        Assert.Equal(routingKey, ChangeSubscriptions.RoutingKeyOf(source, table));

    [Theory]
    [InlineData("orders")]
    [InlineData("public.orders.x")]
    [InlineData("public.ord*")]
    [InlineData("public.#")]
    public void a_table_that_is_not_schema_dot_table_is_refused_with_the_forms_that_work(string table)
    {
        var error = Assert.Throws<ArgumentException>(() => ChangeSubscriptions.RoutingKeyOf("*", table));
        Assert.StartsWith($"'{table}' is not a table to subscribe to: write schema.table (public.orders), with * for a whole name (public.*), or # for every table.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void changes_at_or_before_the_checkpoint_are_replays_and_skipped()
    {
        static Change At(ulong lsn, int index) => new(new Lsn(lsn), index, 1, DateTimeOffset.UnixEpoch, ChangeOperation.Delete, "1", null, null);
        var set = new ChangeSet("app-slot", "public", "orders", [], [At(10, 0), At(10, 1), At(20, 0)]);

        Assert.Equal(3, set.ChangesAfter(null).Count());
        Assert.Equal([new ChangePosition(new Lsn(20), 0)], set.ChangesAfter(new ChangePosition(new Lsn(10), 1)).Select(c => c.Position));
        Assert.Empty(set.ChangesAfter(set.LastPosition()));
        Assert.Equal("app-slot.public.orders", set.CheckpointKey());
    }

    [Fact]
    public void a_new_generation_resumes_after_its_start_and_an_older_generations_sets_apply_nothing()
    {
        static Change At(ulong lsn, int index) => new(new Lsn(lsn), index, 1, DateTimeOffset.UnixEpoch, ChangeOperation.Delete, "1", null, null);
        var set = new ChangeSet("app-slot", "public", "orders", [], [At(10, 0), At(30, 0), At(40, 0)]);
        var applied = new Checkpoint(0, new ChangePosition(new Lsn(35), 0));

        // Same generation: positions compare as always.
        Assert.Equal([40UL], set.ChangesAfter(new ChangeGeneration(0, default), applied).Select(c => c.CommitLsn.Value));
        // A promotion forked history at 20: what was applied past it (up to 35) is gone, so 30 and 40 are new.
        Assert.Equal([30UL, 40UL], set.ChangesAfter(new ChangeGeneration(1, new Lsn(20)), applied).Select(c => c.CommitLsn.Value));
        // A fork after the checkpoint changes nothing.
        Assert.Equal([40UL], set.ChangesAfter(new ChangeGeneration(1, new Lsn(50)), applied).Select(c => c.CommitLsn.Value));
        // A new cluster shares nothing: every change is new, however low its LSN.
        Assert.Equal(3, set.ChangesAfter(new ChangeGeneration(2, default), applied).Count());
        // A set queued before the checkpoint's generation began belongs to a history that is gone.
        Assert.Empty(set.ChangesAfter(new ChangeGeneration(0, default), new Checkpoint(1, new ChangePosition(new Lsn(5), 0))));
        Assert.Equal(new Checkpoint(1, new ChangePosition(new Lsn(40), 0)), set.LastCheckpoint(new ChangeGeneration(1, new Lsn(20))));
    }
}
