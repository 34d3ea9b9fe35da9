using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Npgsql;

namespace Synchro.Bridge.IntegrationTests.Infrastructure;

/// <summary>
/// An independent oracle of what the bridge must write into sync_changelog and sync_bucket_edges:
/// triggers record every change of the workload in <c>test_audit</c> inside PostgreSQL, and the
/// oracle replays that record through synchro's edge diff, written here again from the rules (not
/// from the bridge's code). A test then compares the bridge's sidecar tables with the result.
/// </summary>
/// <remarks>
/// Ordering audit rows by id gives, for each record, the commit order of its changes: the id comes
/// from a sequence when the trigger fires, and a second writer of the same record waits on the
/// first one's row lock (or on the unique index, for an insert or a key change to the same id)
/// until that transaction ends, so its audit row always has a larger id. TRUNCATE takes an ACCESS
/// EXCLUSIVE lock, so every transaction that wrote the table before it has committed (smaller ids)
/// and every later one starts after it (larger ids). Changes of different records may interleave
/// across transactions, but the edge diff of a record depends only on that record's own history
/// (and on truncates), so that order is all the replay needs. Rolled-back transactions and
/// savepoints take their audit rows with them.
/// </remarks>
internal static partial class AuditOracle
{
    /// <summary>The bucket every row goes to when the owner column is NULL.</summary>
    public const string GlobalBucket = "global";

    private const short Insert = 1;
    private const short Update = 2;
    private const short Delete = 3;

    /// <summary>How many concrete differences a failure message shows.</summary>
    private const int Shown = 10;

    /// <summary>
    /// Creates <c>test_audit</c> and the audit triggers on each table (in schema public, with a
    /// one-column primary key <c>id</c>). The audit table is not in the bridge's publication: the
    /// bridge publishes only its configured tables.
    /// </summary>
    public static async Task InstallAsync(TestEnvironment env, params string[] tables)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(tables);
        var sql = new StringBuilder(
            """
            CREATE TABLE IF NOT EXISTS test_audit (
                id         bigserial PRIMARY KEY,
                table_name text NOT NULL,
                op         text NOT NULL,
                record_id  text,
                old_row    jsonb,
                new_row    jsonb,
                -- The writing transaction: tells changes a snapshot saw from later ones.
                xid        xid8 NOT NULL DEFAULT pg_current_xact_id());
            CREATE OR REPLACE FUNCTION test_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO test_audit (table_name, op, record_id, new_row) VALUES (TG_TABLE_NAME, 'I', NEW.id::text, to_jsonb(NEW));
                ELSIF TG_OP = 'UPDATE' THEN
                    -- One row even when the key changed: old_row holds the old id, the oracle splits it.
                    INSERT INTO test_audit (table_name, op, record_id, old_row, new_row) VALUES (TG_TABLE_NAME, 'U', NEW.id::text, to_jsonb(OLD), to_jsonb(NEW));
                ELSE
                    INSERT INTO test_audit (table_name, op, record_id, old_row) VALUES (TG_TABLE_NAME, 'D', OLD.id::text, to_jsonb(OLD));
                END IF;
                RETURN NULL;
            END $$;
            CREATE OR REPLACE FUNCTION test_audit_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO test_audit (table_name, op) VALUES (TG_TABLE_NAME, 'T');
                RETURN NULL;
            END $$;

            """);
        foreach (var table in tables)
        {
            var name = Identifier(table);
            sql.Append(CultureInfo.InvariantCulture,
                $"""
                CREATE TRIGGER test_audit_row AFTER INSERT OR UPDATE OR DELETE ON public.{name} FOR EACH ROW EXECUTE FUNCTION test_audit_row();
                CREATE TRIGGER test_audit_truncate AFTER TRUNCATE ON public.{name} FOR EACH STATEMENT EXECUTE FUNCTION test_audit_truncate();

                """);
        }

