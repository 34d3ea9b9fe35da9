using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Synchro.Bridge.IntegrationTests.Infrastructure;
using Synchro.Bridge.Replication;
using Synchro.Contracts;
using Xunit.Abstractions;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>A subscriber outside .NET, with the raw JSON and the documented rules only (examples/python).</summary>
public sealed class PythonSubscriberTests(ITestOutputHelper output)
{
    [Fact]
    public async Task the_python_example_rebuilds_a_table_exactly_from_its_change_sets()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("""
            CREATE TABLE docs (tenant text, id bigint, user_id bigint, title text, body text, deleted_at timestamptz, PRIMARY KEY (tenant, id));
            -- 100 kB of hex that does not compress: stored out of line, so updates that leave it alone do not send it.
            CREATE FUNCTION big(seed int) RETURNS text LANGUAGE sql AS $$ SELECT string_agg(md5(seed || '.' || g), '') FROM generate_series(1, 3200) g $$;
            """);
        using var python = await PythonRebuildProcess.StartAsync(env.AmqpUri, "public.docs", "python.docs", env.Source);
        await using var oracle = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.docs", "public.docs");
        var settings = env.BridgeSettings(("docs", "user_id"));
        var bridge = await env.StartBridgeAsync(settings);

        await env.ExecuteAsync("INSERT INTO docs VALUES ('acme', 1, 7, 'a', big(1)), ('acme', 2, 7, 'b', big(2)), ('beta', 1, 8, 'c', NULL)");
        await env.ExecuteAsync("UPDATE docs SET title = 'a2' WHERE (tenant, id) = ('acme', 1)");
        await env.ExecuteAsync("TRUNCATE docs");
        // The statements of one command commit as one transaction.
        await env.ExecuteAsync("""
            INSERT INTO docs VALUES ('acme', 1, 7, 'a', big(11)), ('acme', 2, 7, 'b', big(12)), ('acme', 3, 7, 'c', big(13));
            INSERT INTO docs VALUES ('beta', 1, 8, 'd', 'short'), ('beta', 2, 8, 'e', big(22));
            UPDATE docs SET title = 'b2' WHERE (tenant, id) = ('acme', 2);
            """);
        await env.ExecuteAsync("""
            UPDATE docs SET body = big(120) WHERE (tenant, id) = ('acme', 2);
            UPDATE docs SET title = 'c2' WHERE (tenant, id) = ('acme', 3);
            """);
        await env.ExecuteAsync("UPDATE docs SET deleted_at = '2026-01-02 03:04:05.678+00' WHERE (tenant, id) = ('acme', 2)");
        await env.ExecuteAsync("DELETE FROM docs WHERE (tenant, id) = ('beta', 1)");
        var written = await env.CurrentWalLsnAsync();
        await Eventually.Until(env.ConfirmedFlushLsnAsync, lsn => lsn >= written, "everything so far acknowledged");
        await bridge.StopAsync();

        // A bridge without the bucket consumer publishes but never acknowledges, so the next bridge publishes
        // these two changes again after the subscriber applied them: a replay it must skip, or the update would
        // look for record acme/1 after the key change moved it.
        var readerOnly = new Dictionary<string, string?>(settings) { ["Synchro:Roles"] = "Replication" };
        var reader = await env.StartBridgeAsync(readerOnly);
        await env.ExecuteAsync("UPDATE docs SET title = 'a3' WHERE (tenant, id) = ('acme', 1)");
        await env.ExecuteAsync("UPDATE docs SET id = 10 WHERE (tenant, id) = ('acme', 1)");
        await Eventually.Until(() => Task.FromResult(oracle.Changes), c => c.Any(change => change.OldRecordId == RecordIds.From(["acme", "1"])), "the key change published");
        await reader.StopAsync();

