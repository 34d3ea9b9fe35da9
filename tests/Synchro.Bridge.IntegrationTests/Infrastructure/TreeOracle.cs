using System.Text.Json;
using Npgsql;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// The audit oracle (see <see cref="AuditOracle"/>) for the parent/child pair of <see cref="TreeWorkload"/>:
/// lists are placed by <c>user_id</c> (<c>user:N</c>, <c>global</c> when NULL, nowhere while soft-deleted),
/// cards take their list's buckets, and a list that changes buckets takes its live cards along.
/// Written from the rules, not from the bridge's code. With a snapshot, the audit rows the snapshot
/// saw are folded into the rows it reads, each placed with one insert per bucket before any later change.
/// </summary>
internal static class TreeOracle
{
    private const short Insert = 1;
    private const short Update = 2;
    private const short Delete = 3;

    /// <param name="snapshot">The initial snapshot as <c>pg_current_snapshot()</c> printed it; null when the bridge streamed every change.</param>
    public static async Task<(AuditOracle.Expected Lists, AuditOracle.Expected Cards)> ComputeAsync(TestEnvironment env, string? snapshot)
    {
        ArgumentNullException.ThrowIfNull(env);
        var audit = new List<(bool Seen, string Table, string Op, string? RecordId, string? OldRow, string? NewRow)>();
        await using (var command = env.DataSource.CreateCommand(
            "SELECT coalesce(pg_visible_in_snapshot(xid, $1::pg_snapshot), false), table_name, op, record_id, old_row::text, new_row::text FROM test_audit WHERE table_name IN ('lists', 'cards') ORDER BY id"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)snapshot ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                audit.Add((reader.GetBoolean(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetString(5)));
            }
        }

        var replay = new Replay();
        // Per record, the changes a snapshot saw precede the ones it did not (a writer waits for the row lock).
        foreach (var row in audit.Where(a => a.Seen))
            replay.Apply(row.Table, row.Op, row.RecordId, row.NewRow);
        if (snapshot is not null)
            replay.PlaceAll();
        replay.Emitting = true;
        foreach (var row in audit.Where(a => !a.Seen))
            replay.Apply(row.Table, row.Op, row.RecordId, row.NewRow);
        return replay.Result();
    }

    private sealed class Replay
    {
        private readonly Dictionary<string, List<string>> _lists = new(StringComparer.Ordinal);
        private readonly Dictionary<string, (string List, List<string> Buckets)> _cards = new(StringComparer.Ordinal);
        private readonly AuditOracle.Expected _expectedLists = new();
        private readonly AuditOracle.Expected _expectedCards = new();

        public bool Emitting { get; set; }

        public void Apply(string table, string op, string? recordId, string? newRow)
        {
            var id = recordId ?? throw new InvalidOperationException($"An audit row of {table} has no record id.");
            using var document = newRow is null ? null : JsonDocument.Parse(newRow);
            var row = document?.RootElement;
            if (table == "lists")
            {
                var before = _lists.GetValueOrDefault(id) ?? [];
                var after = op == "D" ? [] : ListBuckets(row!.Value);
                Diff(_expectedLists, id, before, after, updates: true);
                if (op == "D")
                    _lists.Remove(id);
                else
                    _lists[id] = after;
                if (!before.Order(StringComparer.Ordinal).SequenceEqual(after.Order(StringComparer.Ordinal)))
                {
                    foreach (var (card, state) in _cards.Where(c => c.Value.List == id).ToList())
                    {
                        Diff(_expectedCards, card, state.Buckets, after, updates: false);
                        _cards[card] = (id, after);
                    }
                }
            }
            else
            {
                var before = _cards.TryGetValue(id, out var state) ? state.Buckets : [];
                if (op == "D")
                {
                    Diff(_expectedCards, id, before, [], updates: true);
                    _cards.Remove(id);
                    return;
                }

                var list = Text(row!.Value.GetProperty("list_id"))!;
                var after = _lists.GetValueOrDefault(list) ?? [];
                Diff(_expectedCards, id, before, after, updates: true);
                _cards[id] = (list, after);
            }
        }

        /// <summary>What a snapshot writes: every record it read enters each of its buckets.</summary>
        public void PlaceAll()
        {
            Emitting = true;
            foreach (var (list, buckets) in _lists)
                Diff(_expectedLists, list, [], buckets, updates: true);
            foreach (var (card, state) in _cards)
                Diff(_expectedCards, card, [], state.Buckets, updates: true);
        }

        public (AuditOracle.Expected Lists, AuditOracle.Expected Cards) Result()
        {
            foreach (var (list, buckets) in _lists)
            {
                foreach (var bucket in buckets)
                    _expectedLists.Edges.Add(list + "|" + bucket);
            }

            foreach (var (card, state) in _cards)
            {
                foreach (var bucket in state.Buckets)
                    _expectedCards.Edges.Add(card + "|" + bucket);
            }

            return (_expectedLists, _expectedCards);
        }

        private static List<string> ListBuckets(JsonElement row)
        {
            if (row.GetProperty("deleted_at").ValueKind != JsonValueKind.Null)
                return [];
            return Text(row.GetProperty("user_id")) is { } user ? ["user:" + user] : [AuditOracle.GlobalBucket];
        }

        /// <summary>Entering a bucket is an insert, staying an update (unless a cascade only moves the record), leaving a delete.</summary>
        private void Diff(AuditOracle.Expected expected, string recordId, List<string> before, List<string> after, bool updates)
        {
            if (!Emitting)
                return;
            foreach (var bucket in after)
            {
                if (!before.Contains(bucket, StringComparer.Ordinal))
                    Emit(expected, bucket, recordId, Insert);
                else if (updates)
                    Emit(expected, bucket, recordId, Update);
            }

            foreach (var bucket in before.Where(b => !after.Contains(b, StringComparer.Ordinal)))
                Emit(expected, bucket, recordId, Delete);
        }

        private static void Emit(AuditOracle.Expected expected, string bucket, string recordId, short operation)
        {
            if (!expected.Operations.TryGetValue((bucket, recordId), out var operations))
                expected.Operations[(bucket, recordId)] = operations = [];
            operations.Add(operation);
            expected.CountsByOperation[operation] = expected.CountsByOperation.GetValueOrDefault(operation) + 1;
        }

        private static string? Text(JsonElement value) => value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => value.GetString(),
            _ => value.GetRawText(),
        };
    }
}
