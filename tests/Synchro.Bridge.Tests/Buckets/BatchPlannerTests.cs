using ChangePosition = Synchro.Contracts.ChangePosition;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;
using static Synchro.Bridge.Tests.Changes;

namespace Synchro.Bridge.Tests.Buckets;

public sealed class BatchPlannerTests
{
    private static readonly TableName Todos = new("public", "todos");
    private static readonly TableName Comments = new("public", "comments");

    private static readonly BucketRuleSet ByUser = new([new OwnerRule(Todos, "user_id", "user", GlobalWhenNull: true)], maxBucketsPerRow: 3);

    private static readonly BucketRuleSet TodosWithComments = new(
        [new OwnerRule(Todos, "user_id", "user", GlobalWhenNull: true), new ParentRule(Comments, Todos, ["todo_id"], GlobalWhenNull: false)], maxBucketsPerRow: 3);

    private static (string Bucket, string Record, ChangeOperation Op)[] Log(SegmentPlan plan) =>
        plan.Changelog.Select(c => (c.BucketId, c.RecordId, c.Operation)).ToArray();

    private static SegmentPlan Plan(BucketRuleSet rules, Dictionary<RecordKey, RecordState> state, params StagedChange[] changes)
    {
        var index = 0;
        var plan = new BatchPlanner(rules, state, new Dictionary<ChangePosition, RuleOutput>()).PlanSegment(changes, ref index, AppliedPositions.None);
        Assert.Equal(changes.Length, index);
        return plan;
    }

    private static StagedChange Todo(RowChange change) => new(Todos, change);

    private static StagedChange Comment(ulong lsn, int index, long id, long? todoId, ChangeOperation operation = ChangeOperation.Insert) =>
        new(Comments, new RowChange(lsn, index, 700, CommittedAt, operation, id.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [ColumnValue.Of("id", "int8", id.ToString(System.Globalization.CultureInfo.InvariantCulture)),
             todoId is { } t ? ColumnValue.Of("todo_id", "int8", t.ToString(System.Globalization.CultureInfo.InvariantCulture)) : ColumnValue.Null("todo_id", "int8")], null));

    [Fact]
    public void a_read_of_an_unknown_record_inserts_it_into_its_buckets()
    {
        var plan = Plan(ByUser, [], Todo(Read(100, 0, 1, 7)));

        Assert.Equal([("user:7", "1", ChangeOperation.Insert)], Log(plan));
        Assert.True(plan.Touched[new RecordKey("todos", "1")].Exists);
    }

    [Fact]
    public void a_read_of_a_record_held_as_it_is_writes_nothing()
    {
        var state = new Dictionary<RecordKey, RecordState>();
        Plan(ByUser, state, Todo(Insert(100, 0, 1, 7)));

        var plan = Plan(ByUser, state, Todo(Read(200, 0, 1, 7)));

        Assert.Empty(plan.Changelog);
        Assert.Empty(plan.Touched);
        Assert.Equal(1, plan.Skipped);
    }

    [Fact]
    public void a_read_writes_only_differences_an_update_where_the_data_changed_and_a_move_where_the_rule_now_places_elsewhere()
    {
        var state = new Dictionary<RecordKey, RecordState>();
        Plan(ByUser, state, Todo(Insert(100, 0, 1, 7)), Todo(Insert(100, 1, 2, 7)));

        var plan = Plan(ByUser, state, Todo(Read(200, 0, 1, 7, title: "changed")), Todo(Read(200, 1, 2, 8)));

        Assert.Equal([("user:7", "1", ChangeOperation.Update), ("user:8", "2", ChangeOperation.Insert), ("user:7", "2", ChangeOperation.Delete)], Log(plan));
    }

    [Fact]
    public void a_read_older_than_the_records_last_change_is_skipped()
    {
        var state = new Dictionary<RecordKey, RecordState>();
        Plan(ByUser, state, Todo(Update(300, 0, 1, 8)));

        var plan = Plan(ByUser, state, Todo(Read(200, 0, 1, 7)));

        Assert.Empty(plan.Changelog);
        Assert.Equal(1, plan.Skipped);
    }

    [Fact]
    public void insert_then_move_to_another_owner_then_delete()
    {
        var state = new Dictionary<RecordKey, RecordState>();
        var plan = Plan(ByUser, state, Todo(Insert(100, 0, 1, 7)), Todo(Update(200, 0, 1, 8)), Todo(Delete(300, 0, 1)));

        Assert.Equal(
            [("user:7", "1", ChangeOperation.Insert), ("user:8", "1", ChangeOperation.Insert), ("user:7", "1", ChangeOperation.Delete), ("user:8", "1", ChangeOperation.Delete)],
            Log(plan));
        var record = plan.Touched[new RecordKey("todos", "1")];
        Assert.Empty(record.Edges);
        Assert.False(record.Exists);
    }

