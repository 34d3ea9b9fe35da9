using System.Text;
using ChangePosition = Synchro.Contracts.ChangePosition;
using Synchro.Bridge.Buckets.Rules;
using Synchro.Bridge.Replication;

namespace Synchro.Bridge.Buckets;

/// <summary>
/// How changes are spread over apply partitions: each record goes to the partition its table and
/// record id hash to, so one consumer applies all of a record's changes in commit order. Tables
/// linked by a parent rule go whole to partition 0: a child is placed by its parent's state, and a
/// parent that moves carries its descendants along in one statement. The key names the layout in
/// the sidecar tables; positions recorded under one layout stay meaningful after a change of it.
/// </summary>
public sealed record ApplyLayout
{
    private readonly HashSet<string> _whole;

    public ApplyLayout(int partitions, IEnumerable<string> wholeTables)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        Partitions = partitions;
        _whole = partitions == 1 ? [] : wholeTables.ToHashSet(StringComparer.Ordinal);
        Key = partitions == 1 ? "1" : partitions + (_whole.Count == 0 ? "" : ":" + string.Join(",", _whole.Order(StringComparer.Ordinal)));
    }

    /// <summary>One partition: the source's applied position in sync_runs.</summary>
    public static ApplyLayout OnePartition { get; } = new(1, []);

    public int Partitions { get; }

    /// <summary>The partition count, then the tables that go whole to partition 0 (sidecar names), e.g. <c>4:public.orders,public.lines</c>.</summary>
    public string Key { get; }

    public bool IsSingle => Partitions == 1;

    /// <summary>The layout for the configured partition count and the tables the rules link.</summary>
    public static ApplyLayout For(int partitions, BucketRuleSet rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        var linked = rules.All.OfType<ParentRule>().SelectMany(r => new[] { r.Table.SidecarName, r.Parent.SidecarName });
        return new ApplyLayout(partitions, linked);
    }

    public static ApplyLayout Parse(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var colon = key.IndexOf(':', StringComparison.Ordinal);
        var partitions = int.Parse(colon < 0 ? key : key[..colon], System.Globalization.CultureInfo.InvariantCulture);
        return new ApplyLayout(partitions, colon < 0 ? [] : key[(colon + 1)..].Split(','));
    }

    public int PartitionOf(TableName table, string recordId) => PartitionOf(table.SidecarName, recordId);

    public int PartitionOf(string sidecarTable, string recordId)
    {
        if (Partitions == 1 || _whole.Contains(sidecarTable))
            return 0;
        // FNV-1a over the UTF-8 bytes of table, NUL, record id: stable across processes and versions,
        // unlike string.GetHashCode. Runs for every change in the slot reader, so without allocating.
        var hash = Fnv1a(2166136261u, sidecarTable);
        hash = (hash ^ 0) * 16777619u;
        return (int)(Fnv1a(hash, recordId) % (uint)Partitions);
    }

    private static uint Fnv1a(uint hash, string text)
    {
        Span<byte> buffer = stackalloc byte[256];
        var bytes = Encoding.UTF8.GetMaxByteCount(text.Length) <= buffer.Length ? buffer[..Encoding.UTF8.GetBytes(text, buffer)] : Encoding.UTF8.GetBytes(text);
        foreach (var b in bytes)
            hash = (hash ^ b) * 16777619u;
        return hash;
    }

    public bool Equals(ApplyLayout? other) => other is not null && Key == other.Key;

    public override int GetHashCode() => Key.GetHashCode(StringComparison.Ordinal);
}

/// <summary>
/// How far each partition of each layout has applied: a change is a replay when the partition that
/// owns its record, under any layout that recorded a position, applied it. Positions never run
/// ahead of what their partition applied, so one left over from an earlier layout is only low.
/// </summary>
public sealed class AppliedPositions(IReadOnlyDictionary<ApplyLayout, IReadOnlyDictionary<int, ChangePosition>> positions)
{
    public static AppliedPositions None { get; } = new(new Dictionary<ApplyLayout, IReadOnlyDictionary<int, ChangePosition>>());

    /// <summary>Everything up to <paramref name="position"/> applied by a single partition; nothing when null.</summary>
    public static AppliedPositions Through(ChangePosition? position) => position is { } through
        ? new(new Dictionary<ApplyLayout, IReadOnlyDictionary<int, ChangePosition>> { [ApplyLayout.OnePartition] = new Dictionary<int, ChangePosition> { [0] = through } })
        : None;

    public bool Covers(string sidecarTable, string recordId, ChangePosition position)
    {
        foreach (var (layout, partitions) in positions)
        {
            if (partitions.TryGetValue(layout.PartitionOf(sidecarTable, recordId), out var applied) && position <= applied)
                return true;
        }

        return false;
    }

    public bool Covers(StagedChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return Covers(change.Table.SidecarName, change.Change.RecordId, change.Position);
    }

    /// <summary>The position recorded for one partition of one layout.</summary>
    public ChangePosition? Of(ApplyLayout layout, int partition) =>
        positions.TryGetValue(layout, out var partitions) && partitions.TryGetValue(partition, out var applied) ? applied : null;
}
