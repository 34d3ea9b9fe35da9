using System.Text;
using Synchro.Bridge.Changes;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Replication.Snapshots;

namespace Synchro.Bridge.Tests.Replication;

public sealed class WatermarkChunksTests
{
    [Theory]
    [InlineData("100:105:101,103", 99u, true)]
    [InlineData("100:105:101,103", 101u, false)]
    [InlineData("100:105:101,103", 102u, true)]
    [InlineData("100:105:101,103", 105u, false)]
    [InlineData("100:100:", 100u, false)]
    public void a_snapshot_sees_transactions_committed_before_it(string snapshot, uint transaction, bool seen) =>
        Assert.Equal(seen, TransactionSnapshot.Parse(snapshot).Sees(transaction));

    [Fact]
    public void snapshot_transaction_ids_are_compared_modulo_2_to_the_32_as_postgresql_does()
    {
        // Epoch 1 (xid8 = 2^32 + n): the stream carries the low 32 bits.
        var snapshot = TransactionSnapshot.Parse($"{(1UL << 32) + 10}:{(1UL << 32) + 20}:");
        Assert.True(snapshot.Sees(5));
        Assert.True(snapshot.Sees(uint.MaxValue - 3)); // from the epoch before
        Assert.False(snapshot.Sees(25));
    }

