using Synchro.Bridge.Sidecar;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>The audit oracle checked on its own, without a bridge: hand-computed edge diffs, the workload's final table, and the assertion itself.</summary>
public sealed class AuditOracleTests
{
    private static readonly Func<System.Text.Json.JsonElement, IReadOnlyList<string>> ByOwner =
        row => AuditOracle.OwnerRule(row, "owner_id", "owner");

    private static readonly string[] HandWrittenAuditOps = ["I", "U", "U", "U", "U", "D", "I", "T", "I", "U"];

    private static readonly string[] HandWrittenEdges = ["4|owner:5"];

    [Fact]
    public async Task the_oracle_replays_a_hand_written_history_as_synchro_would()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(MixedWorkload.CreateTableSql);
        await AuditOracle.InstallAsync(env, "items");

        string[] history =
        [
            "INSERT INTO items (id, owner_id, title) VALUES (1, 1, 'a')",
            "UPDATE items SET owner_id = 2 WHERE id = 1",
            "UPDATE items SET deleted_at = now() WHERE id = 1",
            "UPDATE items SET deleted_at = NULL WHERE id = 1",
            "UPDATE items SET id = 2 WHERE id = 1",
            "DELETE FROM items WHERE id = 2",
            "INSERT INTO items (id, owner_id, title) VALUES (3, NULL, 'c')",
            "TRUNCATE items",
            "INSERT INTO items (id, owner_id, title) VALUES (4, 5, 'd')",
            "UPDATE items SET title = 'd2' WHERE id = 4",
        ];
        foreach (var statement in history)
            await env.ExecuteAsync(statement);
        // A rolled-back savepoint leaves no audit row, so no change.
        await using (var connection = await env.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await transaction.SaveAsync("undone");
            await using (var insert = new Npgsql.NpgsqlCommand("INSERT INTO items (id, owner_id, title) VALUES (9, 9, 'x')", connection, transaction))
                await insert.ExecuteNonQueryAsync();
            await transaction.RollbackAsync("undone");
            await transaction.CommitAsync();
        }

        var expected = await AuditOracle.ComputeAsync(env, "items", ByOwner);

