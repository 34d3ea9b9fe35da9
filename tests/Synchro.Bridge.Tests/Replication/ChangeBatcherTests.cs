using Synchro.Bridge.Hosting;
using Synchro.Bridge.Replication;
using Synchro.Bridge.Changes;

namespace Synchro.Bridge.Tests.Replication;

public sealed class ChangeBatcherTests
{
    private static readonly RelationSchema Todos = Relation("todos");
    private static readonly RelationSchema Orders = Relation("orders");

    private static RelationSchema Relation(string name) =>
        new(1, new TableName("public", name), [new RelationColumn("id", "bigint", IsKey: true), new RelationColumn("title", "text", IsKey: false)]);

    private static ChangeBatcher Batcher(int maxBatchChanges = 100, int maxChangesPerSet = 100) =>
        new("slot", Guid.Empty, new BatchingOptions { MaxBatchChanges = maxBatchChanges, MaxChangesPerSet = maxChangesPerSet });

    private static RowChanged Row(RelationSchema table, string id, string? oldId = null) =>
        new(table, ChangeOperation.Update, id, [ColumnValue.Of("id", "int8", id)], oldId is null ? null : [ColumnValue.Of("id", "int8", oldId)], oldId);

    [Fact]
    public void a_backfill_chunk_joins_its_watermarks_transaction_without_the_rows_a_newer_change_in_the_stream_carries()
    {
        var run = Guid.NewGuid();
        var watermarks = new Synchro.Bridge.Replication.Snapshots.WatermarkChunks("slot", run);
        var batcher = new ChangeBatcher("slot", run, new BatchingOptions(), watermarks);
        watermarks.Track(Todos.Table);
        var reader = Synchro.Bridge.Replication.Snapshots.TableReader.For(Todos);
        ColumnValue[] Existing(string id) => [ColumnValue.Of("id", "bigint", id), ColumnValue.Of("title", "text", "old")];
        // The chunk's snapshot (xmin 50, xmax 60) did not see transaction 55.
        _ = watermarks.Submit(new Synchro.Bridge.Replication.Snapshots.PendingChunk(7, 0, reader, [Existing("1"), Existing("2")],
            Synchro.Bridge.Replication.Snapshots.TransactionSnapshot.Parse("50:60:55"), Publish: false, Done: true, Bytes: 100));
        batcher.Add(new TransactionBegun(55, 1000, Changes.CommittedAt));
        batcher.Add(Row(Todos, "2"));
        batcher.Add(new TransactionCommitted(1000, 1010));
        batcher.Add(new TransactionBegun(61, 2000, Changes.CommittedAt));
        batcher.Add(new MessageEmitted(Synchro.Bridge.Replication.Snapshots.WatermarkChunks.Prefix, System.Text.Encoding.UTF8.GetBytes(watermarks.Watermark(7, 0)), true, 1990));
        batcher.Add(new TransactionCommitted(2000, 2010));

        var batch = batcher.Cut()!;

        // Row 2 stays with the stream's newer change; row 1 is read in the watermark's transaction.
        Assert.Equal([(1000UL, 0, ChangeOperation.Update, "2"), (2000UL, 0, ChangeOperation.Read, "1")],
            batch.BucketParts.SelectMany(p => p.Sets).SelectMany(s => s.Changes).Select(c => (c.CommitLsn, c.ChangeIndex, c.Operation, c.RecordId)));
        // A rebuild's reads are for the bucket consumer only; the watermark itself is never published.
        Assert.Equal(["2"], batch.Parts.SelectMany(p => p.Changes).Select(c => c.RecordId));
        Assert.Empty(batch.Messages);
        // The chunk covered keys up to 2; its budget goes with the batch, given back once it is confirmed.
        var progress = Assert.Single(batch.Progress);
        Assert.Equal((7L, "2", 2, true), (progress.JobId, progress.LastKey!.Single(), progress.Rows, progress.Done));
        Assert.Equal(Row(Todos, "2").Bytes + 100, batch.Bytes);
    }