    [Fact]
    public void an_update_that_stays_in_its_bucket_is_an_update_there_with_the_new_rows_checksum()
    {
        var state = new Dictionary<RecordKey, RecordState>
        {
            [new RecordKey("todos", "1")] = new() { Exists = true, Position = ChangePositions.At(100, 0), Edges = [new BucketEdge("user:7", 42, 100)] },
        };

        var plan = Plan(ByUser, state, Todo(Update(200, 3, 1, 7, title: "renamed")));

        Assert.Equal([("user:7", "1", ChangeOperation.Update)], Log(plan));
        var edge = Assert.Single(plan.Touched[new RecordKey("todos", "1")].Edges);
        Assert.Equal((RowJson.Checksum(Row(1, 7, "renamed")), 200UL), (edge.Checksum, edge.Lsn));
    }

    [Fact]
    public void changes_at_or_before_the_applied_position_or_the_records_own_position_change_nothing()
    {
        var state = new Dictionary<RecordKey, RecordState>
        {
            [new RecordKey("todos", "1")] = new() { Exists = true, Position = ChangePositions.At(200, 0), Edges = [new BucketEdge("user:8", 42, 200)] },
        };
        StagedChange[] changes = [Todo(Insert(100, 0, 1, 7)), Todo(Update(200, 0, 1, 8)), Todo(Insert(150, 0, 2, 7))];
        var index = 0;

        var plan = new BatchPlanner(ByUser, state, new Dictionary<ChangePosition, RuleOutput>()).PlanSegment(changes, ref index, AppliedPositions.Through(ChangePositions.At(150, 0)));

        Assert.Empty(plan.Changelog);
        Assert.Empty(plan.Touched);
        Assert.Equal(3, plan.Skipped);
    }

    [Fact]
    public void a_soft_delete_leaves_every_bucket_and_undelete_re_enters()
    {
        var plan = Plan(ByUser, [], Todo(Insert(100, 0, 1, 7)), Todo(Update(200, 0, 1, 7, deletedAt: "2026-11-23 12:00:00+00")), Todo(Update(300, 0, 1, 7)));

        Assert.Equal(
            [("user:7", "1", ChangeOperation.Insert), ("user:7", "1", ChangeOperation.Delete), ("user:7", "1", ChangeOperation.Insert)],
            Log(plan));
        Assert.Equal(["user:7"], plan.Touched[new RecordKey("todos", "1")].Edges.Select(e => e.BucketId));
    }

    [Fact]
    public void a_null_owner_goes_to_global()
    {
        var plan = Plan(ByUser, [], Todo(Insert(100, 0, 1, null)));

        Assert.Equal([("global", "1", ChangeOperation.Insert)], Log(plan));
    }

    [Fact]
    public void a_failing_rule_keeps_the_change_and_leaves_the_record_where_it_was_with_its_position()
    {
        var state = new Dictionary<RecordKey, RecordState>
        {
            [new RecordKey("todos", "1")] = new() { Exists = true, Position = ChangePositions.At(100, 0), Edges = [new BucketEdge("user:7", 42, 100)] },
        };
        var rules = new BucketRuleSet([new OwnerRule(Todos, "owner_id", "owner", GlobalWhenNull: true)], 3);

        var plan = Plan(rules, state, Todo(Update(200, 1, 1, 7)));

        Assert.Empty(plan.Changelog);
        Assert.Empty(plan.Touched);
        var failure = Assert.Single(plan.Failures);
        Assert.Equal(("1", 200UL, 1), (failure.RecordId, failure.CommitLsn, failure.ChangeIndex));
        Assert.Contains("owner_id", failure.Error, StringComparison.Ordinal);
        Assert.Equal(ChangePositions.At(100, 0), state[new RecordKey("todos", "1")].Position);
    }

    [Fact]
    public void a_child_takes_its_parents_buckets_as_they_stand_at_its_change()
    {
        var plan = Plan(TodosWithComments, [], Todo(Insert(100, 0, 1, 7)), Comment(100, 1, 10, 1), Comment(100, 2, 11, null));

        Assert.Equal([("user:7", "1", ChangeOperation.Insert), ("user:7", "10", ChangeOperation.Insert)], Log(plan));
        Assert.Equal(new RecordKey("todos", "1"), plan.Touched[new RecordKey("comments", "10")].Parent);
        // A NULL reference with GlobalWhenNull false: in no bucket, and no failure.
        Assert.Empty(plan.Touched[new RecordKey("comments", "11")].Edges);
        Assert.Empty(plan.Failures);
    }

