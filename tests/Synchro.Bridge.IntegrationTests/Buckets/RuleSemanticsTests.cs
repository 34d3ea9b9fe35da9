using System.Globalization;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.Changes;
using Synchro.Bridge.Hosting;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using static Synchro.Bridge.IntegrationTests.Infrastructure.RuleHarness;

namespace Synchro.Bridge.IntegrationTests.Buckets;

/// <summary>
/// Bucket rules on the bus: scripted batches through MassTransit's test harness into the real
/// sidecar tables, each step checked for exactly the changelog rows it must add, in order.
/// </summary>
public sealed class RuleSemanticsTests
{
    /// <summary>lists (owned by a user) ← tasks ← comments; tasks and comments find their parents through their foreign keys.</summary>
    private const string Tree =
        """
        CREATE TABLE lists (id bigint PRIMARY KEY, user_id bigint, deleted_at timestamptz);
        CREATE TABLE tasks (id bigint PRIMARY KEY, list_id bigint REFERENCES lists ON UPDATE CASCADE, title text);
        CREATE TABLE comments (id bigint PRIMARY KEY, task_id bigint REFERENCES tasks, body text);
        """;

    private static readonly TableOptions[] TreeTables =
    [
        new() { Name = "lists", OwnerColumn = "user_id" },
        new() { Name = "tasks" },
        new() { Name = "comments" },
    ];

    private static (string, object?) Owner(long? user) => ("user_id", user);

    private static (string, object?) List(long id) => ("list_id", id);

    private static (string, object?) Task(long id) => ("task_id", id);

    private static async Task Step(RuleHarness bus, string[] expected, params ChangeSet[] sets)
    {
        var before = await bus.LastSeqAsync();
        await bus.ApplyAsync(sets);
        Assert.Equal(expected, await bus.ChangelogSinceAsync(before));
    }