        await env.ExecuteAsync(sql.ToString());
    }

    /// <summary>
    /// synchro's owner rule on a row as <c>to_jsonb(NEW)</c> gives it: <c>[prefix:value]</c>, or
    /// <c>[global]</c> when the column is NULL. Numbers and strings read as PostgreSQL prints
    /// them for integer and text columns.
    /// </summary>
    public static IReadOnlyList<string> OwnerRule(JsonElement row, string ownerColumn, string prefix)
    {
        ArgumentException.ThrowIfNullOrEmpty(ownerColumn);
        ArgumentNullException.ThrowIfNull(prefix);
        if (!row.TryGetProperty(ownerColumn, out var owner))
            throw new InvalidOperationException($"The audited row has no column '{ownerColumn}': {row.GetRawText()}");
        return Text(owner) is { } value ? [prefix + ":" + value] : [GlobalBucket];
    }

    /// <summary>synchro's rule for a table without an owner column: every row is in <c>global</c>.</summary>
    public static IReadOnlyList<string> GlobalRule(JsonElement row) => [GlobalBucket];

    /// <summary>Replays the table's audit rows, in id order, through the edge diff.</summary>
    public static async Task<Expected> ComputeAsync(TestEnvironment env, string table, Func<JsonElement, IReadOnlyList<string>> rule)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(rule);
        Identifier(table);

        var replay = new Replay(rule);
        await using var command = env.DataSource.CreateCommand(
            "SELECT op, record_id, old_row::text, new_row::text FROM test_audit WHERE table_name = $1 ORDER BY id");
        command.Parameters.Add(new NpgsqlParameter { Value = table });
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var op = reader.GetString(0);
            var recordId = reader.IsDBNull(1) ? null : reader.GetString(1);
            using var oldRow = reader.IsDBNull(2) ? null : JsonDocument.Parse(reader.GetString(2));
            using var newRow = reader.IsDBNull(3) ? null : JsonDocument.Parse(reader.GetString(3));
            replay.Apply(op, recordId, oldRow?.RootElement, newRow?.RootElement);
        }

        return replay.Result();
    }

    /// <summary>
    /// Asserts that the bridge's sidecar tables hold exactly what <paramref name="expected"/> says for
    /// <paramref name="table"/>: no duplicate changelog rows, the same operations per bucket and
    /// record in seq order, the same counts per operation, the same edges, and a last operation per
    /// bucket and record that agrees with the edges. The message lists up to 10 differences per check.
    /// </summary>
    public static async Task AssertSidecarMatchesAsync(TestEnvironment env, string table, Expected expected)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(expected);

        var rows = new List<(string Bucket, string RecordId, short Operation, string CommitLsn, int ChangeIndex)>();
        await using (var command = env.DataSource.CreateCommand(
            "SELECT bucket_id, record_id, operation::smallint, commit_lsn::text, change_idx::integer FROM sync_changelog WHERE table_name = $1 ORDER BY seq"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = table });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                rows.Add((reader.GetString(0), reader.GetString(1), reader.GetInt16(2), reader.GetString(3), reader.GetInt32(4)));
        }

        var edges = new SortedSet<string>(StringComparer.Ordinal);
        await using (var command = env.DataSource.CreateCommand("SELECT record_id, bucket_id FROM sync_bucket_edges WHERE table_name = $1"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = table });
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                edges.Add(Edge(reader.GetString(0), reader.GetString(1)));
        }

        var problems = new List<string>();

        // (a) Each change lands once per bucket and record.
        var duplicates = rows
            .GroupBy(r => (r.CommitLsn, r.ChangeIndex, r.Bucket, r.RecordId))
            .Where(g => g.Count() > 1)
            .Select(g => $"commit_lsn {g.Key.CommitLsn} change_idx {g.Key.ChangeIndex} bucket {g.Key.Bucket} record {g.Key.RecordId}: {g.Count()} rows")
            .ToList();
        Report(problems, "duplicate changelog rows (commit_lsn, change_idx, bucket_id, record_id)", duplicates);

        // (b) The operations of each bucket and record, in seq order.
        var actual = new Dictionary<(string Bucket, string RecordId), List<short>>();
        foreach (var row in rows)
        {
            if (!actual.TryGetValue((row.Bucket, row.RecordId), out var operations))
                actual[(row.Bucket, row.RecordId)] = operations = [];
            operations.Add(row.Operation);
        }

        var differing = expected.Operations.Keys.Union(actual.Keys)
            .Order(KeyOrder.Instance)
            .Select(key => (Key: key, Expected: expected.Operations.GetValueOrDefault(key) ?? [], Actual: actual.GetValueOrDefault(key) ?? []))
            .Where(d => !d.Expected.SequenceEqual(d.Actual))
            .Select(d => $"bucket {d.Key.Bucket} record {d.Key.RecordId}: expected [{Join(d.Expected)}], changelog [{Join(d.Actual)}]")
            .ToList();
        Report(problems, "bucket/record keys whose operation sequence differs", differing);

        // (c) Counts per operation.
        var actualCounts = rows.GroupBy(r => r.Operation).ToDictionary(g => g.Key, g => g.Count());
        var counts = expected.CountsByOperation.Keys.Union(actualCounts.Keys).Order()
            .Select(op => (Op: op, Expected: expected.CountsByOperation.GetValueOrDefault(op), Actual: actualCounts.GetValueOrDefault(op)))
            .Where(c => c.Expected != c.Actual)
            .Select(c => $"operation {c.Op}: expected {c.Expected}, changelog {c.Actual}")
            .ToList();
        Report(problems, "operation counts that differ", counts);

        // (d) Final membership.
        Report(problems, "expected edges missing from sync_bucket_edges (record|bucket)", expected.Edges.Except(edges, StringComparer.Ordinal).ToList());
        Report(problems, "unexpected edges in sync_bucket_edges (record|bucket)", edges.Except(expected.Edges, StringComparer.Ordinal).ToList());

        // (e) The changelog and the edges tell the same story: last operation 3 exactly when there is no edge.
        var inconsistent = actual
            .OrderBy(a => a.Key, KeyOrder.Instance)
            .Where(a => (a.Value[^1] == Delete) == edges.Contains(Edge(a.Key.RecordId, a.Key.Bucket)))
            .Select(a => $"bucket {a.Key.Bucket} record {a.Key.RecordId}: last operation {a.Value[^1]}, edge {(edges.Contains(Edge(a.Key.RecordId, a.Key.Bucket)) ? "present" : "absent")}")
            .Concat(edges
                .Where(e => !actual.ContainsKey(SplitEdge(e)))
                .Select(e => $"edge {e} has no changelog row"))
            .ToList();
        Report(problems, "changelog and edges that disagree", inconsistent);

        if (problems.Count > 0)
        {
            Assert.Fail(
                $"The sidecar tables of '{table}' do not match the audit oracle ({rows.Count} changelog rows, expected {expected.Operations.Values.Sum(o => o.Count)}; "
                + $"{edges.Count} edges, expected {expected.Edges.Count}):{Environment.NewLine}"
                + string.Join(Environment.NewLine, problems));
        }
    }

    private static void Report(List<string> problems, string what, List<string> differences)
    {
        if (differences.Count == 0)
            return;
        problems.Add($"{differences.Count} {what}{(differences.Count > Shown ? $", first {Shown}" : "")}:");
        problems.AddRange(differences.Take(Shown).Select(d => "  " + d));
    }

    private static string Join(List<short> operations) => string.Join(",", operations);

    private static string Edge(string recordId, string bucket) => recordId + "|" + bucket;

    private static (string Bucket, string RecordId) SplitEdge(string edge)
    {
        var bar = edge.LastIndexOf('|');
        return (edge[(bar + 1)..], edge[..bar]);
    }

    /// <summary>A JSON value as PostgreSQL's text output of the column: null for NULL, a string's content, a number's digits.</summary>
    private static string? Text(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.String => value.GetString(),
        JsonValueKind.True => "t",
        JsonValueKind.False => "f",
        _ => value.GetRawText(),
    };

    private static string Identifier(string table)
    {
        ArgumentException.ThrowIfNullOrEmpty(table);
        if (!PlainIdentifier().IsMatch(table))
            throw new ArgumentException($"'{table}' is not a plain lower-case identifier of a table in schema public.", nameof(table));
        return table;
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]*$")]
    private static partial Regex PlainIdentifier();

    /// <summary>What the bridge must have written for one table.</summary>
    internal sealed class Expected
    {
        /// <summary>The operations (1 insert, 2 update, 3 delete) of each bucket and record, in commit order.</summary>
        public Dictionary<(string Bucket, string RecordId), List<short>> Operations { get; } = [];

        /// <summary>Changelog rows per operation.</summary>
        public Dictionary<short, int> CountsByOperation { get; } = [];

        /// <summary>The final sync_bucket_edges of the table as <c>record|bucket</c>.</summary>
        public SortedSet<string> Edges { get; } = new(StringComparer.Ordinal);

        /// <summary>Audit rows replayed (before key changes are split).</summary>
        public int AuditRows { get; internal set; }

        public override string ToString() =>
            $"{AuditRows} audit rows → {Operations.Values.Sum(o => o.Count)} changelog rows "
            + $"({string.Join(", ", CountsByOperation.OrderBy(c => c.Key).Select(c => $"op {c.Key}: {c.Value}"))}), {Edges.Count} edges";
    }

    /// <summary>The edge diff, one audit row at a time, over the oracle's own membership state.</summary>
    private sealed class Replay(Func<JsonElement, IReadOnlyList<string>> rule)
    {
        // The buckets each record is in now, in the order the rule gave them.
        private readonly Dictionary<string, List<string>> _buckets = new(StringComparer.Ordinal);
        private readonly Expected _expected = new();

        public void Apply(string op, string? recordId, JsonElement? oldRow, JsonElement? newRow)
        {
            _expected.AuditRows++;
            switch (op)
            {
                case "I":
                    Diff(Required(recordId, op), After(Required(newRow, op)));
                    break;
                case "U":
                    var newId = Required(recordId, op);
                    var oldId = Text(Required(oldRow, op).GetProperty("id")) ?? throw new InvalidOperationException("An audited update has no old id.");
                    if (oldId != newId)
                    {
                        // A key change: the old record leaves all its buckets, then the new record is inserted.
                        Diff(oldId, []);
                    }

                    Diff(newId, After(Required(newRow, op)));
                    break;
                case "D":
                    Diff(Required(recordId, op), []);
                    break;
                case "T":
                    foreach (var record in _buckets.Keys.Order(StringComparer.Ordinal).ToList())
                        Diff(record, []);
                    break;
                default:
                    throw new InvalidOperationException($"Unknown audit operation '{op}'.");
            }
        }

        public Expected Result()
        {
            foreach (var (record, buckets) in _buckets)
            {
                foreach (var bucket in buckets)
                    _expected.Edges.Add(Edge(record, bucket));
            }

            return _expected;
        }

        /// <summary>A delete, or a soft delete (<c>deleted_at</c> set), leaves every bucket; otherwise the rule decides.</summary>
        private IReadOnlyList<string> After(JsonElement newRow) =>
            newRow.TryGetProperty("deleted_at", out var deletedAt) && deletedAt.ValueKind != JsonValueKind.Null
                ? []
                : rule(newRow);

        /// <summary>Entering a bucket is an insert, staying an update (after-buckets in rule order), leaving a delete.</summary>
        private void Diff(string recordId, IReadOnlyList<string> after)
        {
            var before = _buckets.GetValueOrDefault(recordId) ?? [];
            var buckets = after.Distinct(StringComparer.Ordinal).ToList();
            foreach (var bucket in buckets)
                Emit(bucket, recordId, before.Contains(bucket, StringComparer.Ordinal) ? Update : Insert);
            foreach (var bucket in before.Where(b => !buckets.Contains(b, StringComparer.Ordinal)))
                Emit(bucket, recordId, Delete);

            if (buckets.Count == 0)
                _buckets.Remove(recordId);
            else
                _buckets[recordId] = buckets;
        }

        private void Emit(string bucket, string recordId, short operation)
        {
            if (!_expected.Operations.TryGetValue((bucket, recordId), out var operations))
                _expected.Operations[(bucket, recordId)] = operations = [];
            operations.Add(operation);
            _expected.CountsByOperation[operation] = _expected.CountsByOperation.GetValueOrDefault(operation) + 1;
        }

        private static string Required(string? recordId, string op) =>
            recordId ?? throw new InvalidOperationException($"An audit row with op '{op}' has no record_id.");

        private static JsonElement Required(JsonElement? row, string op) =>
            row ?? throw new InvalidOperationException($"An audit row with op '{op}' lacks the row image it needs.");
    }

    /// <summary>Bucket, then record, in ordinal order, so failure messages list keys the same way each run.</summary>
    private sealed class KeyOrder : IComparer<(string Bucket, string RecordId)>
    {
        public static readonly KeyOrder Instance = new();

        public int Compare((string Bucket, string RecordId) x, (string Bucket, string RecordId) y)
        {
            var bucket = string.CompareOrdinal(x.Bucket, y.Bucket);
            return bucket != 0 ? bucket : string.CompareOrdinal(x.RecordId, y.RecordId);
        }
    }
}
