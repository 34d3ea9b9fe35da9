using Synchro.Bridge.Buckets;
using Synchro.Contracts;
using static Synchro.Bridge.Tests.Changes;

namespace Synchro.Bridge.Tests.Buckets;

public sealed class EdgeDiffPlannerTests
{
    private static readonly IBucketRule ByUser = new OwnerColumnRule("user_id", "user", globalWhenNull: true);

    private static (string Bucket, string Record, ChangeOperation Op)[] Log(SidecarPlan plan) =>
        plan.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)).ToArray();

    [Fact]
    public void insert_then_move_to_another_owner_then_delete()
    {
        var plan = EdgeDiffPlanner.Plan([Insert(100, 0, 1, 7), Update(200, 0, 1, 8), Delete(300, 0, 1)], ByUser, new SidecarState());

        Assert.Equal(
            [("user:7", "1", ChangeOperation.Insert), ("user:8", "1", ChangeOperation.Insert), ("user:7", "1", ChangeOperation.Delete), ("user:8", "1", ChangeOperation.Delete)],
            Log(plan));
        Assert.Empty(plan.Edges["1"]);
        Assert.Equal(new ChangePosition(300, 0), plan.Positions["1"]);
    }

    [Fact]
    public void an_update_that_stays_in_its_bucket_is_an_update_there_with_a_new_checksum()
    {
        var state = new SidecarState();
        state.Edges["1"] = [new BucketEdge("user:7", 42, 100)];
        state.Positions["1"] = new ChangePosition(100, 0);

        var plan = EdgeDiffPlanner.Plan([Update(200, 3, 1, 7, title: "renamed")], ByUser, state);

        Assert.Equal([("user:7", "1", ChangeOperation.Update)], Log(plan));
        var edge = Assert.Single(plan.Edges["1"]);
        Assert.Equal(EdgeDiffPlanner.Checksum(Row(1, 7, "renamed")), edge.Checksum);
        Assert.Equal(200UL, edge.Lsn);
    }

    [Fact]
    public void a_replayed_change_and_an_older_change_change_nothing()
    {
        var state = new SidecarState();
        state.Edges["1"] = [new BucketEdge("user:8", 42, 200)];
        state.Positions["1"] = new ChangePosition(200, 0);

        var plan = EdgeDiffPlanner.Plan([Insert(100, 0, 1, 7), Update(200, 0, 1, 8)], ByUser, state);

        Assert.Empty(plan.Changelog);
        Assert.Empty(plan.Edges);
        Assert.Empty(plan.Positions);
        Assert.Equal(2, plan.Replayed);
    }

    [Fact]
    public void a_soft_delete_leaves_every_bucket_and_undelete_re_enters()
    {
        var plan = EdgeDiffPlanner.Plan(
            [Insert(100, 0, 1, 7), Update(200, 0, 1, 7, deletedAt: "2026-11-23 12:00:00+00"), Update(300, 0, 1, 7)],
            ByUser, new SidecarState());

        Assert.Equal(
            [("user:7", "1", ChangeOperation.Insert), ("user:7", "1", ChangeOperation.Delete), ("user:7", "1", ChangeOperation.Insert)],
            Log(plan));
        Assert.Equal(["user:7"], plan.Edges["1"].Select(e => e.BucketId));
    }

    [Fact]
    public void a_null_owner_goes_to_global()
    {
        var plan = EdgeDiffPlanner.Plan([Insert(100, 0, 1, null)], ByUser, new SidecarState());

        Assert.Equal([("global", "1", ChangeOperation.Insert)], Log(plan));
    }

    [Fact]
    public void a_failing_rule_quarantines_the_change_and_keeps_the_record_where_it_was()
    {
        var state = new SidecarState();
        state.Edges["1"] = [new BucketEdge("user:7", 42, 100)];
        var rule = new OwnerColumnRule("owner_id", "owner", globalWhenNull: true);

        var plan = EdgeDiffPlanner.Plan([Update(200, 1, 1, 7)], rule, state);

        Assert.Empty(plan.Changelog);
        Assert.False(plan.Edges.ContainsKey("1"));
        var failure = Assert.Single(plan.Failures);
        Assert.Equal(("1", 200UL, 1), (failure.RecordId, failure.CommitLsn, failure.ChangeIndex));
        Assert.Contains("owner_id", failure.Error, StringComparison.Ordinal);
        Assert.Equal(new ChangePosition(200, 1), plan.Positions["1"]);
    }

    [Fact]
    public void a_truncate_deletes_every_record_from_every_bucket_it_was_in()
    {
        var state = new SidecarState();
        state.Edges["1"] = [new BucketEdge("user:7", 1, 100)];
        state.Edges["2"] = [new BucketEdge("user:7", 2, 100)];

        var plan = EdgeDiffPlanner.Plan([Insert(200, 0, 3, null), Truncate(200, 1), Insert(200, 2, 4, 7)], ByUser, state);

        Assert.Equal(
            [("global", "3", ChangeOperation.Insert), ("user:7", "1", ChangeOperation.Delete), ("user:7", "2", ChangeOperation.Delete), ("global", "3", ChangeOperation.Delete), ("user:7", "4", ChangeOperation.Insert)],
            Log(plan));
        Assert.Empty(plan.Edges["1"]);
        Assert.Empty(plan.Edges["3"]);
        Assert.Equal(["user:7"], plan.Edges["4"].Select(e => e.BucketId));
    }
}
