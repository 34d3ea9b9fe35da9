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