        Assert.Equal(HandWrittenAuditOps, await env.RowsAsync("SELECT op FROM test_audit ORDER BY id"));
        Assert.Equal(history.Length, expected.AuditRows);
        var operations = new Dictionary<(string, string), short[]>
        {
            [("owner:1", "1")] = [1, 3],          // inserted; left when moved to owner 2
            [("owner:2", "1")] = [1, 3, 1, 3],    // entered; soft-deleted; undeleted; key changed away
            [("owner:2", "2")] = [1, 3],          // the new key entered; hard-deleted
            [("global", "3")] = [1, 3],           // NULL owner; truncated
            [("owner:5", "4")] = [1, 2],          // inserted after the truncate; title edit stays
        };
        Assert.Equal(
            operations.OrderBy(o => o.Key).Select(o => $"{o.Key} [{string.Join(",", o.Value)}]"),
            expected.Operations.OrderBy(o => o.Key).Select(o => $"{o.Key} [{string.Join(",", o.Value)}]"));
        Assert.Equal(new Dictionary<short, int> { [1] = 6, [2] = 1, [3] = 5 }, expected.CountsByOperation);
        Assert.Equal(HandWrittenEdges, expected.Edges);
    }

    [Fact]
    public async Task the_oracles_final_edges_are_the_workloads_final_table()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(MixedWorkload.CreateTableSql);
        await AuditOracle.InstallAsync(env, "items");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));

        var before = MixedWorkload.Committed;
        await MixedWorkload.RunAsync(env.ConnectionString, clients: 3, transactionsPerClient: 200, seed: 7, timeout.Token);
        await MixedWorkload.BigTransactionAsync(env.ConnectionString, rows: 500, firstId: 3 * MixedWorkload.ClientIdSpan + 1, timeout.Token);
        Assert.Equal(601, MixedWorkload.Committed - before);

        var expected = await AuditOracle.ComputeAsync(env, "items", ByOwner);

        var table = await env.RowsAsync(
            "SELECT id::text || '|' || coalesce('owner:' || owner_id, 'global') FROM items WHERE deleted_at IS NULL");
        Assert.Equal(table.Order(StringComparer.Ordinal), expected.Edges);
        // Every kind of change happened, including key changes (a delete of one record id, an insert of another).
        Assert.All(new short[] { 1, 2, 3 }, op => Assert.True(expected.CountsByOperation.GetValueOrDefault(op) > 0, $"no operation {op}: {expected}"));
        Assert.True(await env.ScalarAsync<long>("SELECT count(*) FROM test_audit WHERE op = 'U' AND old_row->'id' <> new_row->'id'") > 0, "no key change");
        Assert.True(await env.ScalarAsync<long>("SELECT count(*) FROM test_audit WHERE new_row->>'deleted_at' IS NOT NULL") > 0, "no soft delete");
        Assert.Equal(0L, await env.ScalarAsync<long>("SELECT count(*) FROM test_audit WHERE new_row->>'title' = 'rolled back'"));
    }

    [Fact]
    public async Task the_assertion_accepts_the_expected_sidecar_and_names_each_difference()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync(MixedWorkload.CreateTableSql);
        await AuditOracle.InstallAsync(env, "items");
        await new SidecarTables("public").MigrateAsync(env.DataSource, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await MixedWorkload.RunAsync(env.ConnectionString, clients: 2, transactionsPerClient: 50, seed: 11, timeout.Token);
        await env.ExecuteAsync("TRUNCATE items");
        await MixedWorkload.RunAsync(env.ConnectionString, clients: 2, transactionsPerClient: 50, seed: 12, timeout.Token);
        var expected = await AuditOracle.ComputeAsync(env, "items", ByOwner);

        // Written as the bridge would: one change per (bucket, record) operation, in order.
        var changeIndex = 0;
        foreach (var ((bucket, record), operations) in expected.Operations)
        {
            foreach (var operation in operations)
            {
                await env.ExecuteAsync(
                    $"INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation, commit_lsn, change_idx) VALUES ('{bucket}', 'items', '{record}', {operation}, '0/1', {changeIndex++})");
            }
        }

        foreach (var edge in expected.Edges)
        {
            var parts = edge.Split('|');
            await env.ExecuteAsync($"INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id, checksum, lsn) VALUES ('items', '{parts[0]}', '{parts[1]}', 0, '0/1')");
        }

        await AuditOracle.AssertSidecarMatchesAsync(env, "items", expected);

        // One lost delete (its edge kept, as the bridge would have): a wrong sequence, a wrong count, an unexpected edge.
        var (lostBucket, lostRecord) = expected.Operations.OrderBy(o => o.Key).First(o => o.Value[^1] == 3).Key;
        await env.ExecuteAsync(
            $"DELETE FROM sync_changelog WHERE seq = (SELECT max(seq) FROM sync_changelog WHERE bucket_id = '{lostBucket}' AND record_id = '{lostRecord}')");
        await env.ExecuteAsync($"INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id, checksum, lsn) VALUES ('items', '{lostRecord}', '{lostBucket}', 0, '0/1')");
        // One lost edge: missing, and contradicting the changelog's last insert or update.
        var dropped = expected.Edges.First();
        await env.ExecuteAsync($"DELETE FROM sync_bucket_edges WHERE table_name = 'items' AND record_id || '|' || bucket_id = '{dropped}'");
        var failure = await Assert.ThrowsAnyAsync<Xunit.Sdk.XunitException>(() => AuditOracle.AssertSidecarMatchesAsync(env, "items", expected));
        Assert.Contains($"bucket {lostBucket} record {lostRecord}: expected [", failure.Message, StringComparison.Ordinal);
        Assert.Contains("operation 3: expected", failure.Message, StringComparison.Ordinal);
        Assert.Contains($"unexpected edges in sync_bucket_edges (record|bucket):{Environment.NewLine}  {lostRecord}|{lostBucket}", failure.Message, StringComparison.Ordinal);
        Assert.Contains($"expected edges missing from sync_bucket_edges (record|bucket):{Environment.NewLine}  {dropped}", failure.Message, StringComparison.Ordinal);
        var (droppedRecord, droppedBucket) = (dropped.Split('|')[0], dropped.Split('|')[1]);
        Assert.Contains($"changelog and edges that disagree:{Environment.NewLine}  bucket {droppedBucket} record {droppedRecord}: last operation", failure.Message, StringComparison.Ordinal);
    }
}