    [Fact]
    public async Task a_chunk_that_missed_a_truncate_in_the_stream_adds_no_row_and_its_job_moves_on()
    {
        var run = Guid.NewGuid();
        var watermarks = new Synchro.Bridge.Replication.Snapshots.WatermarkChunks("slot", run);
        var batcher = new ChangeBatcher("slot", run, new BatchingOptions(), watermarks);
        watermarks.Track(Todos.Table);
        var outcome = watermarks.Submit(new Synchro.Bridge.Replication.Snapshots.PendingChunk(7, 0, Synchro.Bridge.Replication.Snapshots.TableReader.For(Todos),
            [[ColumnValue.Of("id", "bigint", "1"), ColumnValue.Of("title", "text", "old")]],
            Synchro.Bridge.Replication.Snapshots.TransactionSnapshot.Parse("50:60:55"), Publish: true, Done: true, Bytes: 100));
        batcher.Add(new TransactionBegun(55, 1000, Changes.CommittedAt));
        batcher.Add(new TablesTruncated([Todos]));
        batcher.Add(new TransactionCommitted(1000, 1010));
        batcher.Add(new TransactionBegun(61, 2000, Changes.CommittedAt));
        batcher.Add(new MessageEmitted(Synchro.Bridge.Replication.Snapshots.WatermarkChunks.Prefix, System.Text.Encoding.UTF8.GetBytes(watermarks.Watermark(7, 0)), true, 1990));
        batcher.Add(new TransactionCommitted(2000, 2010));

        var batch = batcher.Cut()!;

        Assert.Equal([ChangeOperation.Truncate], batch.Parts.SelectMany(p => p.Changes).Select(c => c.Operation));
        // The TRUNCATE removed every row the chunk read: none enters, the job moves past the chunk's keys.
        Assert.Equal((7L, 1, true), batch.Progress.Select(p => (p.JobId, p.Rows, p.Done)).Single());
        Assert.Equal(128 + 100, batch.Bytes); // the truncate's and the chunk's, given back once the batch is confirmed
        Assert.Equal(new Synchro.Bridge.Replication.Snapshots.ChunkOutcome(0, 1), await outcome);
    }

    [Fact]
    public void changes_are_numbered_inside_each_transaction_and_grouped_per_table()
    {
        var batcher = Batcher();
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        batcher.Add(Row(Todos, "1"));
        batcher.Add(Row(Orders, "9"));
        batcher.Add(Row(Todos, "2"));
        batcher.Add(new TransactionCommitted(1000, 1010));
        batcher.Add(new TransactionBegun(2, 2000, Changes.CommittedAt));
        batcher.Add(Row(Todos, "1"));
        batcher.Add(new TransactionCommitted(2000, 2010));

        var batch = batcher.Cut();

        Assert.NotNull(batch);
        Assert.Equal(2010UL, batch.AckLsn);
        Assert.Equal(2, batch.Parts.Count);
        var todos = batch.Parts.Single(p => p.Table == "todos");
        Assert.Equal([(1000UL, 0, "1"), (1000UL, 2, "2"), (2000UL, 0, "1")], todos.Changes.Select(c => (c.CommitLsn, c.ChangeIndex, c.RecordId)));
        var orders = batch.Parts.Single(p => p.Table == "orders");
        Assert.Equal([(1000UL, 1, "9")], orders.Changes.Select(c => (c.CommitLsn, c.ChangeIndex, c.RecordId)));
        Assert.All(batch.Parts, p => Assert.Equal(2, p.PartCount));
        Assert.All(batch.Parts, p => Assert.Equal(["id"], p.KeyColumns));
        Assert.Equal([0, 1], batch.Parts.Select(p => p.PartIndex));
    }

    [Fact]
    public void the_bucket_consumer_gets_the_batch_in_commit_order_across_tables_cut_into_parts_that_name_their_predecessor()
    {
        var batcher = Batcher(maxChangesPerSet: 2);
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        batcher.Add(Row(Todos, "1"));
        batcher.Add(Row(Orders, "9"));
        batcher.Add(Row(Todos, "2"));
        batcher.Add(new TransactionCommitted(1000, 1010));
        var first = batcher.Cut()!;
        batcher.Add(new TransactionBegun(2, 2000, Changes.CommittedAt));
        batcher.Add(Row(Orders, "8"));
        batcher.Add(new TransactionCommitted(2000, 2010));
        var second = batcher.Cut()!;

        // Per part: its sets, each (table, changes) in commit order; merged, the parts are the stream.
        Assert.Equal(
            ["todos 1000#0 | orders 1000#1", "todos 1000#2"],
            first.BucketParts.Select(p => string.Join(" | ", p.Sets.Select(s => s.Table + " " + string.Join(",", s.Changes.Select(c => $"{c.CommitLsn}#{c.ChangeIndex}"))))));
        Assert.Equal([(0, 2), (1, 2)], first.BucketParts.Select(p => (p.PartIndex, p.PartCount)));
        Assert.Equal([(0UL, 0), (1000UL, 1)], first.BucketParts.Select(p => (p.PreviousCommitLsn, p.PreviousChangeIndex)));
        // The chain goes on across batches of the run.
        Assert.Equal((1000UL, 2), (second.BucketParts.Single().PreviousCommitLsn, second.BucketParts.Single().PreviousChangeIndex));
    }