    [Fact]
    public void a_child_whose_parent_is_not_there_is_a_rule_failure_not_a_crash()
    {
        var plan = Plan(TodosWithComments, [], Comment(100, 0, 10, 99));

        var failure = Assert.Single(plan.Failures);
        Assert.Contains("todos record 99 is not in the sidecar tables", failure.Error, StringComparison.Ordinal);
        Assert.Empty(plan.Touched);
    }

    [Fact]
    public void a_parent_that_changes_buckets_stops_the_segment_at_a_cascade_only_when_it_has_children()
    {
        var state = new Dictionary<RecordKey, RecordState>();
        StagedChange[] changes = [Todo(Insert(100, 0, 1, 7)), Todo(Update(200, 0, 1, 8)), Comment(200, 1, 10, 1), Todo(Update(300, 0, 1, 9)), Todo(Update(300, 1, 1, 9, title: "same buckets"))];
        var planner = new BatchPlanner(TodosWithComments, state, new Dictionary<ChangePosition, RuleOutput>());
        var index = 0;

        // No child yet at 200: the owner change is planned in line.
        var first = planner.PlanSegment(changes, ref index, AppliedPositions.None);
        Assert.Equal(4, index);
        var cascade = Assert.IsType<Cascade>(first.Step);
        Assert.Equal((new RecordKey("todos", "1"), ChangePositions.At(300, 0)), (cascade.Root, cascade.At));
        Assert.Equal(["user:9"], cascade.Buckets);
        Assert.Equal(("user:8", "10", ChangeOperation.Insert), Log(first)[3]);

        // Staying in its buckets moves nobody.
        var second = planner.PlanSegment(changes, ref index, AppliedPositions.None);
        Assert.Null(second.Step);
        Assert.Equal([("user:9", "1", ChangeOperation.Update)], Log(second));
    }

    [Fact]
    public void a_soft_deleted_parent_with_children_cascades_to_no_bucket()
    {
        var state = new Dictionary<RecordKey, RecordState>
        {
            [new RecordKey("todos", "1")] = new() { Exists = true, Position = ChangePositions.At(100, 0), HasChildren = true, Edges = [new BucketEdge("user:7", 1, 100)] },
        };

        var plan = Plan(TodosWithComments, state, Todo(Update(200, 0, 1, 7, deletedAt: "2026-11-23 12:00:00+00")));

        // The parent's own delete waits for its descendants' (written by the cascade).
        Assert.Empty(plan.Changelog);
        var cascade = Assert.IsType<Cascade>(plan.Step);
        Assert.Empty(cascade.Buckets);
        Assert.Equal([("user:7", "1", ChangeOperation.Delete)], cascade.RootLeaves.Select(c => (c.BucketId, c.RecordId, c.Operation)));
    }

    [Fact]
    public void empty_and_duplicate_bucket_ids_are_dropped_and_too_many_buckets_is_a_rule_failure()
    {
        var rules = new BucketRuleSet([new FunctionRule(Todos, "public", "todo_buckets")], maxBucketsPerRow: 3);
        var outputs = new Dictionary<ChangePosition, RuleOutput>
        {
            [ChangePositions.At(100, 0)] = new(["team:1", "", "team:1", " ", "team:2"], null),
            [ChangePositions.At(100, 1)] = new(["a", "b", "c", "d"], null),
            [ChangePositions.At(100, 2)] = new([], "P0001: no team"),
        };
        StagedChange[] changes = [Todo(Insert(100, 0, 1, 7)), Todo(Insert(100, 1, 2, 7)), Todo(Insert(100, 2, 3, 7))];
        var index = 0;

        var plan = new BatchPlanner(rules, [], outputs).PlanSegment(changes, ref index, AppliedPositions.None);

        Assert.Equal([("team:1", "1", ChangeOperation.Insert), ("team:2", "1", ChangeOperation.Insert)], Log(plan));
        Assert.Equal(["2", "3"], plan.Failures.Select(f => f.RecordId));
        Assert.Contains("4 buckets, more than Synchro:Buckets:MaxBucketsPerRow (3)", plan.Failures[0].Error, StringComparison.Ordinal);
        Assert.Equal("Rule function public.todo_buckets failed: P0001: no team", plan.Failures[1].Error);
    }

    [Fact]
    public void a_truncate_stops_the_segment_for_its_set_based_step()
    {
        StagedChange[] changes = [Todo(Insert(200, 0, 3, null)), Todo(Truncate(200, 1)), Todo(Insert(200, 2, 4, 7))];
        var index = 0;

        var plan = new BatchPlanner(ByUser, [], new Dictionary<ChangePosition, RuleOutput>()).PlanSegment(changes, ref index, AppliedPositions.None);

        Assert.Equal(2, index);
        Assert.Equal(new Truncate(Todos, ChangePositions.At(200, 1)), plan.Step);
        Assert.Equal([("global", "3", ChangeOperation.Insert)], Log(plan));
    }
}
