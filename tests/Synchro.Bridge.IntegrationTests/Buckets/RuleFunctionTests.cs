using System.Globalization;
using Synchro.Bridge.Buckets;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Buckets;

/// <summary>SQL function rules from real WAL, and the failures commands as an operator runs them.</summary>
public sealed class RuleFunctionTests
{
    private const string Docs = "CREATE TABLE docs (id bigint PRIMARY KEY, team_id bigint, title text)";

    /// <summary>A team's bucket and a shared one; a document without a team is an error until the rule is fixed.</summary>
    private const string StrictRule =
        """
        CREATE OR REPLACE FUNCTION doc_buckets(table_name text, operation text, new_row jsonb, old_row jsonb) RETURNS SETOF text LANGUAGE plpgsql AS $$
        BEGIN
            IF new_row->>'team_id' IS NULL THEN
                RAISE EXCEPTION 'doc % has no team', new_row->>'id';
            END IF;
            RETURN NEXT 'team:' || (new_row->>'team_id');
            RETURN NEXT 'all-docs';
            RETURN NEXT 'team:' || (new_row->>'team_id'); -- duplicates are dropped
        END $$;
        """;

    private const string FixedRule =
        """
        CREATE OR REPLACE FUNCTION doc_buckets(table_name text, operation text, new_row jsonb, old_row jsonb) RETURNS SETOF text LANGUAGE sql AS $$
            SELECT 'team:' || coalesce(new_row->>'team_id', 'none') UNION ALL SELECT 'all-docs'
        $$;
        """;

    private static Dictionary<string, string?> Settings(FaultScenario scenario)
    {
        var settings = scenario.Env.BridgeSettings();
        settings["Synchro:Tables:0:Name"] = "docs";
        settings["Synchro:Tables:0:Function"] = "public.doc_buckets";
        return settings;
    }

