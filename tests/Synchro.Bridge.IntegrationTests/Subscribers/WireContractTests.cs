using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Synchro.Bridge.IntegrationTests.Infrastructure;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>
/// The subscriber contract as documented (<c>contracts/*.schema.json</c>, the README's "On the wire")
/// against what the bridge really puts on RabbitMQ, so the documents cannot drift from the wire.
/// </summary>
public sealed partial class WireContractTests(CapturedWire wire) : IClassFixture<CapturedWire>
{
    [Fact]
    public void every_message_kind_captured_from_the_broker_validates_against_the_shipped_schema()
    {
        var problems = new List<string?>();
        foreach (var delivery in wire.Deliveries)
        {
            var body = delivery.Body();
            problems.Add((delivery.IsChangeSet() ? ShippedSchema.ChangeSet : ShippedSchema.LogicalMessage).Errors(body));
            problems.Add(ShippedSchema.Headers.Errors(delivery.Properties()));
            var routingKey = delivery.IsChangeSet()
                ? $"{body.GetProperty("source").GetString()}.{body.GetProperty("schema").GetString()}.{body.GetProperty("table").GetString()}"
                : body.GetProperty("prefix").GetString();
            if (delivery.RoutingKey != routingKey)
                problems.Add($"routing key {delivery.RoutingKey} on {body.GetRawText()}");
        }

        Assert.True(problems.All(p => p is null), string.Join("\n\n", problems.OfType<string>()));
        // Not vacuous: the workload produced every operation, every value form and every optional part.
        var sets = wire.Deliveries.Where(d => d.IsChangeSet()).Select(d => d.Body()).ToList();
        var changes = sets.SelectMany(s => s.GetProperty("changes").EnumerateArray()).ToList();
        Assert.Equal(["delete", "insert", "read", "truncate", "update"], changes.Select(c => c.GetProperty("operation").GetString()).Distinct().Order());
        Assert.Equal(["not-in-old-key", "null", "string", "unchanged-toast"], ValueForms(changes).Distinct().Order());
        Assert.Equal(
            ["composite key", "key change", "old key", "origin", "snapshot read", "whole old row"],
            changes.SelectMany(Features).Distinct().Order());
        Assert.Contains(sets.GroupBy(s => s.GetProperty("table").GetString()), table => table.Select(s => s.GetProperty("columns").GetRawText()).Distinct().Count() > 1);
        Assert.Equal([false, true], wire.Deliveries.Where(d => !d.IsChangeSet()).Select(d => d.Body().GetProperty("transactional").GetBoolean()).Order());
        // As the README says: every message is persistent (delivery_mode 2).
        Assert.All(wire.Deliveries, d => Assert.True(d.Persistent, $"not persistent: {d.RoutingKey}"));
    }

