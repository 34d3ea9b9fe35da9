using MassTransit;
using Synchro.Contracts;

namespace Synchro.Subscriptions;

/// <summary>
/// Skipping replays. The bridge delivers every change at least once: after a restart it re-reads
/// what was not yet acknowledged, so a change set can arrive again. Keep, per table, the
/// <see cref="ChangePosition"/> of the last change you applied, in the same transaction as what you
/// wrote; then apply only <see cref="ChangesAfter(ChangeSet, ChangeGeneration, Checkpoint?)"/> it. Per table, because the change sets of
/// different tables are published concurrently and may arrive in either order.
/// Positions compare only within one generation of the source (a restore into a new cluster or a
/// promoted standby starts a new one, and LSNs may go backwards): store a <see cref="Checkpoint"/>,
/// the generation with the position, and use the overloads that take the <see cref="ChangeGeneration"/>
/// of the message (<see cref="ChangeGeneration.Of"/>).
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
    /// only when ChangesAfter gave you something to apply: a replayed set's position is
    /// older than your checkpoint.
    /// </summary>
    public static ChangePosition LastPosition(this ChangeSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return set.Changes.Count > 0 ? set.Changes[^1].Position : throw new InvalidOperationException("A change set always holds at least one change.");
    }

    /// <summary>
    /// The set's changes after <paramref name="checkpoint"/>, in commit order, across generations: a
    /// set of a newer generation resumes after the smaller of the checkpoint and the generation's
    /// start (what was applied past it belongs to a history that is gone); a set of an older
    /// generation than the checkpoint's has nothing to apply (it was queued before the new one began).
    /// </summary>
    public static IEnumerable<Change> ChangesAfter(this ChangeSet set, ChangeGeneration generation, Checkpoint? checkpoint)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (checkpoint is not { } applied)
            return set.Changes;
        if (generation.Number < applied.Generation)
            return [];
        var after = generation.Number == applied.Generation || applied.Position < generation.StartPosition ? applied.Position : generation.StartPosition;
        return set.Changes.Where(c => c.Position > after);
    }

    /// <summary>The checkpoint to store once the set is applied (see <see cref="ChangesAfter(ChangeSet, ChangeGeneration, Checkpoint?)"/>).</summary>
    public static Checkpoint LastCheckpoint(this ChangeSet set, ChangeGeneration generation) => new(generation.Number, set.LastPosition());
}

/// <summary>The generation and position of the last change applied: what a subscriber stores per table.</summary>
public readonly record struct Checkpoint(long Generation, ChangePosition Position);

/// <summary>
/// The source's generation a message was published in, from its <c>Synchro-Generation</c> and
/// <c>Synchro-Generation-Start</c> headers.
/// </summary>
/// <param name="Number">0 for the source's first history; one more at every new one.</param>
/// <param name="Start">Where this generation's history leaves the previous one's (<c>0/0</c>: nothing shared).</param>
public readonly record struct ChangeGeneration(long Number, Lsn Start)
{
    /// <summary>Every change of the earlier history up to <see cref="Start"/>: (Start, any change index).</summary>
    public ChangePosition StartPosition => new(Start, int.MaxValue);

    /// <summary>Reads the headers of a received message; a bridge before generations sent none: generation 0.</summary>
    public static ChangeGeneration Of(ConsumeContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var number = context.Headers.Get<long>(WireNames.GenerationHeader) ?? 0;
        var start = context.Headers.Get<string>(WireNames.GenerationStartHeader) is { } text ? Lsn.Parse(text) : default;
        return new ChangeGeneration(number, start);
    }
}
