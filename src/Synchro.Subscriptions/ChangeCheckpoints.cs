using Synchro.Contracts;

namespace Synchro.Subscriptions;

/// <summary>
/// Skipping replays. The bridge delivers every change at least once: after a restart it re-reads
/// what was not yet acknowledged, so a change set can arrive again. Keep, per table, the
/// <see cref="ChangePosition"/> of the last change you applied, in the same transaction as what you
/// wrote; then apply only <see cref="ChangesAfter"/> it. Per table, because the change sets of
/// different tables are published concurrently and may arrive in either order.
/// </summary>
public static class ChangeCheckpoints
{
    /// <summary>The key to store a checkpoint under: <c>source.schema.table</c> (the set's routing key).</summary>
    public static string CheckpointKey(this ChangeSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return WireNames.RoutingKey(set.Source, set.Schema, set.Table);
    }

    /// <summary>The set's changes after <paramref name="checkpoint"/>, in commit order; all of them when there is none yet.</summary>
    public static IEnumerable<Change> ChangesAfter(this ChangeSet set, ChangePosition? checkpoint)
    {
        ArgumentNullException.ThrowIfNull(set);
        return checkpoint is { } applied ? set.Changes.Where(c => c.Position > applied) : set.Changes;
    }

    /// <summary>
    /// The position of the set's last change: the checkpoint to store once the set is applied. Store it
    /// only when <see cref="ChangesAfter"/> gave you something to apply: a replayed set's position is
    /// older than your checkpoint.
    /// </summary>
    public static ChangePosition LastPosition(this ChangeSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return set.Changes.Count > 0 ? set.Changes[^1].Position : throw new InvalidOperationException("A change set always holds at least one change.");
    }
}
