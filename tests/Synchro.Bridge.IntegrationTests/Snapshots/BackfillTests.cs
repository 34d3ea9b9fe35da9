using System.Globalization;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Snapshots;

/// <summary>Backfills and rebuilds of one table while the bridge streams, with the bridge as its own process.</summary>
public sealed class BackfillTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(4);
    private const long NotesBase = 100_000_000;

    [Fact]
    public async Task a_table_added_to_the_configuration_is_backfilled_under_a_live_workload_placing_every_record_once()
    {
        const int Notes = 15_000;
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        await env.ExecuteAsync(TreeWorkload.CreateTablesSql);
        await AuditOracle.InstallAsync(env, "notes");
        // Ids past the ones TreeWorkload's clients insert.
        await env.ExecuteAsync($"INSERT INTO notes SELECT {NotesBase} + g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 20 + 1 END, 'note ' || g FROM generate_series(1, {Notes}) g");

        // A bridge of lists and cards only, with a workload on them that goes on throughout.
        var before = TestEnvironment.WithSnapshot(env.BridgeSettings(("lists", "user_id"), ("cards", null)));
        var bridge = scenario.Start(before);
        await InitialSnapshotTests.WaitForSnapshotsAsync(scenario, bridge, jobs: 2);
        using var stop = new CancellationTokenSource();
        var tree = TreeWorkload.RunAsync(env.ConnectionString, clients: 2, transactionsPerClient: 100_000, seed: 810, stop.Token, pause: TimeSpan.FromMilliseconds(10));
        bridge.Terminate();
        // MassTransit's stop timeout alone is 30 s: the bound is for a stop that hangs, not a slow one.
        Assert.Equal(0, await bridge.WaitForExitAsync(TimeSpan.FromSeconds(90)));

        // notes joins the configuration: the bridge backfills it at start while the stream goes on.
        var after = TestEnvironment.WithSnapshot(env.BridgeSettings());
        TreeWorkload.Configure(after);
        after["Synchro:Snapshot:ChunkRows"] = "1000";
        bridge = scenario.Start(after);
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_snapshots WHERE table_name = 'notes' AND kind = 'backfill' AND status IN ('running', 'done')"), n => n == 1, "the backfill of notes to start", Deadline);
        var firstLive = await env.ScalarAsync<long>("SELECT max(id) + 1 FROM test_audit");
        var writing = WriteNotesAsync(env.ConnectionString, Notes, clients: 2, seed: 811, stop.Token);
        await InitialSnapshotTests.WaitForSnapshotsAsync(scenario, bridge, jobs: 3);
        var done = await env.ScalarAsync<long>("SELECT max(id) FROM test_audit");
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT max(id) FROM test_audit"), id => id > done + 200, "writes after the backfill");
        await stop.CancelAsync();
        var notes = await writing;
        await tree;
        await scenario.WaitForCatchUpAsync(bridge, Deadline);

        var outcome = await BackfillOracle.AssertAsync(env, "notes", row => AuditOracle.OwnerRule(row, "user_id", "user"), firstLive);
        output.WriteLine($"{notes} note transactions during and after the backfill; {outcome.PlacedBeforeFirstChange} records placed by their chunk, {outcome.PlacedAtFirstChange} by a change that reached the stream first");
        Assert.True(notes > 0 && outcome.PlacedBeforeFirstChange > 0, "the backfill ran under writes");
        // The chunks read the table as it stood when each was read (rows inserted ahead of the key order included).
        Assert.Equal(["notes|backfill|done|watermark"], await env.RowsAsync("SELECT table_name, kind, status, method FROM sync_snapshots WHERE table_name = 'notes'"));
        Assert.Equal(0L, await env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures"));
        bridge.AssertRunning();
    }

    [Fact]
    public async Task a_rebuild_after_a_rule_change_writes_only_the_records_that_change_buckets()
    {
        const int Notes = 10_000;
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        await env.ExecuteAsync(
            $"""
            CREATE TABLE notes (id bigint PRIMARY KEY, user_id int, owner_id int, body text);
            INSERT INTO notes SELECT g, g % 20 + 1, CASE WHEN g % 7 = 0 THEN g % 20 + 2 ELSE g % 20 + 1 END, 'note ' || g FROM generate_series(1, {Notes}) g;
            """);
        var byUser = TestEnvironment.WithSnapshot(env.BridgeSettings(("notes", "user_id")));
        var bridge = scenario.Start(byUser);
        await InitialSnapshotTests.WaitForSnapshotsAsync(scenario, bridge, jobs: 1);
        await scenario.WaitForCatchUpAsync(bridge, Deadline);
        bridge.Terminate();
        // MassTransit's stop timeout alone is 30 s: the bound is for a stop that hangs, not a slow one.
        Assert.Equal(0, await bridge.WaitForExitAsync(TimeSpan.FromSeconds(90)));
        var lastSeq = await env.ScalarAsync<long>("SELECT max(seq) FROM sync_changelog");

        // The rule changes to another column, under the same bucket names.
        var byOwner = TestEnvironment.WithSnapshot(env.BridgeSettings(("notes", "owner_id")));
        byOwner["Synchro:Tables:0:BucketPrefix"] = "user";
        bridge = scenario.Start(byOwner);
        await scenario.WaitForSlotHeldAsync(bridge);
        var rebuild = BridgeProcess.Start(byOwner, null, "rebuild", "notes", "--wait");
        Assert.Equal(0, await rebuild.WaitForExitAsync(Deadline));
        output.WriteLine(rebuild.RecentOutput);
        await scenario.WaitForCatchUpAsync(bridge, Deadline);

        // Exactly the moved notes: out of the old bucket, into the new one; nothing for the others.
        var moved = await env.ScalarAsync<long>("SELECT count(*) FROM notes WHERE owner_id <> user_id");
        Assert.Equal(Notes / 7, moved);
        Assert.Equal(0L, await env.ScalarAsync<long>(
            $"""
            SELECT count(*) FROM (
                (SELECT record_id, bucket_id, operation::int FROM sync_changelog WHERE seq > {lastSeq}
                 EXCEPT ALL
                 (SELECT id::text, 'user:' || user_id, 3 FROM notes WHERE owner_id <> user_id
                  UNION ALL SELECT id::text, 'user:' || owner_id, 1 FROM notes WHERE owner_id <> user_id))
                UNION ALL
                ((SELECT id::text, 'user:' || user_id, 3 FROM notes WHERE owner_id <> user_id
                  UNION ALL SELECT id::text, 'user:' || owner_id, 1 FROM notes WHERE owner_id <> user_id)
                 EXCEPT ALL
                 SELECT record_id, bucket_id, operation::int FROM sync_changelog WHERE seq > {lastSeq})) d
            """));
        Assert.Equal(2 * moved, await env.ScalarAsync<long>($"SELECT count(*) FROM sync_changelog WHERE seq > {lastSeq}"));
        Assert.Equal(await env.RowsAsync("SELECT e FROM (SELECT id::text || '|user:' || owner_id AS e FROM notes) n ORDER BY e COLLATE \"C\""),
            await env.RowsAsync("SELECT e FROM (SELECT record_id || '|' || bucket_id AS e FROM sync_bucket_edges) n ORDER BY e COLLATE \"C\""));
        Assert.Equal(["notes|initial|done", "notes|rebuild|done"], await env.RowsAsync("SELECT table_name, kind, status FROM sync_snapshots ORDER BY id"));

        // What an operator reads: both jobs with their rows; a table that is not configured is refused with what to do.
        var status = BridgeProcess.Start(byOwner, null, "snapshot", "status", "--all");
        Assert.Equal(0, await status.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var lines = status.RecentOutput.Split('\n').Select(l => System.Text.RegularExpressions.Regex.Replace(l.Trim(), " +", " ")).ToList();
        Assert.Contains(lines, l => l.StartsWith($"1 notes initial done {Notes}/{Notes} ", StringComparison.Ordinal) && l.Contains(" exported ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"2 notes rebuild done {Notes}/{Notes} ", StringComparison.Ordinal) && l.Contains(" watermark ", StringComparison.Ordinal));
        Assert.Contains("synchro-bridge: 0 snapshot jobs open.", lines);
        var refused = BridgeProcess.Start(byOwner, null, "backfill", "lists");
        Assert.Equal(2, await refused.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("synchro-bridge: public.lists is not in Synchro:Tables. Add it there and restart the bridge: a table added to the configuration is backfilled when the bridge starts.", refused.RecentOutput, StringComparison.Ordinal);
        bridge.AssertRunning();
    }

    /// <summary>
    /// A chunk holds its bytes until the stream reaches its watermark. Rows larger than what the
    /// budget has left, committed before that watermark, must not wait for those bytes: they come
    /// back only once the reader has read past the rows.
    /// </summary>
    [Fact]
    public async Task rows_larger_than_the_budget_left_written_during_a_backfill_pass_the_chunks_that_wait_behind_them()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        var env = scenario.Env;
        await env.ExecuteAsync("INSERT INTO items (id, owner_id, title) SELECT 900000000 + g, g % 7, 'existing ' || g FROM generate_series(1, 3000) g");
        var settings = scenario.Settings();
        // 2 MB in flight, so a chunk may hold 512 kB, and every 3 MB row is larger than the whole budget.
        settings["Synchro:Batching:MaxInFlightBytes"] = "2097152";
        settings["Synchro:Batching:MaxBatchBytes"] = "524288";
        settings["Synchro:Snapshot:ChunkRows"] = "500";
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        var firstLive = await env.ScalarAsync<long>("SELECT coalesce(max(id), 0) + 1 FROM test_audit");
        using var stop = new CancellationTokenSource();
        var large = Task.Run(async () =>
        {
            var written = 0;
            for (var id = 1; !stop.IsCancellationRequested; id++, written++)
            {
                await env.ExecuteAsync($"INSERT INTO items (id, owner_id, title) VALUES ({950_000_000 + id}, {id % 7}, repeat(md5('{id}'), 100000))");
                // Paced to what the bridge applies (each row alone in flight), so the stream does not fall ever further behind.
                await Task.Delay(250, CancellationToken.None);
            }
            return written;
        });
        var request = BridgeProcess.Start(settings, null, "backfill", "items");
        Assert.Equal(0, await request.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        // Before the fix the reader waited for ever at the first such row ahead of a chunk's watermark.
        await Eventually.Until(() => env.ScalarAsync<long>("SELECT count(*) FROM sync_snapshots WHERE table_name = 'items' AND kind = 'backfill' AND status = 'done'"), n => n == 1, "the backfill to end", TimeSpan.FromSeconds(90));
        await stop.CancelAsync();
        var written = await large;
        Assert.True(written > 0, "no large row was written during the backfill");
        await scenario.WaitForCatchUpAsync(bridge, Deadline);

        await BackfillOracle.AssertAsync(env, "items", row => AuditOracle.OwnerRule(row, "owner_id", "owner"), firstLive);
        output.WriteLine($"measured: {written} rows of 3.2 MB written while 3,000 rows were backfilled in chunks of 500");
        bridge.AssertRunning();
    }

    /// <summary>Writers on notes: owners changed, bodies edited, rows deleted and inserted.</summary>
    private static Task<long> WriteNotesAsync(string connectionString, int notes, int clients, int seed, CancellationToken stop) =>
        PacedWriters.RunAsync(connectionString, clients, seed, (client, random) =>
        {
            var next = NotesBase + 10_000_000L + client * 1_000_000L;
            return () =>
            {
                var id = (NotesBase + random.Next(1, notes + 1)).ToString(CultureInfo.InvariantCulture);
                return random.Next(100) switch
                {
                    < 40 => $"UPDATE notes SET user_id = {random.Next(1, 21)} WHERE id = {id}",
                    < 70 => $"UPDATE notes SET body = 'edited' WHERE id = {id}",
                    < 85 => $"DELETE FROM notes WHERE id = {id}",
                    _ => $"INSERT INTO notes VALUES ({next++}, {random.Next(1, 21)}, 'new')",
                };
            };
        }, stop);
}