        // Written while no bridge runs, each key change is followed by another change of the moved row before
        // a bridge reads it: its unchanged body cannot be read back and arrives unsent, so only a subscriber
        // that carries values over from the old identity keeps it.
        await env.ExecuteAsync("UPDATE docs SET id = 30 WHERE (tenant, id) = ('acme', 3)");
        await env.ExecuteAsync("UPDATE docs SET title = 'moved' WHERE (tenant, id) = ('acme', 30)");
        await env.ExecuteAsync("UPDATE docs SET id = 20 WHERE (tenant, id) = ('beta', 2)");
        await env.ExecuteAsync("DELETE FROM docs WHERE (tenant, id) = ('beta', 20)");
        await env.ExecuteAsync("UPDATE docs SET deleted_at = NULL WHERE (tenant, id) = ('acme', 2)");
        await env.StartBridgeAsync(settings);

        await env.ExecuteAsync("""
            INSERT INTO docs VALUES ('beta', 3, 8, 'f', big(33)), ('beta', 4, 8, 'g', big(44));
            UPDATE docs SET title = 'f2', deleted_at = '2026-03-04 05:06:07+00' WHERE (tenant, id) = ('beta', 3);
            DELETE FROM docs WHERE (tenant, id) = ('beta', 4);
            UPDATE docs SET user_id = 9 WHERE tenant = 'acme';
            """);
        await env.ExecuteAsync("INSERT INTO docs VALUES ('omega', 1, 7, 'last', NULL)");

        // Every queue bound to the table receives each change set at once: once this subscriber has the
        // last one, the Python queue holds everything before it.
        var last = RecordIds.From(["omega", "1"]);
        var changes = await Eventually.Until(() => Task.FromResult(oracle.Changes), c => c.Any(change => change.RecordId == last), "the last insert");
        var moved = changes.Where(c => c.OldRecordId == RecordIds.From(["acme", "3"])).ToList(); // more than one if replayed
        Assert.NotEmpty(moved);
        Assert.All(moved, c => Assert.Equal((RecordIds.From(["acme", "30"]), UnsentReason.UnchangedToast), (c.RecordId, c.NewRow!["body"].Unsent)));
        var table = await python.StopAndReadTableAsync(TimeSpan.FromSeconds(60));
        output.WriteLine(python.Errors);
        Assert.Contains("(2 replays skipped)", python.Errors, StringComparison.Ordinal);

        // One row a line, so a failure shows the first row that differs.
        Assert.Equal(string.Join('\n', await ExpectedAsync(env)), string.Join('\n', table.Select(DescribeLine)));
    }

    /// <summary>The table as rebuild_table.py prints it: rows by record id, values as text output.</summary>
    private static async Task<List<string>> ExpectedAsync(TestEnvironment env)
    {
        await using var command = env.DataSource.CreateCommand(
            "SELECT tenant, id::text, user_id::text, title, body, deleted_at::text FROM docs");
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(string RecordId, string Row)>();
        while (await reader.ReadAsync())
        {
            var values = Enumerable.Range(0, reader.FieldCount).Select(i => reader.IsDBNull(i) ? null : reader.GetString(i)).ToArray();
            var row = Enumerable.Range(0, reader.FieldCount).Select(i => $"{reader.GetName(i)}={DescribeValue(values[i])}");
            rows.Add((RecordIds.From([values[0]!, values[1]!]), string.Join(", ", row)));
        }

        return rows.OrderBy(r => r.RecordId, StringComparer.Ordinal).Select(r => $"{r.RecordId}: {r.Row}").ToList();
    }

    /// <summary>One printed line, as <see cref="ExpectedAsync"/> describes a row.</summary>
    private static string DescribeLine(string line)
    {
        using var json = JsonDocument.Parse(line);
        var row = json.RootElement.GetProperty("row").EnumerateObject().Select(column => $"{column.Name}=" + column.Value.ValueKind switch
        {
            JsonValueKind.String => DescribeValue(column.Value.GetString()),
            JsonValueKind.Null => DescribeValue(null),
            _ => "not a value: " + column.Value.GetRawText(),
        });
        return $"{json.RootElement.GetProperty("recordId").GetString()}: {string.Join(", ", row)}";
    }

    /// <summary>A long value by its length and hash, so a failure prints readably and still compares exactly.</summary>
    private static string DescribeValue(string? value) => value switch
    {
        null => "NULL",
        { Length: > 64 } => $"<{value.Length} chars, sha256 {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)))[..16]}>",
        _ => $"'{value}'",
    };
}
