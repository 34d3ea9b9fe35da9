using Synchro.Contracts;

namespace Synchro.Bridge.Buckets;

/// <summary>Where a change stands in the stream; orders changes and recognises replays.</summary>
public readonly record struct ChangePosition(ulong CommitLsn, int ChangeIndex) : IComparable<ChangePosition>
{
    public static ChangePosition Of(RowChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return new(change.CommitLsn, change.ChangeIndex);
    }

    public int CompareTo(ChangePosition other)
    {
        var byLsn = CommitLsn.CompareTo(other.CommitLsn);
        return byLsn != 0 ? byLsn : ChangeIndex.CompareTo(other.ChangeIndex);
    }

    public static bool operator <(ChangePosition left, ChangePosition right) => left.CompareTo(right) < 0;

    public static bool operator >(ChangePosition left, ChangePosition right) => left.CompareTo(right) > 0;

    public static bool operator <=(ChangePosition left, ChangePosition right) => left.CompareTo(right) <= 0;

    public static bool operator >=(ChangePosition left, ChangePosition right) => left.CompareTo(right) >= 0;
}

/// <summary>A record's membership in one bucket, with a checksum of its data and the LSN that wrote it.</summary>
public sealed record BucketEdge(string BucketId, long Checksum, ulong Lsn);

/// <summary>One row of sync_changelog.</summary>
public sealed record ChangelogEntry(string BucketId, string RecordId, ChangeOperation Operation, ulong CommitLsn, int ChangeIndex);

/// <summary>One row of sync_rule_failures.</summary>
public sealed record RuleFailure(string RecordId, ChangeOperation Operation, ulong CommitLsn, int ChangeIndex, string Error, RowChange Change);

/// <summary>What the sidecar tables hold now for the records of one change set (for a truncate: of the whole table).</summary>
public sealed class SidecarState
{
    public Dictionary<string, ChangePosition> Positions { get; } = new(StringComparer.Ordinal);

    /// <summary>The table's last applied TRUNCATE: every change of the table at or before it is a replay.</summary>
    public ChangePosition? TruncatedAt { get; set; }

    public Dictionary<string, List<BucketEdge>> Edges { get; } = new(StringComparer.Ordinal);
}

/// <summary>The writes that apply one change set: computed in memory, written in one transaction.</summary>
public sealed class SidecarPlan
{
    public List<ChangelogEntry> Changelog { get; } = [];

    /// <summary>Final edges of every record the set touched (empty: the record is in no bucket).</summary>
    public Dictionary<string, IReadOnlyList<BucketEdge>> Edges { get; } = new(StringComparer.Ordinal);

    /// <summary>Last applied change of every record the set touched.</summary>
    public Dictionary<string, ChangePosition> Positions { get; } = new(StringComparer.Ordinal);

    public List<RuleFailure> Failures { get; } = [];

    /// <summary>Changes skipped because they were applied before (a replay).</summary>
    public int Replayed { get; set; }

    /// <summary>Changelog rows written by set-based statements (a TRUNCATE), not listed in <see cref="Changelog"/>.</summary>
    public int SetBasedChangelogRows { get; set; }

    /// <summary>The change set belongs to a run older than the source's latest one, which re-reads it: nothing was written.</summary>
    public bool Superseded { get; set; }

    public int ChangelogRows => Changelog.Count + SetBasedChangelogRows;

    /// <summary>Adds what a later segment of the same change set planned.</summary>
    public void Add(SidecarPlan later)
    {
        ArgumentNullException.ThrowIfNull(later);
        Changelog.AddRange(later.Changelog);
        foreach (var (record, edges) in later.Edges)
            Edges[record] = edges;
        foreach (var (record, position) in later.Positions)
            Positions[record] = position;
        Failures.AddRange(later.Failures);
        Replayed += later.Replayed;
        SetBasedChangelogRows += later.SetBasedChangelogRows;
    }
}
