using ChangePosition = Synchro.Contracts.ChangePosition;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// The edge diff of synchro, over the changes of a batch in commit order across tables. Per change:
/// a record entering a bucket is an insert there, staying is an update, leaving is a delete; a delete
/// (or a soft delete) leaves every bucket. A parent-rule row takes its parent's buckets as the state
/// stands at that change. When a record with descendants changes buckets, planning stops there: the
/// descendants move with a set-based step, and planning resumes after it on reloaded state.
/// </summary>
public sealed class BatchPlanner(BucketRuleSet rules, Dictionary<RecordKey, RecordState> state, IReadOnlyDictionary<ChangePosition, RuleOutput> functionOutputs)
{
    /// <summary>Rows with this column set are soft-deleted: they leave all their buckets.</summary>
    public const string SoftDeleteColumn = "deleted_at";

    /// <summary>Plans from <paramref name="index"/> up to and including the next set-based step, and moves the index past it.</summary>
    /// <param name="applied">Which changes were applied before (the partitions' applied positions).</param>
    public SegmentPlan PlanSegment(IReadOnlyList<StagedChange> changes, ref int index, AppliedPositions applied)
    {
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(applied);
        var plan = new SegmentPlan();
        while (index < changes.Count)
        {
            var staged = changes[index++];
            var change = staged.Change;
            var position = staged.Position;
            if (staged.FailureId is null && applied.Covers(staged))
            {
                plan.Skipped++;
                continue;
            }

            if (change.Operation == ChangeOperation.Truncate)
            {
                plan.Step = new Truncate(staged.Table, position);
                return plan;
            }

            var key = new RecordKey(staged.Table.SidecarName, change.RecordId);
            var current = StateOf(key);
            if (current.Position is { } last && position <= last)
            {
                // A replay; or, for a failure being replayed, a change the record has had since.
                if (staged.FailureId is { } obsolete)
                    plan.Obsolete.Add(obsolete);
                else
                    plan.Skipped++;
                continue;
            }

            if (Plan(plan, staged, key, current) is { } step)
            {
                plan.Step = step;
                return plan;
            }
        }

        return plan;
    }

    /// <summary>The keys whose state planning from <paramref name="index"/> reads: the changed records and their parents.</summary>
    public static IEnumerable<RecordKey> KeysNeeded(IReadOnlyList<StagedChange> changes, int index, BucketRuleSet rules)
    {
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(rules);
        for (var i = index; i < changes.Count; i++)
        {
            var (table, change, _) = changes[i];
            if (change.Operation == ChangeOperation.Truncate)
                continue;
            yield return new RecordKey(table.SidecarName, change.RecordId);
            if (rules.For(table) is ParentRule parent && change.NewRow is { } row && TryParentKey(parent, row) is { } parentKey)
                yield return parentKey;
        }
    }

    public static bool IsRemoval(RowChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return change.Operation == ChangeOperation.Delete
            || change.NewRow is null
            || change.NewRow.Any(c => c.Name == SoftDeleteColumn && c.Kind == ColumnValueKind.Text);
    }

