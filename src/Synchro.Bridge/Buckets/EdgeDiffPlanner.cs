using System.Security.Cryptography;
using System.Text;
using Synchro.Contracts;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// The edge diff of synchro, made replay-safe. Per change: a record entering a bucket is an insert
/// there, staying is an update, leaving is a delete; a delete (or a soft delete) leaves every bucket.
/// A change at or before the record's last applied position is a replay and is skipped, so the
/// same change set applied twice, or an old change after a newer one, changes nothing.
/// </summary>
public static class EdgeDiffPlanner
{
    /// <summary>Rows with this column set are soft-deleted: they leave all their buckets.</summary>
    public const string SoftDeleteColumn = "deleted_at";

    public static SidecarPlan Plan(IReadOnlyList<RowChange> changes, IBucketRule rule, SidecarState state)
    {
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(state);

        var plan = new SidecarPlan();
        foreach (var change in changes)
        {
            if (change.Operation == ChangeOperation.Truncate)
            {
                Truncate(plan, state, change);
                continue;
            }

            var position = ChangePosition.Of(change);
            if (LastApplied(plan, state, change.RecordId) is { } applied && position <= applied)
            {
                plan.Replayed++;
                continue;
            }

            plan.Positions[change.RecordId] = position;
            var before = CurrentEdges(plan, state, change.RecordId);

            IReadOnlyList<string> after;
            try
            {
                after = IsRemoval(change) ? [] : rule.BucketsFor(change.NewRow!);
            }
            catch (BucketRuleException failure)
            {
                // Quarantined with its payload; the record keeps the buckets it had.
                plan.Failures.Add(new RuleFailure(change.RecordId, change.Operation, change.CommitLsn, change.ChangeIndex, failure.Message, change));
                continue;
            }

            var checksum = after.Count == 0 ? 0 : Checksum(change.NewRow!);
            var edges = new List<BucketEdge>(after.Count);
            foreach (var bucket in after.Distinct(StringComparer.Ordinal))
            {
                var operation = before.Any(e => e.BucketId == bucket) ? ChangeOperation.Update : ChangeOperation.Insert;
                plan.Changelog.Add(new ChangelogEntry(bucket, change.RecordId, operation, change.CommitLsn, change.ChangeIndex));
                edges.Add(new BucketEdge(bucket, checksum, change.CommitLsn));
            }

            foreach (var left in before.Where(e => !after.Contains(e.BucketId, StringComparer.Ordinal)))
                plan.Changelog.Add(new ChangelogEntry(left.BucketId, change.RecordId, ChangeOperation.Delete, change.CommitLsn, change.ChangeIndex));

            plan.Edges[change.RecordId] = edges;
        }

        return plan;
    }

    /// <summary>Every record of the table leaves every bucket it is in (the state holds all of the table's edges).</summary>
    private static void Truncate(SidecarPlan plan, SidecarState state, RowChange change)
    {
        var position = ChangePosition.Of(change);
        var records = state.Edges.Keys.Concat(plan.Edges.Keys).Distinct(StringComparer.Ordinal).ToList();
        foreach (var recordId in records)
        {
            if (LastApplied(plan, state, recordId) is { } applied && position <= applied)
                continue;
            foreach (var edge in CurrentEdges(plan, state, recordId))
                plan.Changelog.Add(new ChangelogEntry(edge.BucketId, recordId, ChangeOperation.Delete, change.CommitLsn, change.ChangeIndex));
            plan.Edges[recordId] = [];
            plan.Positions[recordId] = position;
        }
    }

    private static ChangePosition? LastApplied(SidecarPlan plan, SidecarState state, string recordId) =>
        plan.Positions.TryGetValue(recordId, out var planned) ? planned
        : state.Positions.TryGetValue(recordId, out var stored) && !(state.TruncatedAt > stored) ? stored
        : state.TruncatedAt;

    private static IReadOnlyList<BucketEdge> CurrentEdges(SidecarPlan plan, SidecarState state, string recordId) =>
        plan.Edges.TryGetValue(recordId, out var planned) ? planned
        : state.Edges.TryGetValue(recordId, out var stored) ? stored
        : [];

    private static bool IsRemoval(RowChange change) =>
        change.Operation == ChangeOperation.Delete
        || change.NewRow is null
        || change.NewRow.Any(c => c.Name == SoftDeleteColumn && c.Kind == ColumnValueKind.Text);

    /// <summary>A stable 64-bit checksum of the row's data, so a client can tell whether its copy is current.</summary>
    public static long Checksum(IReadOnlyList<ColumnValue> row)
    {
        ArgumentNullException.ThrowIfNull(row);
        var text = new StringBuilder();
        foreach (var column in row)
            text.Append(column.Name).Append('\u001f').Append((int)column.Kind).Append('\u001f').Append(column.Text).Append('\u001e');
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()), hash);
        return BitConverter.ToInt64(hash);
    }
}