    [Fact]
    public async Task a_failing_sql_rule_lands_in_sync_rule_failures_and_failures_replay_places_the_rows_once_the_function_is_fixed()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(Docs + ";" + StrictRule);
        var settings = Settings(scenario);
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);

        await scenario.Env.ExecuteAsync("INSERT INTO docs VALUES (1, 5, 'plan'), (2, NULL, 'orphan'), (3, 6, 'notes')");
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(1));

        // The stream went on: the rows the rule placed are in, the failing one is kept with its error.
        Assert.Equal(["docs|1|all-docs", "docs|1|team:5", "docs|3|all-docs", "docs|3|team:6"], await scenario.Env.EdgesAsync());
        Assert.Equal("docs|2|1|Rule function public.doc_buckets failed: P0001: doc 2 has no team",
            (await scenario.Env.RowsAsync("SELECT table_name, record_id, operation, error_text FROM sync_rule_failures WHERE resolved_at IS NULL")).Single());

        var list = await RunAsync(settings, "failures", "list");
        Assert.Equal(0, list.ExitCode);
        Assert.Matches(@"(?m)^\d+\t\S+ \S+\tdocs\t2\tinsert\t[0-9A-F]+/[0-9A-F]+#1\topen\tRule function public\.doc_buckets failed: P0001: doc 2 has no team$", list.Output);
        Assert.Contains("synchro-bridge: 1 open rule failure.", list.Output, StringComparison.Ordinal);

        // Replayed before the fix: still failing, exit 1, nothing written.
        var early = await RunAsync(settings, "failures", "replay");
        Assert.Equal(1, early.ExitCode);
        Assert.Contains("replayed 1 rule failures: 0 placed (0 changelog rows), 0 obsolete (their record changed after them), 1 still failing", early.Output, StringComparison.Ordinal);

        await scenario.Env.ExecuteAsync(FixedRule);
        var replay = await RunAsync(settings, "failures", "replay", "--table", "docs");
        Assert.Equal(0, replay.ExitCode);
        Assert.Contains("synchro-bridge: replayed 1 rule failures: 1 placed (2 changelog rows), 0 obsolete (their record changed after them), 0 still failing.", replay.Output, StringComparison.Ordinal);
        Assert.Equal(["docs|2|all-docs", "docs|2|team:none"], (await scenario.Env.EdgesAsync()).Where(e => e.StartsWith("docs|2|", StringComparison.Ordinal)).ToList());
        Assert.Equal(["team:none|docs|2|1", "all-docs|docs|2|1"], (await scenario.Env.ChangelogAsync()).Where(r => r.Contains("|docs|2|", StringComparison.Ordinal)).ToList());
        Assert.Contains("synchro-bridge: 0 open rule failures.", (await RunAsync(settings, "failures", "list")).Output, StringComparison.Ordinal);

        // The bridge goes on with the fixed rule; later changes of the record apply normally.
        await scenario.Env.ExecuteAsync("UPDATE docs SET team_id = 8 WHERE id = 2");
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(1));
        Assert.Equal(["docs|2|all-docs", "docs|2|team:8"], (await scenario.Env.EdgesAsync()).Where(e => e.StartsWith("docs|2|", StringComparison.Ordinal)).ToList());
    }

    [Fact]
    public async Task a_rule_function_dropped_under_the_running_bridge_holds_its_change_sets_with_health_red_and_files_no_row_as_a_failure()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(Docs + ";" + FixedRule);
        var settings = Settings(scenario);
        settings["Synchro:Health:File"] = Path.Combine(Path.GetTempPath(), $"{scenario.Env.Name}.{Guid.NewGuid():N}.health");
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        await scenario.Env.ExecuteAsync("INSERT INTO docs VALUES (1, 5, 'plan')");
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(1));

        // An error of the environment, the same for every row: before, each row became a rule failure.
        await scenario.Env.ExecuteAsync("DROP FUNCTION doc_buckets(text, text, jsonb, jsonb)");
        var written = await scenario.Env.CurrentWalLsnAsync();
        await scenario.Env.ExecuteAsync("INSERT INTO docs VALUES (2, 6, 'notes'), (3, 7, 'draft')");
        var (_, detail) = await Eventually.Until(() => FaultScenario.HealthAsync(settings), h => !h.Healthy, "health to turn red");
        Assert.Contains("the bucket rule function public.doc_buckets of public.docs cannot be called (42883: function public.doc_buckets(text, text, jsonb, jsonb) does not exist); restore it or GRANT EXECUTE ON FUNCTION", detail, StringComparison.Ordinal);
        Assert.Equal(0, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures"));
        Assert.True(await scenario.Env.ConfirmedFlushLsnAsync() <= written, "the held change set was acknowledged");
        Assert.Equal(["docs|1|all-docs", "docs|1|team:5"], await scenario.Env.EdgesAsync());

        // Restored: the held change set applies by itself, placing every row.
        await scenario.Env.ExecuteAsync(FixedRule);
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(1));
        Assert.Equal(["docs|1|all-docs", "docs|1|team:5", "docs|2|all-docs", "docs|2|team:6", "docs|3|all-docs", "docs|3|team:7"], await scenario.Env.EdgesAsync());
        Assert.Equal(0, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures"));
        await Eventually.Until(() => FaultScenario.HealthAsync(settings), h => h.Healthy, "health to turn green again");
    }

    /// <summary>
    /// Notes in one bucket; a note without a body is an error. While notes_gate has a row, the
    /// function fails as a revoked privilege does (42501): an error of the environment, which holds.
    /// </summary>
    private const string Notes =
        """
        CREATE TABLE notes (id bigint PRIMARY KEY, body text);
        CREATE TABLE notes_gate (closed boolean);
        CREATE OR REPLACE FUNCTION note_buckets(table_name text, operation text, new_row jsonb, old_row jsonb) RETURNS SETOF text LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM notes_gate) THEN
                RAISE EXCEPTION 'permission denied for the notes' USING ERRCODE = '42501';
            END IF;
            IF new_row->>'body' IS NULL THEN
                RAISE EXCEPTION 'note % has no body', new_row->>'id';
            END IF;
            RETURN NEXT 'notes';
        END $$;
        """;

    [Fact]
    public async Task a_failure_replayed_while_earlier_changes_of_its_record_wait_for_another_partition_enters_every_bucket_after_them()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(Docs + ";" + StrictRule + ";" + Notes);
        var settings = Settings(scenario);
        settings["Synchro:Tables:1:Name"] = "notes";
        settings["Synchro:Tables:1:Function"] = "public.note_buckets";
        settings["Synchro:Apply:Partitions"] = "2";
        // The note goes to the other partition than doc 1.
        var layout = new ApplyLayout(2, []);
        var note = Enumerable.Range(1, 100).First(id => layout.PartitionOf("notes", id.ToString(CultureInfo.InvariantCulture)) != layout.PartitionOf("docs", "1"));
        var bridge = scenario.Start(settings);
        await scenario.WaitForSlotHeldAsync(bridge);
        await scenario.Env.ExecuteAsync($"INSERT INTO docs VALUES (1, 5, 'plan'); INSERT INTO notes VALUES ({note}, 'first')");
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(1));

        // The notes partition holds (its function has lost a privilege), so no acknowledgement passes the transaction
        // that changes the note and moves doc 1 to team 6: doc 1's rows of it wait in sync_changelog_pending.
        await scenario.Env.ExecuteAsync("INSERT INTO notes_gate VALUES (true)");
        await scenario.Env.ExecuteAsync($"BEGIN; UPDATE notes SET body = 'second' WHERE id = {note}; UPDATE docs SET team_id = 6 WHERE id = 1; COMMIT");
        await scenario.Env.ExecuteAsync("UPDATE docs SET team_id = NULL WHERE id = 1");
        await Eventually.Until(() => scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures WHERE resolved_at IS NULL"), n => n == 1, "doc 1 without a team to fail");
        Assert.Equal(3L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog_pending WHERE table_name = 'docs'"));

        await scenario.Env.ExecuteAsync(FixedRule);
        var replay = await RunAsync(settings, "failures", "replay");
        Assert.True(replay.ExitCode == 0, replay.Output);
        Assert.Contains("1 placed (3 changelog rows)", replay.Output, StringComparison.Ordinal);

        // The privilege is back: the held part applies, the acknowledgement passes both transactions.
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog WHERE table_name = 'notes' AND operation = 2"));
        await scenario.Env.ExecuteAsync("DELETE FROM notes_gate");
        await scenario.WaitForCatchUpAsync(bridge, TimeSpan.FromMinutes(1));
        Assert.Equal(0L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_changelog_pending"));

        // In seq order, every bucket has doc 1's rows in commit order: it left team 6 after it entered it.
        const string Doc = "SELECT bucket_id, operation, commit_lsn, change_idx FROM sync_changelog WHERE table_name = 'docs' AND record_id = '1' ORDER BY ";
        var bySeq = await scenario.Env.RowsAsync(Doc + "seq");
        Assert.Equal(await scenario.Env.RowsAsync(Doc + "commit_lsn, change_idx, seq"), bySeq);
        Assert.Equal(["1", "3"], bySeq.Where(r => r.StartsWith("team:6|", StringComparison.Ordinal)).Select(r => r.Split('|')[1]).ToList());
        Assert.Equal(["docs|1|all-docs", "docs|1|team:none"], (await scenario.Env.EdgesAsync()).Where(e => e.StartsWith("docs|", StringComparison.Ordinal)).ToList());
    }

    [Fact]
    public async Task two_sources_sharing_a_sidecar_schema_keep_and_replay_each_their_own_failures_of_one_transaction()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(Docs + ";" + StrictRule + ";" + Notes);
        var docs = Settings(scenario);
        docs["Synchro:Source"] = "docs-source";
        var notes = scenario.Env.BridgeSettings();
        notes["Synchro:Source"] = "notes-source";
        notes["Synchro:Replication:SlotName"] = scenario.Env.Name + "_notes";
        notes["Synchro:Replication:PublicationName"] = scenario.Env.Name + "_notes";
        notes["Synchro:Tables:0:Name"] = "notes";
        notes["Synchro:Tables:0:Function"] = "public.note_buckets";
        var docsBridge = scenario.Start(docs);
        var notesBridge = scenario.Start(notes);
        await scenario.WaitForSlotHeldAsync(docsBridge);
        await Eventually.Until(() => scenario.Env.ScalarAsync<bool>($"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{scenario.Env.Name}_notes' AND active)"), "the notes bridge to hold its slot");

        // One transaction, the first change of each source's stream failing in each: the same (commit_lsn, change_idx).
        await scenario.Env.ExecuteAsync("BEGIN; INSERT INTO docs VALUES (1, NULL, 'orphan'); INSERT INTO notes VALUES (1, NULL); COMMIT");
        await scenario.WaitForCatchUpAsync(docsBridge, TimeSpan.FromMinutes(1));
        var written = await scenario.Env.CurrentWalLsnAsync();
        await Eventually.Until(async () => Synchro.Bridge.Replication.Lsn.Parse(await scenario.Env.ScalarAsync<string>($"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{scenario.Env.Name}_notes'")),
            lsn => lsn >= written, "the notes bridge to catch up");
        Assert.Equal(2L, await scenario.Env.ScalarAsync<long>("SELECT count(*) FROM sync_rule_failures WHERE resolved_at IS NULL"));
        Assert.Equal(["docs-source|docs|1|0", "notes-source|notes|1|0"],
            await scenario.Env.RowsAsync("SELECT source, table_name, record_id, change_idx FROM sync_rule_failures WHERE resolved_at IS NULL ORDER BY source"));

        // Each source lists and replays its own: the notes failure is not replayed under the docs rules.
        var docsList = await RunAsync(docs, "failures", "list");
        Assert.Contains("synchro-bridge: 1 open rule failure.", docsList.Output, StringComparison.Ordinal);
        Assert.Contains("\tdocs\t1\tinsert\t", docsList.Output, StringComparison.Ordinal);
        await scenario.Env.ExecuteAsync(FixedRule);
        var replay = await RunAsync(docs, "failures", "replay");
        Assert.Equal(0, replay.ExitCode);
        Assert.Contains("replayed 1 rule failures: 1 placed (2 changelog rows), 0 obsolete (their record changed after them), 0 still failing.", replay.Output, StringComparison.Ordinal);
        Assert.Equal(["notes-source|notes|1"], await scenario.Env.RowsAsync("SELECT source, table_name, record_id FROM sync_rule_failures WHERE resolved_at IS NULL"));
        var notesList = await RunAsync(notes, "failures", "list");
        Assert.Contains("synchro-bridge: 1 open rule failure.", notesList.Output, StringComparison.Ordinal);
        Assert.Contains("\tnotes\t1\tinsert\t", notesList.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task a_rule_function_that_does_not_exist_stops_start_up_with_what_to_create()
    {
        await using var scenario = await FaultScenario.CreateAsync();
        await scenario.Env.ExecuteAsync(Docs);

        var check = await RunAsync(Settings(scenario), "check");

        Assert.Equal(2, check.ExitCode);
        Assert.Contains(
            "synchro-bridge: The bucket rules cannot be used: Synchro:Tables:0 (public.docs): function public.doc_buckets(text, text, jsonb, jsonb) returning setof text does not exist. Create it (CREATE FUNCTION public.doc_buckets(table_name text, operation text, new_row jsonb, old_row jsonb) RETURNS SETOF text ...) or fix Function.",
            check.Output, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(Dictionary<string, string?> settings, params string[] arguments)
    {
        using var command = BridgeProcess.Start(settings, null, arguments);
        var exit = await command.WaitForExitAsync(TimeSpan.FromMinutes(1));
        return (exit, command.RecentOutput);
    }
}