    private Cascade? Plan(SegmentPlan plan, StagedChange staged, RecordKey key, RecordState current)
    {
        var change = staged.Change;
        var removal = IsRemoval(change);
        List<string> after;
        RecordKey? parent = current.Parent;
        try
        {
            after = removal ? [] : Clean(Place(staged, out parent));
        }
        catch (BucketRuleException failure)
        {
            // Kept with its payload; the record keeps its buckets and its position stays before this change.
            plan.Failures.Add(new RuleFailure(key.Table, key.RecordId, change.Operation, change.CommitLsn, change.ChangeIndex, failure.Message, change, staged.FailureId));
            return null;
        }

        var checksum = change.NewRow is { } row && change.Operation != ChangeOperation.Delete ? RowJson.Checksum(row) : current.Checksum;
        var read = change.Operation == ChangeOperation.Read;
        if (read && current.Exists && current.Removed == removal && current.Checksum == checksum && current.Parent == parent
            && current.Edges.Select(e => e.BucketId).Order(StringComparer.Ordinal).SequenceEqual(after.Order(StringComparer.Ordinal), StringComparer.Ordinal))
        {
            // A snapshot or backfill read of a record the sidecar tables already hold as it is: nothing to write.
            plan.Skipped++;
            return null;
        }

        var edges = new List<BucketEdge>(after.Count);
        foreach (var bucket in after)
        {
            var stays = current.Edges.FirstOrDefault(e => e.BucketId == bucket);
            // A read writes only differences: a bucket it stays in gets an update only when the data changed.
            if (!read || stays is null || stays.Checksum != checksum)
                plan.Changelog.Add(new ChangelogEntry(bucket, key.Table, key.RecordId, stays is null ? ChangeOperation.Insert : ChangeOperation.Update, change.CommitLsn, change.ChangeIndex));
            edges.Add(new BucketEdge(bucket, checksum, change.CommitLsn));
        }

        var leaves = current.Edges.Where(e => !after.Contains(e.BucketId, StringComparer.Ordinal))
            .Select(left => new ChangelogEntry(left.BucketId, key.Table, key.RecordId, ChangeOperation.Delete, change.CommitLsn, change.ChangeIndex)).ToList();

        var updated = new RecordState
        {
            Exists = change.Operation != ChangeOperation.Delete,
            Position = staged.Position,
            Removed = removal,
            Checksum = checksum,
            Parent = parent,
            HasChildren = current.HasChildren,
            Edges = edges,
            StoredBuckets = current.StoredBuckets,
        };
        state[key] = updated;
        plan.Touched[key] = updated;
        plan.Applied[key] = staged.Position;
        if (staged.FailureId is { } replayed)
            plan.Replayed.Add(replayed);
        if (parent is { } link && !removal)
            StateOf(link).HasChildren = true;

        var moved = current.Edges.Count != edges.Count || leaves.Count > 0;
        if (moved && current.HasChildren && rules.HasChildTables(staged.Table))
        {
            // In a bucket it leaves, the record goes after its descendants (a reader enforcing foreign
            // keys never sees a child without its parent); in one it enters, before them.
            return new Cascade(staged.Table, key, after, staged.Position, leaves);
        }

        plan.Changelog.AddRange(leaves);
        return null;
    }

    private IReadOnlyList<string> Place(StagedChange staged, out RecordKey? parentKey)
    {
        parentKey = null;
        var row = staged.Change.NewRow!;
        switch (rules.For(staged.Table))
        {
            case OwnerRule owner:
                return owner.BucketsFor(row);
            case FunctionRule function:
                var output = functionOutputs[staged.Position];
                return output.Error is null ? output.Buckets : throw new BucketRuleException($"Rule function {function.DisplayFunction} failed: {output.Error}");
            case ParentRule parent:
                var parentId = parent.ParentRecordId(row);
                if (parentId is null)
                    return parent.GlobalWhenNull ? [TableRule.GlobalBucket] : [];
                parentKey = new RecordKey(parent.Parent.SidecarName, parentId);
                var parentState = StateOf(parentKey.Value);
                if (!parentState.Exists)
                {
                    throw new BucketRuleException(
                        $"Its parent {parent.Parent} record {parentId} is not in the sidecar tables (not replicated yet, deleted, or itself not placed). Fix the data or the rule, then run synchro-bridge failures replay.");
                }

                return parentState.Edges.Select(e => e.BucketId).ToList();
            default:
                return [TableRule.GlobalBucket];
        }
    }

    /// <summary>Empty bucket ids and duplicates are dropped; more buckets than allowed is a failure.</summary>
    private List<string> Clean(IReadOnlyList<string> buckets)
    {
        var clean = buckets.Where(b => !string.IsNullOrWhiteSpace(b)).Distinct(StringComparer.Ordinal).ToList();
        return clean.Count <= rules.MaxBucketsPerRow
            ? clean
            : throw new BucketRuleException($"The rule placed the row in {clean.Count} buckets, more than Synchro:Buckets:MaxBucketsPerRow ({rules.MaxBucketsPerRow}). Narrow the rule, or raise the limit.");
    }

    private RecordState StateOf(RecordKey key)
    {
        if (!state.TryGetValue(key, out var found))
            state[key] = found = new RecordState();
        return found;
    }

    private static RecordKey? TryParentKey(ParentRule rule, IReadOnlyList<ColumnValue> row)
    {
        try
        {
            return rule.ParentRecordId(row) is { } id ? new RecordKey(rule.Parent.SidecarName, id) : null;
        }
        catch (BucketRuleException)
        {
            return null; // planning reports it
        }
    }
}

/// <summary>What a rule function returned for one change: its buckets, or its error.</summary>
public sealed record RuleOutput(IReadOnlyList<string> Buckets, string? Error);
