using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;
using Synchro.Contracts;
using ChangeOperation = Synchro.Bridge.Changes.ChangeOperation;

namespace Synchro.Bridge.Buckets;

/// <summary>Where a change stands in the stream (<see cref="ChangePosition"/>, the subscriber contract's): orders changes and recognises replays.</summary>
internal static class ChangePositions
{
    public static ChangePosition Of(RowChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return new(new Contracts.Lsn(change.CommitLsn), change.ChangeIndex);
    }

    public static ChangePosition At(ulong commitLsn, int changeIndex) => new(new Contracts.Lsn(commitLsn), changeIndex);
}

/// <summary>A record in the sidecar tables: its table's sidecar name and its record id.</summary>
public readonly record struct RecordKey(string Table, string RecordId);

/// <summary>A record's membership in one bucket, with the checksum of its data and the LSN that wrote it.</summary>
public sealed record BucketEdge(string BucketId, int? Checksum, ulong Lsn);

/// <summary>One row of sync_changelog.</summary>
public sealed record ChangelogEntry(string BucketId, string Table, string RecordId, ChangeOperation Operation, ulong CommitLsn, int ChangeIndex);

/// <summary>A change a rule could not place (one row of sync_rule_failures).</summary>
/// <param name="StoredId">The failure's id when it is being replayed from sync_rule_failures.</param>
public sealed record RuleFailure(string Table, string RecordId, ChangeOperation Operation, ulong CommitLsn, int ChangeIndex, string Error, RowChange Change, long? StoredId = null);

/// <summary>One change to apply, with its table; a batch's changes are applied in commit order across tables.</summary>
/// <param name="FailureId">Set when the change is replayed from sync_rule_failures.</param>
public sealed record StagedChange(TableName Table, RowChange Change, long? FailureId = null)
{
    public ChangePosition Position => ChangePositions.Of(Change);
}

/// <summary>What the sidecar tables say about one record, as far as the bucket rules need it.</summary>
public sealed class RecordState
{
    /// <summary>The record is replicated and not deleted (it has a position row, or edges).</summary>
    public bool Exists { get; set; }

    /// <summary>The last change applied to the record.</summary>
    public ChangePosition? Position { get; set; }

    /// <summary>Deleted or soft-deleted: in no bucket, and its descendants neither.</summary>
    public bool Removed { get; set; }

    /// <summary>Checksum of the record's last row, kept while it is in no bucket so a cascade can bring it back.</summary>
    public int? Checksum { get; set; }

    /// <summary>The parent record whose buckets this record takes (parent rule).</summary>
    public RecordKey? Parent { get; set; }

    /// <summary>Some record names this one as its parent.</summary>
    public bool HasChildren { get; set; }

    public IReadOnlyList<BucketEdge> Edges { get; set; } = [];

    /// <summary>The buckets bucket_edges holds for the record now: writing the record changes only the difference.</summary>
    public IReadOnlyList<string> StoredBuckets { get; set; } = [];
}

/// <summary>Work the planner cannot do row by row: it is done in SQL at its place in the stream, whatever the number of records.</summary>
public abstract record SetBasedStep(TableName Table, ChangePosition At);

/// <summary>Every live descendant of the record moves to the record's new buckets (none: it was removed).</summary>
/// <param name="RootLeaves">The record's own deletes from the buckets it leaves, written after its descendants'.</param>
public sealed record Cascade(TableName Table, RecordKey Root, IReadOnlyList<string> Buckets, ChangePosition At, IReadOnlyList<ChangelogEntry> RootLeaves) : SetBasedStep(Table, At);

/// <summary>Every record of the table, and every live descendant of one, leaves every bucket.</summary>
public sealed record Truncate(TableName Table, ChangePosition At) : SetBasedStep(Table, At);

/// <summary>The row-by-row writes planned up to the next set-based step (or the end of the changes).</summary>
public sealed class SegmentPlan
{
    public List<ChangelogEntry> Changelog { get; } = [];

    /// <summary>Final state of every record the segment changed (its edges replace the stored ones; not Exists: the record's rows are removed).</summary>
    public Dictionary<RecordKey, RecordState> Touched { get; } = [];

    public List<RuleFailure> Failures { get; } = [];

    /// <summary>Changes applied, per record the last one: earlier open failures of the record are superseded by it.</summary>
    public Dictionary<RecordKey, ChangePosition> Applied { get; } = [];

    /// <summary>Failures being replayed that applied now.</summary>
    public List<long> Replayed { get; } = [];

    /// <summary>Failures being replayed whose record changed after them: nothing to do.</summary>
    public List<long> Obsolete { get; } = [];

    /// <summary>Changes skipped because they were applied before.</summary>
    public int Skipped { get; set; }

    public SetBasedStep? Step { get; set; }

    public bool HasWrites => Changelog.Count > 0 || Touched.Count > 0 || Failures.Count > 0 || Replayed.Count > 0 || Obsolete.Count > 0;
}

/// <summary>What applying a batch (or replaying failures) did.</summary>
public sealed class ApplyOutcome
{
    /// <summary>The batch belongs to a run older than the source's latest one, which re-reads it: nothing was written.</summary>
    public bool Superseded { get; set; }

    /// <summary>The batch was read on another timeline than the database's (see <see cref="ChangeBatch.Timeline"/>): the timeline it is on now; nothing was written.</summary>
    public uint? LeftTimeline { get; set; }

    /// <summary>
    /// The part before this one was never applied (it was lost, or dropped as undeliverable): applying
    /// this one would move the applied position past it. Nothing was written; the slot reader re-reads both.
    /// </summary>
    public bool PreviousMissing { get; set; }

    public int Changes { get; set; }

    public int ChangelogRows { get; set; }

    /// <summary>Changes skipped because they were applied before.</summary>
    public int Skipped { get; set; }

    public List<RuleFailure> Failures { get; } = [];

    public int FailuresReplayed { get; set; }

    public int FailuresObsolete { get; set; }
}
