using Synchro.Bridge.Buckets;
using Synchro.Bridge.Changes;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;
using ChangePosition = Synchro.Contracts.ChangePosition;

namespace Synchro.Bridge.Tests.Buckets;

public sealed class ApplyLayoutTests
{
    private static readonly RelationSchema Todos = new(1, new TableName("public", "todos"), [new RelationColumn("id", "bigint", IsKey: true)]);
    private static readonly RelationSchema Lists = new(2, new TableName("public", "lists"), [new RelationColumn("id", "bigint", IsKey: true)]);

    private static readonly string[] FirstIds = ["1", "2", "3", "4"];

    private static ChangePosition At(ulong lsn, int index = 0) => ChangePositions.At(lsn, index);

    [Fact]
    public void a_record_always_hashes_to_the_same_partition_and_records_spread_over_all_of_them()
    {
        var layout = new ApplyLayout(4, []);
        // Fixed values: the hash must not change between processes or versions, or positions recorded under a layout would point at the wrong partition.
        Assert.Equal([0, 1, 2, 3], FirstIds.Select(id => layout.PartitionOf("public.todos", id)));
        var counts = Enumerable.Range(0, 4_000).GroupBy(i => layout.PartitionOf("public.todos", i.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, counts.Count);
        Assert.All(counts.Values, n => Assert.InRange(n, 800, 1_200));
    }

    [Fact]
    public void tables_linked_by_a_parent_rule_go_whole_to_partition_0_and_the_key_names_them()
    {
        var layout = new ApplyLayout(4, ["public.lists", "public.cards"]);
        Assert.Equal("4:public.cards,public.lists", layout.Key);
        Assert.All(Enumerable.Range(0, 100), i => Assert.Equal(0, layout.PartitionOf("public.cards", i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        Assert.Equal(layout, ApplyLayout.Parse(layout.Key));
        Assert.Equal("1", new ApplyLayout(1, ["public.lists"]).Key);
    }

    [Fact]
    public void a_change_is_a_replay_when_the_partition_owning_its_record_under_any_recorded_layout_applied_it()
    {
        var two = new ApplyLayout(2, []);
        var four = new ApplyLayout(4, []);
        var id = Enumerable.Range(0, 100).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))
            .First(i => four.PartitionOf("public.todos", i) == 3); // so partition 1 of two (a hash mod 4 of 3 is odd)
        var applied = new AppliedPositions(new Dictionary<ApplyLayout, IReadOnlyDictionary<int, ChangePosition>>
        {
            [two] = new Dictionary<int, ChangePosition> { [1] = At(500), [0] = At(100) },
            [four] = new Dictionary<int, ChangePosition> { [3] = At(200), [0] = At(900) },
        });

        Assert.True(applied.Covers("public.todos", id, At(500)));  // partition 1 of two applied it
        Assert.False(applied.Covers("public.todos", id, At(501))); // nobody owning the record did, whatever partition 0 of four reached
        Assert.Equal(At(200), applied.Of(four, 3));
        Assert.Null(applied.Of(four, 1));
        Assert.False(AppliedPositions.None.Covers("public.todos", id, At(1)));
    }

    [Fact]
    public void a_batch_is_cut_into_parts_per_partition_each_naming_its_partitions_previous_change()
    {
        var layout = new ApplyLayout(2, []);
        var batcher = new ChangeBatcher("slot", Guid.Empty, new BatchingOptions { MaxBatchChanges = 100, MaxChangesPerSet = 100 }, layout: layout);
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        foreach (var id in Enumerable.Range(1, 10))
            batcher.Add(new RowChanged(Todos, ChangeOperation.Insert, id.ToString(System.Globalization.CultureInfo.InvariantCulture), [ColumnValue.Of("id", "int8", id.ToString(System.Globalization.CultureInfo.InvariantCulture))], null, null));
        batcher.Add(new TransactionCommitted(1000, 1010));
        var first = batcher.Cut()!;

        Assert.False(first.Barrier);
        Assert.Equal([0, 1], first.BucketParts.Select(p => p.Partition));
        Assert.All(first.BucketParts, p => Assert.Equal("2", p.Layout));
        foreach (var part in first.BucketParts)
            Assert.All(part.Sets.SelectMany(s => s.Changes), c => Assert.Equal(part.Partition, layout.PartitionOf(Todos.Table, c.RecordId)));
        Assert.Equal(10, first.BucketParts.Sum(p => p.Sets.Sum(s => s.Changes.Count)));

        batcher.Add(new TransactionBegun(2, 2000, Changes.CommittedAt));
        batcher.Add(new RowChanged(Todos, ChangeOperation.Update, "1", [ColumnValue.Of("id", "int8", "1")], null, null));
        batcher.Add(new TransactionCommitted(2000, 2010));
        var second = Assert.Single(batcher.Cut()!.BucketParts);
        var lastOfPartition = first.BucketParts.Single(p => p.Partition == second.Partition).Sets.SelectMany(s => s.Changes).MaxBy(c => c.ChangeIndex)!;
        Assert.Equal((lastOfPartition.CommitLsn, lastOfPartition.ChangeIndex), (second.PreviousCommitLsn, second.PreviousChangeIndex));
    }

    [Fact]
    public void a_batch_with_a_truncate_goes_whole_to_partition_0_as_a_barrier()
    {
        var batcher = new ChangeBatcher("slot", Guid.Empty, new BatchingOptions(), layout: new ApplyLayout(4, []));
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        foreach (var id in Enumerable.Range(1, 8))
            batcher.Add(new RowChanged(Lists, ChangeOperation.Insert, id.ToString(System.Globalization.CultureInfo.InvariantCulture), [ColumnValue.Of("id", "int8", id.ToString(System.Globalization.CultureInfo.InvariantCulture))], null, null));
        batcher.Add(new TablesTruncated([Todos]));
        batcher.Add(new TransactionCommitted(1000, 1010));
        var batch = batcher.Cut()!;

        Assert.True(batch.Barrier);
        var part = Assert.Single(batch.BucketParts);
        Assert.Equal(0, part.Partition);
        Assert.True(part.Barrier);
        Assert.Equal(9, part.Sets.Sum(s => s.Changes.Count));
    }
}
