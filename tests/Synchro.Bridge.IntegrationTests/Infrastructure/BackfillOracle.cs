using System.Text.Json;
using Npgsql;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// The audit oracle for a table backfilled while it is written (one owner-ruled table, no parents).
/// A watermark backfill places each existing record exactly once, at one of two points, and either
/// is a complete history: before the record's first change after the backfill started (the chunk
/// read it first: an insert of its earlier row, then every change), or at that first change (the
/// change reached the stream before the chunk: the record enters with it, then every later change).
/// Each record's changelog must be one of the two, in order, with nothing written twice; the
/// edges must be the table's rows under the rule.
/// </summary>
internal static class BackfillOracle
{
    private const short Insert = 1;
    private const short Update = 2;
    private const short Delete = 3;

    /// <summary>Records placed the first way and the second way.</summary>
    public sealed record Outcome(int PlacedBeforeFirstChange, int PlacedAtFirstChange);

    /// <param name="firstLiveAuditId">The first audit row written after the backfill started; earlier ones are the rows it reads.</param>
    public static async Task<Outcome> AssertAsync(TestEnvironment env, string table, Func<JsonElement, IReadOnlyList<string>> rule, long firstLiveAuditId)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(rule);
        var before = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var changes = new Dictionary<string, List<List<string>>>(StringComparer.Ordinal);
        await using (var command = env.DataSource.CreateCommand("SELECT id, op, record_id, new_row::text FROM test_audit WHERE table_name = $1 ORDER BY id"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = table });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var id = reader.GetString(2);
                List<string> after;
                if (reader.GetString(1) == "D")
                {
                    after = [];
                }
                else
                {
                    using var row = JsonDocument.Parse(reader.GetString(3));
                    after = rule(row.RootElement).Distinct(StringComparer.Ordinal).ToList();
                }

                if (reader.GetInt64(0) < firstLiveAuditId)
                    before[id] = after;
                else
                    (changes.TryGetValue(id, out var list) ? list : changes[id] = []).Add(after);
            }
        }

        var actual = new Dictionary<string, List<(string Bucket, short Operation)>>(StringComparer.Ordinal);
        await using (var command = env.DataSource.CreateCommand("SELECT record_id, bucket_id, operation::smallint FROM sync_changelog WHERE table_name = $1 ORDER BY seq"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = table });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                (actual.TryGetValue(reader.GetString(0), out var list) ? list : actual[reader.GetString(0)] = []).Add((reader.GetString(1), reader.GetInt16(2)));
        }

        var problems = new List<string>();
        int first = 0, second = 0;
        foreach (var record in before.Keys.Union(changes.Keys).Union(actual.Keys).Order(StringComparer.Ordinal))
        {
            var history = changes.GetValueOrDefault(record) ?? [];
            var start = before.GetValueOrDefault(record) ?? [];
            var placedFirst = Replay([start, .. history]);
            var placedAtChange = history.Count > 0 ? Replay(history) : null;
            var written = Group(actual.GetValueOrDefault(record) ?? []);
            if (Same(written, placedFirst))
                first++;
            else if (placedAtChange is not null && Same(written, placedAtChange))
                second++;
            else
                problems.Add($"record {record}: changelog {Show(written)}, expected {Show(placedFirst)}{(placedAtChange is null ? "" : " or " + Show(placedAtChange))}");
        }

        var expectedEdges = before.Keys.Union(changes.Keys)
            .SelectMany(r => (changes.TryGetValue(r, out var h) && h.Count > 0 ? h[^1] : before[r]).Select(b => r + "|" + b))
            .Order(StringComparer.Ordinal).ToList();
        var edges = await env.RowsAsync($"SELECT e FROM (SELECT record_id || '|' || bucket_id AS e FROM sync_bucket_edges WHERE table_name = '{table}') n ORDER BY e COLLATE \"C\"");
        if (!expectedEdges.SequenceEqual(edges))
            problems.Add($"edges differ: {expectedEdges.Except(edges).Count()} missing (first {string.Join(", ", expectedEdges.Except(edges).Take(5))}), {edges.Except(expectedEdges).Count()} unexpected (first {string.Join(", ", edges.Except(expectedEdges).Take(5))})");

        if (problems.Count > 0)
            Assert.Fail($"The backfilled sidecar rows of '{table}' match neither placement ({problems.Count} problems, first 10):{Environment.NewLine}{string.Join(Environment.NewLine, problems.Take(10))}");
        return new Outcome(first, second);
    }

    /// <summary>The operations per bucket of a record that goes through these bucket sets, starting in none.</summary>
    private static Dictionary<string, List<short>> Replay(IEnumerable<List<string>> states)
    {
        var operations = new Dictionary<string, List<short>>(StringComparer.Ordinal);
        var current = new List<string>();
        foreach (var after in states)
        {
            foreach (var bucket in after)
                Add(operations, bucket, current.Contains(bucket, StringComparer.Ordinal) ? Update : Insert);
            foreach (var bucket in current.Where(b => !after.Contains(b, StringComparer.Ordinal)))
                Add(operations, bucket, Delete);
            current = after;
        }

        return operations;
    }

    private static Dictionary<string, List<short>> Group(List<(string Bucket, short Operation)> rows)
    {
        var operations = new Dictionary<string, List<short>>(StringComparer.Ordinal);
        foreach (var (bucket, operation) in rows)
            Add(operations, bucket, operation);
        return operations;
    }

    private static void Add(Dictionary<string, List<short>> operations, string bucket, short operation) =>
        (operations.TryGetValue(bucket, out var list) ? list : operations[bucket] = []).Add(operation);

    private static bool Same(Dictionary<string, List<short>> left, Dictionary<string, List<short>> right) =>
        left.Count == right.Count && left.All(l => right.TryGetValue(l.Key, out var r) && l.Value.SequenceEqual(r));

    private static string Show(Dictionary<string, List<short>> operations) =>
        "{" + string.Join("; ", operations.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key}: {string.Join(",", o.Value)}")) + "}";
}