    [Fact]
    public async Task owner_moves_parent_moves_soft_deletes_deletes_reinserts_and_key_changes_carry_every_descendant_in_commit_order()
    {
        await using var bus = await StartAsync(Tree, TreeTables);

        // One transaction, its sets in the batch in table order the other way round: applied in commit order.
        await Step(bus, ["user:7|lists|1|1", "user:7|tasks|10|1", "user:7|comments|100|1", "user:7|comments|101|1"],
            Set("comments", Insert(100, 2, 100, Task(10)), Insert(100, 3, 101, Task(10))),
            Set("tasks", Insert(100, 1, 10, List(1))),
            Set("lists", Insert(100, 0, 1, Owner(7))));

        // The root changes owner: the whole tree enters user:8 top first and leaves user:7 deepest first,
        // so in each bucket a parent is there before its children and goes after them.
        await Step(bus,
            ["user:8|lists|1|1",
             "user:7|comments|100|3", "user:7|comments|101|3", "user:7|tasks|10|3",
             "user:8|tasks|10|1", "user:8|comments|100|1", "user:8|comments|101|1",
             "user:7|lists|1|3"],
            Set("lists", Update(200, 0, 1, Owner(8))));

        // A task moves to a list created in the same batch: it and its comments follow.
        var move = await bus.ApplyAsync(
            Set("lists", Insert(300, 0, 2, Owner(9))),
            Set("tasks", Update(300, 1, 10, List(2))));
        Assert.Equal(
            ["user:9|lists|2|1", "user:9|tasks|10|1",
             "user:8|comments|100|3", "user:8|comments|101|3", "user:9|comments|100|1", "user:9|comments|101|1",
             "user:8|tasks|10|3"],
            (await bus.ChangelogSinceAsync(0)).Skip(12).ToList());

        // A soft-deleted parent takes its descendants out of every bucket.
        await Step(bus, ["user:9|comments|100|3", "user:9|comments|101|3", "user:9|tasks|10|3", "user:9|lists|2|3"],
            Set("lists", Update(400, 0, 2, Owner(9), ("deleted_at", "2026-11-30 12:00:00+00"))));

        // A comment added meanwhile has a parent, but one in no bucket: no bucket, and no failure.
        await Step(bus, [], Set("comments", Insert(500, 0, 102, Task(10))));

        // Undeleted, the parent brings back every live descendant, the new comment too.
        await Step(bus,
            ["user:9|lists|2|1", "user:9|tasks|10|1", "user:9|comments|100|1", "user:9|comments|101|1", "user:9|comments|102|1"],
            Set("lists", Update(600, 0, 2, Owner(9), ("deleted_at", null))));

        await Step(bus, ["user:9|comments|101|3"], Set("comments", Delete(700, 0, 101)));

        // The parent's key changes (2 → 3): its old identity is deleted with its subtree, the new one
        // inserted; ON UPDATE CASCADE then re-points the task, which brings its comments along.
        await Step(bus,
            ["user:9|comments|100|3", "user:9|comments|102|3", "user:9|tasks|10|3", "user:9|lists|2|3",
             "user:9|lists|3|1",
             "user:9|tasks|10|1", "user:9|comments|100|1", "user:9|comments|102|1"],
            Set("lists", Delete(800, 0, 2), Insert(800, 1, 3, Owner(9))),
            Set("tasks", Update(800, 2, 10, List(3))));

        // Deleted and inserted again under another list: its comments, still pointing at it, come back with it.
        await Step(bus, ["user:9|comments|100|3", "user:9|comments|102|3", "user:9|tasks|10|3"], Set("tasks", Delete(900, 0, 10)));
        await Step(bus, ["user:8|tasks|10|1", "user:8|comments|100|1", "user:8|comments|102|1"], Set("tasks", Insert(1000, 0, 10, List(1))));

        Assert.Equal(
            ["comments|100|user:8", "comments|102|user:8", "lists|1|user:8", "lists|3|user:9", "tasks|10|user:8"],
            await bus.Env.EdgesAsync());
        Assert.Equal(0L, await bus.Env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures"));
        // Edges carry each record's own checksum, also when a cascade brought it back.
        Assert.Equal(0L, await bus.Env.ScalarAsync<long>("SELECT count(*) FROM sync_bucket_edges e JOIN sync_record_positions p USING (table_name, record_id) WHERE e.checksum IS DISTINCT FROM p.checksum"));

        // Delivered again, a batch changes nothing.
        var tables = await SnapshotAsync(bus);
        await bus.RedeliverAsync(move);
        Assert.Equal(tables, await SnapshotAsync(bus));
    }

    [Fact]
    public async Task a_child_that_arrives_before_its_parent_is_a_rule_failure_that_replay_places_once_the_parent_is_there()
    {
        await using var bus = await StartAsync(Tree, TreeTables);
        await bus.ApplyAsync(Set("lists", Insert(100, 0, 1, Owner(7))));

        await Step(bus, [], Set("comments", Insert(200, 0, 200, Task(20))));
        var failure = (await bus.Env.RowsAsync("SELECT table_name, record_id, operation, error_text, resolved_at FROM sync_rule_failures")).Single();
        Assert.Equal("comments|200|1|Its parent public.tasks record 20 is not in the sidecar tables (not replicated yet, deleted, or itself not placed). Fix the data or the rule, then run synchro-bridge failures replay.|NULL", failure);

        await Step(bus, ["user:7|tasks|20|1"], Set("tasks", Insert(300, 0, 20, List(1))));
        var before = await bus.LastSeqAsync();
        var outcome = await Resolve<RuleFailures>(bus).ReplayAsync(Source, bus.Rules, null, CancellationToken.None);

        Assert.Equal((1, 1, 0), (outcome.Changes, outcome.FailuresReplayed, outcome.FailuresObsolete));
        Assert.Equal(["user:7|comments|200|1"], await bus.ChangelogSinceAsync(before));
        // Written at the failed change's own position, and resolved.
        Assert.Equal("0/C8|0|replayed", (await bus.Env.RowsAsync("SELECT c.commit_lsn::text, c.change_idx, f.resolution FROM sync_changelog c, sync_rule_failures f WHERE c.record_id = '200'")).Single());

        // Replaying again finds nothing open.
        Assert.Equal(0, (await Resolve<RuleFailures>(bus).ReplayAsync(Source, bus.Rules, null, CancellationToken.None)).Changes);
    }

    [Fact]
    public async Task a_later_change_that_places_the_record_supersedes_its_open_failures()
    {
        await using var bus = await StartAsync(Tree, TreeTables);
        await bus.ApplyAsync(Set("lists", Insert(100, 0, 1, Owner(7))), Set("tasks", Insert(100, 1, 10, List(1))));

        await bus.ApplyAsync(Set("comments", Insert(200, 0, 300, Task(99))));
        await Step(bus, ["user:7|comments|300|1"], Set("comments", Update(300, 0, 300, Task(10))));

        Assert.Equal("superseded by the change at 0/12C#0", await bus.Env.ScalarAsync<string>("SELECT resolution FROM sync_rule_failures"));
        Assert.Equal(0, (await Resolve<RuleFailures>(bus).ReplayAsync(Source, bus.Rules, null, CancellationToken.None)).Changes);
    }

    [Fact]
    public async Task a_failure_is_resolved_by_a_later_change_of_the_same_part_that_places_the_record()
    {
        await using var bus = await StartAsync(Tree, TreeTables);
        await bus.ApplyAsync(Set("lists", Insert(100, 0, 1, Owner(7))));

        await Step(bus, ["user:7|tasks|20|1", "user:7|comments|300|1"],
            Set("comments", Insert(200, 0, 300, Task(20)), Update(200, 2, 300, Task(20))),
            Set("tasks", Insert(200, 1, 20, List(1))));

        Assert.Equal("superseded by the change at 0/C8#2", await bus.Env.ScalarAsync<string>("SELECT resolution FROM sync_rule_failures WHERE record_id = '300'"));
    }

    [Fact]
    public async Task a_part_whose_predecessor_was_never_applied_is_neither_applied_nor_confirmed()
    {
        await using var bus = await StartAsync(Tree, TreeTables);
        await bus.ApplyAsync(Set("lists", Insert(100, 0, 1, Owner(7))));

        // The part with the change at 200#0 was lost; the next one names it as its predecessor.
        var next = new ChangeBatch(Source, bus.RunId, bus.NextBatchSequence(), 1, 2, [Set("lists", Insert(300, 0, 2, Owner(8)))])
        {
            PreviousCommitLsn = 200,
            PreviousChangeIndex = 0,
        };
        await bus.PublishAsync(next);

        Assert.Equal(0, bus.Confirmations(next.BatchSequence));
        Assert.Equal(["user:7|lists|1|1"], await bus.Env.ChangelogAsync());
        Assert.Equal("0/64|0", (await bus.Env.RowsAsync("SELECT applied_commit_lsn, applied_change_idx FROM sync_runs")).Single());
    }

    /// <summary>
    /// The first parts of a partition, after the first start or a change of Apply:Partitions: nothing
    /// recorded for the partition yet, and still a lost predecessor is a gap.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task a_part_whose_predecessor_was_never_applied_is_not_applied_where_its_partition_has_recorded_nothing_yet(int partitions)
    {
        await using var bus = await StartAsync(Tree, TreeTables);
        var layout = new ApplyLayout(partitions, []);
        var partition = partitions - 1;
        var ids = Enumerable.Range(1, 100).Where(id => layout.PartitionOf("lists", id.ToString(CultureInfo.InvariantCulture)) == partition).Take(2).ToArray();
        ChangeBatch Part(long id, ulong lsn, ulong previous, long user) =>
            new(Source, bus.RunId, bus.NextBatchSequence(), 0, 1, [Set("lists", Insert(lsn, 0, id, Owner(user)))])
            {
                Layout = layout.Key,
                Partition = partition,
                PreviousCommitLsn = previous,
            };
        if (partitions > 1)
        {
            // Another partition has applied: the source has positions, this partition none.
            var other = Enumerable.Range(1, 100).First(id => layout.PartitionOf("lists", id.ToString(CultureInfo.InvariantCulture)) == 0);
            await bus.RedeliverAsync(Part(other, 100, 0, 6) with { Partition = 0 });
        }

        // Changelog rows of the parts after 100, written directly or waiting in sync_changelog_pending (partitions).
        Task<List<string>> WrittenAsync() => bus.Env.RowsAsync(
            """
            SELECT bucket_id, table_name, record_id, operation FROM (
                SELECT bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM sync_changelog
                UNION ALL SELECT bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM sync_changelog_pending) c
            WHERE commit_lsn > '0/64' ORDER BY commit_lsn, change_idx
            """);
        var lost = Part(ids[0], 200, 0, 7);
        var next = Part(ids[1], 300, 200, 8);
        await bus.PublishAsync(next);
        Assert.Equal(0, bus.Confirmations(next.BatchSequence));
        Assert.Empty(await WrittenAsync());

        // The re-read brings the lost part first: both apply, neither taken for a replay.
        await bus.RedeliverAsync(lost);
        await bus.RedeliverAsync(next);
        Assert.Equal([$"user:7|lists|{ids[0]}|1", $"user:8|lists|{ids[1]}|1"], await WrittenAsync());
    }

    private static T Resolve<T>(RuleHarness bus)
        where T : notnull => (T)bus.Services.GetService(typeof(T))!;

    private static async Task<List<string>> SnapshotAsync(RuleHarness bus) =>
    [
        .. await bus.Env.RowsAsync("SELECT seq, bucket_id, table_name, record_id, operation, commit_lsn, change_idx FROM sync_changelog ORDER BY seq"),
        .. await bus.Env.RowsAsync("SELECT table_name, record_id, bucket_id, checksum, lsn FROM sync_bucket_edges ORDER BY 1, 2, 3"),
        .. await bus.Env.RowsAsync("SELECT table_name, record_id, commit_lsn, change_idx, removed, checksum, parent_table, parent_record_id FROM sync_record_positions ORDER BY 1, 2"),
    ];
}