    [Fact]
    public void the_readme_shows_real_messages_of_every_kind()
    {
        var readme = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "README.md"));
        var start = readme.IndexOf("\n### On the wire", StringComparison.Ordinal);
        Assert.True(start >= 0, "The README has no section \"### On the wire\".");
        var section = readme[start..];
        section = section[..(NextSection().Match(section, 1) is { Success: true } next ? next.Index : section.Length)];
        var examples = JsonBlock().Matches(section).Select(m => JsonSerializer.Deserialize<JsonElement>(m.Groups[1].Value)).ToList();
        var captured = wire.Deliveries.SelectMany(d => WireMessages.OneChangeEach(d.Body()))
            .ToLookup(WireMessages.KindOf, WireMessages.Shape);

        var problems = new List<string?>();
        foreach (var example in examples)
        {
            problems.Add((example.TryGetProperty("changes", out _) ? ShippedSchema.ChangeSet : ShippedSchema.LogicalMessage).Errors(example));
            foreach (var one in WireMessages.OneChangeEach(example))
            {
                var (kind, shape) = (WireMessages.KindOf(one), WireMessages.Shape(one));
                if (!captured[kind].Contains(shape))
                    problems.Add($"The README's {kind} has the shape\n  {shape}\nbut the captured ones have\n  {string.Join("\n  ", captured[kind].Distinct())}");
            }
        }

        Assert.True(problems.All(p => p is null), string.Join("\n\n", problems.OfType<string>()));
        Assert.Equal(captured.Select(k => k.Key).Order(), examples.SelectMany(WireMessages.OneChangeEach).Select(WireMessages.KindOf).Distinct().Order());
    }

    [Fact]
    public async Task a_subscriber_using_only_the_schema_rebuilds_a_table_exactly()
    {
        await using var env = await TestEnvironment.CreateAsync();
        await env.ExecuteAsync("""
            CREATE TABLE docs (id bigint PRIMARY KEY, user_id bigint, title text, body text, deleted_at timestamptz);
            CREATE TABLE tags (doc_id bigint, name text, PRIMARY KEY (doc_id, name));
            """);
        await using var subscriber = await ChangeSetSubscriber.StartAsync(env.AmqpUri, "test.rebuild", "public.docs", "public.tags");
        (string, string?)[] tables = [("docs", "user_id"), ("tags", null)];
        // The bucket consumer declares its queue and goes away, and the first bridge only reads and
        // publishes: nothing confirms its batches, so after the restart every change before it comes
        // again, and the subscriber must skip each one.
        var consumerOnly = env.BridgeSettings(tables);
        consumerOnly["Synchro:Roles"] = "Buckets";
        using (var consumer = TestEnvironment.BuildBridge(consumerOnly))
        {
            await consumer.StartAsync();
            await consumer.StopAsync();
        }

        var publishOnly = env.BridgeSettings(tables);
        publishOnly["Synchro:Roles"] = "Replication";
        var first = await env.StartBridgeAsync(publishOnly);

        // Even ids get a body of 100 kB of hex: TOASTed, so updates that leave it alone do not send it.
        await env.ExecuteAsync("INSERT INTO docs SELECT g, 7, 'draft ' || g, CASE WHEN g % 2 = 0 THEN (SELECT string_agg(md5(g || '.' || h), '') FROM generate_series(1, 3200) h) ELSE 'short' END FROM generate_series(1, 6) g");
        await env.ExecuteAsync("INSERT INTO tags VALUES (1, 'a'), (1, 'b'), (2, 'a')");
        await env.ExecuteAsync("UPDATE docs SET title = 'final' WHERE id IN (2, 3)");
        await env.ExecuteAsync("UPDATE docs SET id = 20 WHERE id = 2");
        await env.ExecuteAsync("UPDATE docs SET deleted_at = '2026-11-30 12:00:00+00' WHERE id = 4");
        await env.ExecuteAsync("DELETE FROM tags WHERE doc_id = 1 AND name = 'a'");
        await env.ExecuteAsync("BEGIN; UPDATE tags SET name = 'c' WHERE doc_id = 2; UPDATE docs SET user_id = 8 WHERE id = 20; COMMIT");
        const int BeforeRestart = 16;
        await Eventually.Until(() => Task.FromResult(WireMessages.ChangeCount(subscriber.Raw)), n => n == BeforeRestart, "the changes before the restart");
        await first.StopAsync();
        await env.StartBridgeAsync(tables);

        await env.ExecuteAsync("UPDATE docs SET deleted_at = NULL WHERE id = 4");
        await env.ExecuteAsync("TRUNCATE tags");
        await env.ExecuteAsync("INSERT INTO tags VALUES (20, 'x'), (4, 'y')");
        await env.ExecuteAsync("UPDATE docs SET id = 40, title = 'moved' WHERE id = 4");
        await env.ExecuteAsync("UPDATE docs SET title = 'moved again' WHERE id = 40");
        await env.ExecuteAsync("DELETE FROM docs WHERE id = 1");
        await env.ExecuteAsync("UPDATE docs SET body = 'rewritten' WHERE id = 6");
        await env.ExecuteAsync("UPDATE docs SET deleted_at = '2026-11-30 13:00:00+00' WHERE id = 20");
        var beforeLast = await env.CurrentWalLsnAsync();
        await env.ExecuteAsync("BEGIN; INSERT INTO tags VALUES (7, 'last'); INSERT INTO docs VALUES (7, NULL, NULL, NULL, NULL); COMMIT");

        var docs = $"{env.Source}.public.docs";
        var tagsTable = $"{env.Source}.public.tags";
        var rebuilt = await Eventually.Until(() => Task.FromResult(Rebuild(subscriber.Raw)),
            s => s.LastApplied(docs).CommitLsn > beforeLast && s.LastApplied(tagsTable).CommitLsn > beforeLast, "the last transaction rebuilt");
        Assert.Equal(await TableAsTextAsync(env, "docs"), Render(rebuilt.Rows(docs).Values));
        Assert.Equal(await TableAsTextAsync(env, "tags"), Render(rebuilt.Rows(tagsTable).Values));
        Assert.Equal(BeforeRestart, rebuilt.Skipped);
    }

    private static SchemaOnlySubscriber Rebuild(IEnumerable<RawDelivery> deliveries)
    {
        var subscriber = new SchemaOnlySubscriber();
        foreach (var delivery in deliveries.Where(d => d.Exchange == "synchro.change-set.v2"))
            subscriber.Handle(delivery.Body);
        return subscriber;
    }

    /// <summary>Every row of the table as PostgreSQL's text output of each value, rendered as <see cref="Render"/> does.</summary>
    private static async Task<List<string>> TableAsTextAsync(TestEnvironment env, string table)
    {
        var columns = await env.RowsAsync($"SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position");
        await using var command = env.DataSource.CreateCommand(
            $"SELECT {string.Join(", ", columns.Select(c => $"CASE WHEN {c} IS NULL THEN NULL ELSE format('%s', {c}) END AS {c}"))} FROM {table}");
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<Dictionary<string, string?>>();
        while (await reader.ReadAsync())
            rows.Add(columns.Select((c, i) => (c, reader.IsDBNull(i) ? null : reader.GetString(i))).ToDictionary(p => p.c, p => p.Item2, StringComparer.Ordinal));
        return Render(rows);
    }

    /// <summary>Rows as sorted lines; a long value as its length and hash (still exact), a column missing from the row as "?".</summary>
    private static List<string> Render(IEnumerable<IReadOnlyDictionary<string, string?>> rows) =>
        [.. rows.Select(row => string.Join(", ", row.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value switch
        {
            null => "null",
            { Length: > 40 } large => $"<{large.Length} chars {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(large)))[..12]}>",
            var text => JsonSerializer.Serialize(text),
        }}"))).Order(StringComparer.Ordinal)];

    private static IEnumerable<string> ValueForms(IEnumerable<JsonElement> changes) =>
        from change in changes
        from row in change.EnumerateObject()
        where row.Name is "newRow" or "oldRow"
        from value in row.Value.EnumerateArray()
        select value.ValueKind switch
        {
            JsonValueKind.String => "string",
            JsonValueKind.Null => "null",
            _ => value.GetProperty("unsent").GetString()!,
        };

    private static IEnumerable<string> Features(JsonElement change)
    {
        if (change.GetProperty("transactionId").GetInt64() == 0)
            yield return "snapshot read";
        if (change.TryGetProperty("recordId", out var recordId) && recordId.GetString()!.StartsWith('['))
            yield return "composite key";
        if (change.TryGetProperty("oldRecordId", out _))
            yield return "key change";
        if (change.TryGetProperty("origin", out _))
            yield return "origin";
        if (change.TryGetProperty("oldRow", out var oldRow))
            yield return oldRow.EnumerateArray().Any(v => v.ValueKind == JsonValueKind.Object) ? "old key" : "whole old row";
    }

    [GeneratedRegex(@"\n#{1,3} ")]
    private static partial Regex NextSection();

    [GeneratedRegex(@"```json\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex JsonBlock();
}