    [Fact]
    public void a_transaction_larger_than_the_batch_is_cut_into_chunks_that_acknowledge_nothing_until_its_commit()
    {
        var batcher = Batcher(maxBatchChanges: 2);
        Assert.Null(batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt)));
        Assert.Null(batcher.Add(Row(Todos, "1")));
        var first = batcher.Add(Row(Todos, "2"));
        Assert.Null(batcher.Add(Row(Todos, "3")));
        Assert.Null(batcher.Add(new TransactionCommitted(1000, 1010)));
        var last = batcher.Cut();

        Assert.NotNull(first);
        Assert.Null(first.AckLsn);
        Assert.Equal([0, 1], first.Parts.Single().Changes.Select(c => c.ChangeIndex));
        Assert.NotNull(last);
        Assert.Equal(1010UL, last.AckLsn);
        Assert.Equal([2], last.Parts.Single().Changes.Select(c => c.ChangeIndex));
        Assert.Equal([0L, 1L], new[] { first.Sequence, last.Sequence });
    }

    [Fact]
    public void a_table_with_more_changes_than_a_set_holds_is_split_in_order()
    {
        var batcher = Batcher(maxChangesPerSet: 2);
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        foreach (var id in new[] { "1", "2", "3", "4", "5" })
            batcher.Add(Row(Todos, id));
        batcher.Add(new TransactionCommitted(1000, 1010));

        var batch = batcher.Cut()!;

        Assert.Equal(3, batch.Parts.Count);
        Assert.Equal(["1", "2", "3", "4", "5"], batch.Parts.SelectMany(p => p.Changes).Select(c => c.RecordId));
    }

    [Fact]
    public void an_update_that_changes_the_key_becomes_a_delete_of_the_old_record_and_an_insert_of_the_new()
    {
        var batcher = Batcher();
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        batcher.Add(Row(Todos, "2", oldId: "1"));
        batcher.Add(new TransactionCommitted(1000, 1010));

        var changes = batcher.Cut()!.Parts.Single().Changes;

        Assert.Equal([(ChangeOperation.Delete, "1", 0), (ChangeOperation.Insert, "2", 1)], changes.Select(c => (c.Operation, c.RecordId, c.ChangeIndex)));
    }

    [Fact]
    public void a_commit_without_changes_still_yields_its_acknowledgement()
    {
        var batcher = Batcher();
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        batcher.Add(new TransactionCommitted(1000, 1010));

        var batch = batcher.Cut()!;

        Assert.Empty(batch.Parts);
        Assert.Equal(1010UL, batch.AckLsn);
        Assert.Null(batcher.Cut());
    }

    [Fact]
    public void a_change_outside_a_transaction_stops_with_an_error()
    {
        var error = Assert.Throws<UndecodableMessageException>(() => Batcher().Add(Row(Todos, "1")));
        Assert.Contains("outside a transaction", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void a_truncate_of_several_tables_is_one_change_per_table_in_stream_order()
    {
        var batcher = Batcher();
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        batcher.Add(Row(Todos, "1"));
        batcher.Add(new TablesTruncated([Todos, Orders]));
        batcher.Add(new TransactionCommitted(1000, 1010));

        var batch = batcher.Cut()!;

        Assert.Equal([(ChangeOperation.Update, "1", 0), (ChangeOperation.Truncate, "", 1)], batch.Parts.Single(p => p.Table == "todos").Changes.Select(c => (c.Operation, c.RecordId, c.ChangeIndex)));
        Assert.Equal([(ChangeOperation.Truncate, "", 2)], batch.Parts.Single(p => p.Table == "orders").Changes.Select(c => (c.Operation, c.RecordId, c.ChangeIndex)));
    }

    [Fact]
    public void transactional_messages_go_with_the_rows_of_their_transaction_counted_in_bytes_and_cut_like_them()
    {
        var batcher = Batcher();
        batcher.Add(new MessageEmitted("audit", [1], Transactional: false, Lsn: 900));
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        batcher.Add(new OriginSet("upstream"));
        var emitted = new MessageEmitted("audit", new byte[4096], Transactional: true, Lsn: 950);
        batcher.Add(emitted);
        batcher.Add(Row(Todos, "1"));

        // A chunk of the open transaction takes its messages along: nothing is held until the commit.
        var chunk = batcher.Cut()!;
        Assert.Null(chunk.AckLsn);
        Assert.Equal([(false, (ulong?)null), (true, (ulong?)1000)], chunk.Messages.Select(m => (m.Transactional, m.CommitLsn?.Value)));
        Assert.Equal(("audit", 4096, 950UL), (chunk.Messages[1].Prefix, chunk.Messages[1].Content.Length, chunk.Messages[1].MessageLsn.Value));
        Assert.True(emitted.Bytes >= 4096, "a transactional message counts its bytes");
        Assert.True(chunk.Bytes >= emitted.Bytes, "the batch gives the message's bytes back when it is confirmed");
        Assert.Equal("upstream", chunk.Parts.Single().Changes.Single().Origin);

        batcher.Add(new TransactionCommitted(1000, 1010));
        var commit = batcher.Cut()!;
        Assert.Empty(commit.Messages);
        Assert.Equal(1010UL, commit.AckLsn);
    }

    [Fact]
    public void an_outbox_transaction_of_many_messages_is_cut_into_batches_of_bounded_bytes_before_its_commit()
    {
        var options = new BatchingOptions { MaxBatchBytes = 1_000_000, MaxInFlightBytes = 4_000_000 };
        var batcher = new ChangeBatcher("slot", Guid.Empty, options);
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        var batches = new List<OutgoingBatch>();
        for (var i = 0; i < 10_000; i++)
        {
            if (batcher.Add(new MessageEmitted("outbox", new byte[1024], Transactional: true, Lsn: 900 + (ulong)i)) is { } full)
                batches.Add(full);
        }

        Assert.InRange(batches.Count, 9, 11); // 10 MB of messages in batches of 1 MB
        Assert.All(batches, b => Assert.True(b.Bytes <= options.MaxBatchBytes + 2048, $"a batch of {b.Bytes} bytes"));
        Assert.All(batches, b => Assert.Null(b.AckLsn));
    }

    [Fact]
    public void a_transaction_with_more_changes_than_a_change_index_numbers_stops_with_what_to_do_instead_of_wrapping()
    {
        var batcher = Batcher();
        batcher.Add(new TransactionBegun(7, 1000, Changes.CommittedAt));
        batcher.NextChangeIndex = int.MaxValue;
        batcher.Add(Row(Todos, "1"));
        var last = batcher.Cut()!.Parts.Single().Changes.Single();
        Assert.Equal(int.MaxValue, last.ChangeIndex);

        var error = Assert.Throws<UndecodableMessageException>(() => batcher.Add(Row(Todos, "2")));

        Assert.StartsWith("Transaction 7 (commit at 0/3E8) has more than 2147483647 row changes", error.Message, StringComparison.Ordinal);
        Assert.Contains("then run synchro-bridge run --accept-gap", error.Message, StringComparison.Ordinal);
    }

    private static RowChanged Wide(string id, int characters) =>
        new(Todos, ChangeOperation.Insert, id, [ColumnValue.Of("id", "int8", id), ColumnValue.Of("title", "text", new string('x', characters))], null, null);

    [Fact]
    public void large_rows_cut_batches_and_change_sets_by_bytes_not_only_by_count()
    {
        var batcher = new ChangeBatcher("slot", Guid.Empty, new BatchingOptions
        {
            MaxBatchChanges = 1_000,
            MaxChangesPerSet = 1_000,
            MaxBatchBytes = 1_000_000,
            MaxBytesPerSet = 300_000,
            MaxInFlightBytes = 4_000_000,
        });
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        OutgoingBatch? full = null;
        var rows = 0;
        while (full is null)
            full = batcher.Add(Wide((++rows).ToString(System.Globalization.CultureInfo.InvariantCulture), 65_536)); // 128 kB each as UTF-16

        // A 1 MB batch holds 8 rows of 128 kB; sets of at most 300 kB hold 2 each.
        Assert.Equal(8, rows);
        Assert.Null(full.AckLsn);
        Assert.Equal([2, 2, 2, 2], full.Parts.Select(p => p.Changes.Count));
        Assert.InRange(full.Bytes, 1_000_000, 1_100_000);
    }

    [Fact]
    public void one_row_larger_than_a_change_set_still_travels_alone()
    {
        var batcher = new ChangeBatcher("slot", Guid.Empty, new BatchingOptions { MaxBytesPerSet = 1_000, MaxBatchBytes = 1_000_000, MaxInFlightBytes = 4_000_000 });
        batcher.Add(new TransactionBegun(1, 1000, Changes.CommittedAt));
        batcher.Add(Wide("1", 10_000));
        batcher.Add(Wide("2", 10));
        batcher.Add(new TransactionCommitted(1000, 1010));

        var batch = batcher.Cut()!;

        Assert.Equal([1, 1], batch.Parts.Select(p => p.Changes.Count));
        Assert.Equal(1010UL, batch.AckLsn);
    }
}