    [Fact]
    public void only_a_watermark_of_this_source_and_run_closes_a_chunk()
    {
        var run = Guid.NewGuid();
        var chunks = new WatermarkChunks("src", run);
        var other = new WatermarkChunks("src", Guid.NewGuid());
        chunks.Submit(Chunk(1, 0, "100:100:", "1", "2"));

        Assert.Null(chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(other.Watermark(1, 0))));
        Assert.Null(chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(new WatermarkChunks("elsewhere", run).Watermark(1, 0))));
        Assert.Null(chunks.Reached("app.prefix", Encoding.UTF8.GetBytes(chunks.Watermark(1, 0))));
        var reached = chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(chunks.Watermark(1, 0)));
        Assert.Equal(2, reached!.Value.Rows.Count);
    }

    [Fact]
    public async Task rows_changed_by_transactions_the_chunk_did_not_see_are_left_to_the_stream()
    {
        var chunks = new WatermarkChunks("src", Guid.NewGuid());
        chunks.Track(Table);
        chunks.Observe(90, Table, "1");  // seen by the chunk's snapshot: its row already reflects it
        chunks.Observe(101, Table, "2"); // in progress for the snapshot: newer than the row read
        chunks.Observe(120, Table, "3"); // after the snapshot
        chunks.Observe(121, new TableName("public", "other"), "4");
        var outcome = chunks.Submit(Chunk(1, 0, "100:110:101", "1", "2", "3", "4"));

        var reached = chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(chunks.Watermark(1, 0)));

        Assert.Equal(["1", "4"], reached!.Value.Rows.Select(r => r[0].Text!));
        Assert.Equal(new ChunkOutcome(2, 2), await outcome);
    }

    [Fact]
    public async Task a_chunk_whose_snapshot_misses_a_transaction_streamed_before_tracking_began_is_read_again()
    {
        var chunks = new WatermarkChunks("src", Guid.NewGuid());
        chunks.Committed(104); // in WAL and in the stream, still in progress for the next snapshot
        chunks.Committed(90);
        chunks.Track(Table);
        var first = chunks.Submit(Chunk(1, 0, "100:110:104", "1"));
        Assert.Null(chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(chunks.Watermark(1, 0))));
        Assert.Same(ChunkOutcome.Retry, await first);

        var second = chunks.Submit(Chunk(1, 1, "105:110:", "1"));
        Assert.Single(chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(chunks.Watermark(1, 1)))!.Value.Rows);
        Assert.Equal(new ChunkOutcome(1, 0), await second);
    }

    [Fact]
    public async Task a_truncate_the_chunk_did_not_see_lets_no_row_of_it_in_and_the_job_moves_on()
    {
        var chunks = new WatermarkChunks("src", Guid.NewGuid());
        chunks.Track(Table);
        var outcome = chunks.Submit(Chunk(1, 0, "100:110:105", "1", "2"));
        chunks.Observe(105, Table, null);

        var reached = chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(chunks.Watermark(1, 0)));

        // Every row read predates the TRUNCATE the stream already carries: none enters, and the
        // progress is recorded, so a TRUNCATE every few moments cannot make the chunk retry for ever.
        Assert.Empty(reached!.Value.Rows);
        Assert.Empty(reached.Value.Gone);
        Assert.Equal(new ChunkOutcome(0, 2), await outcome);

        var next = chunks.Submit(Chunk(1, 1, "120:130:125", "3"));
        chunks.Observe(125, Table, null);
        Assert.Empty(chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(chunks.Watermark(1, 1)))!.Value.Rows);
        Assert.Equal(new ChunkOutcome(0, 1), await next);
    }

    [Fact]
    public async Task a_transaction_too_large_to_track_by_key_that_the_chunk_did_not_see_makes_it_read_again()
    {
        var chunks = new WatermarkChunks("src", Guid.NewGuid());
        chunks.Track(Table);
        var outcome = chunks.Submit(Chunk(1, 0, "100:110:105", "1"));
        for (var key = 0; key <= 50_000; key++)
            chunks.Observe(105, Table, key.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.Null(chunks.Reached(WatermarkChunks.Prefix, Encoding.UTF8.GetBytes(chunks.Watermark(1, 0))));
        Assert.Same(ChunkOutcome.Retry, await outcome);
    }

    [Fact]
    public void a_catch_up_backlog_of_transactions_every_chunk_sees_is_not_tracked()
    {
        var chunks = new WatermarkChunks("src", Guid.NewGuid());
        chunks.Track(Table);
        chunks.Observe(7, Table, "before the first chunk");
        _ = chunks.Submit(Chunk(1, 0, "300000:300000:", "1"));
        Assert.Equal(0, chunks.TrackedTransactions(Table)); // the first chunk's snapshot sees it

        // The stream far behind the backfill: 200,000 transactions committed before the chunk was read.
        for (uint transaction = 10; transaction < 200_010; transaction++)
            chunks.Observe(transaction, Table, "k" + transaction);
        Assert.Equal(0, chunks.TrackedTransactions(Table));

        // Only one the snapshot does not see is kept, until a watermark shows it seen.
        chunks.Observe(300_001, Table, "2");
        Assert.Equal(1, chunks.TrackedTransactions(Table));
    }

    [Fact]
    public void a_snapshot_reads_every_parent_table_before_its_children()
    {
        var lists = new TableName("public", "lists");
        var cards = new TableName("public", "cards");
        var comments = new TableName("public", "comments");
        var rules = new Synchro.Bridge.Buckets.Rules.BucketRuleSet(
            [new Synchro.Bridge.Buckets.Rules.ParentRule(comments, cards, ["card_id"], GlobalWhenNull: false),
             new Synchro.Bridge.Buckets.Rules.ParentRule(cards, lists, ["list_id"], GlobalWhenNull: false),
             new Synchro.Bridge.Buckets.Rules.OwnerRule(lists, "user_id", "user", GlobalWhenNull: true),
             new Synchro.Bridge.Buckets.Rules.GlobalRule(Table)], maxBucketsPerRow: 10);

        Assert.Equal([lists, cards, comments, Table], SnapshotRunner.ParentsFirst([comments, cards, lists, Table], rules));
        Assert.Equal([cards, comments], SnapshotRunner.ParentsFirst([comments, cards], rules)); // a parent not configured counts as a root
    }

    [Fact]
    public void a_chunk_of_large_rows_is_cut_to_its_share_of_the_byte_budget_but_holds_at_least_one_row()
    {
        ColumnValue[] Row(int characters) => [ColumnValue.Of("id", "int8", "1"), ColumnValue.Of("body", "text", new string('x', characters))];
        var rows = new List<ColumnValue[]> { Row(1000), Row(1000), Row(1000) };
        var one = 128 + Synchro.Bridge.Replication.DecodedEvent.SizeOf(rows[0]);

        Assert.Equal((2, 2 * one), SnapshotRunner.Fit(rows, 2 * one + one / 2));
        Assert.Equal((3, 3 * one), SnapshotRunner.Fit(rows, 10 * one));
        Assert.Equal((1, one), SnapshotRunner.Fit(rows, 10)); // one row always goes, whatever its size
    }

    private static readonly TableName Table = new("public", "todos");

    private static PendingChunk Chunk(long job, int chunk, string snapshot, params string[] ids)
    {
        var schema = new RelationSchema(1, Table, [new RelationColumn("id", "int8", true), new RelationColumn("title", "text", false)]);
        var reader = TableReaderFor(schema);
        var rows = ids.Select(id => new[] { ColumnValue.Of("id", "int8", id), ColumnValue.Of("title", "text", "t") }).ToList();
        return new PendingChunk(job, chunk, reader, rows, TransactionSnapshot.Parse(snapshot), Publish: true, Done: false, Bytes: 0);
    }

    private static TableReader TableReaderFor(RelationSchema schema) => TableReader.For(schema);
}
