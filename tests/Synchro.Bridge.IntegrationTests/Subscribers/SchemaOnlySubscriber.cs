using System.Text.Json;

namespace Synchro.Bridge.IntegrationTests.Subscribers;

/// <summary>
/// A subscriber written from the README's rules and <c>contracts/change-set.v2.schema.json</c> alone,
/// as one would write it in any language: raw bodies read with <see cref="JsonDocument"/>, no
/// Synchro.Contracts types. It rebuilds every table it is sent as record id → column → text (null
/// for NULL), and skips replays by the position of the last change it applied to each table.
/// </summary>
internal sealed class SchemaOnlySubscriber
{
    private readonly Dictionary<string, Dictionary<string, Dictionary<string, string?>>> _tables = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (ulong CommitLsn, long ChangeIndex)> _applied = new(StringComparer.Ordinal);

    /// <summary>Changes skipped because the table had already applied a change at or after their position.</summary>
    public int Skipped { get; private set; }

    /// <summary>The rows of <c>source.schema.table</c> by record id.</summary>
    public IReadOnlyDictionary<string, Dictionary<string, string?>> Rows(string table) =>
        _tables.TryGetValue(table, out var rows) ? rows : [];

    /// <summary>Position of the last change applied to <c>source.schema.table</c>.</summary>
    public (ulong CommitLsn, long ChangeIndex) LastApplied(string table) => _applied.GetValueOrDefault(table);

    public void Handle(byte[] body)
    {
        using var document = JsonDocument.Parse(body);
        var set = document.RootElement;
        var table = $"{set.GetProperty("source").GetString()}.{set.GetProperty("schema").GetString()}.{set.GetProperty("table").GetString()}";
        var columns = set.GetProperty("columns").EnumerateArray().Select(c => c.GetProperty("name").GetString()!).ToArray();
        if (!_tables.TryGetValue(table, out var rows))
            _tables[table] = rows = new(StringComparer.Ordinal);

        foreach (var change in set.GetProperty("changes").EnumerateArray())
        {
            // At least once: per table, because the sets of different tables are published concurrently.
            var position = (Lsn(change.GetProperty("commitLsn").GetString()!), change.GetProperty("changeIndex").GetInt64());
            if (_applied.TryGetValue(table, out var last) && position.CompareTo(last) <= 0)
            {
                Skipped++;
                continue;
            }

            _applied[table] = position;
            var recordId = change.TryGetProperty("recordId", out var id) ? id.GetString()! : "";
            switch (change.GetProperty("operation").GetString())
            {
                case "insert" or "read":
                    rows[recordId] = Merge(columns, change.GetProperty("newRow"), []);
                    break;
                case "update":
                    // A key change names the identity the record had; unsent values are the ones it had there.
                    var before = change.TryGetProperty("oldRecordId", out var oldRecordId) ? oldRecordId.GetString()! : recordId;
                    rows.Remove(before, out var previous);
                    rows[recordId] = Merge(columns, change.GetProperty("newRow"), previous ?? []);
                    break;
                case "delete":
                    rows.Remove(recordId);
                    break;
                case "truncate":
                    rows.Clear();
                    break;
                case var other:
                    throw new InvalidOperationException($"Operation '{other}' is not in the schema.");
            }
        }
    }

    /// <summary>The new row's values; a value PostgreSQL did not send (<c>{"unsent": ...}</c>) keeps the one held before.</summary>
    private static Dictionary<string, string?> Merge(string[] columns, JsonElement newRow, Dictionary<string, string?> previous)
    {
        var row = new Dictionary<string, string?>(StringComparer.Ordinal);
        var index = 0;
        foreach (var value in newRow.EnumerateArray())
        {
            var column = columns[index++];
            if (value.ValueKind != JsonValueKind.Object)
                row[column] = value.GetString();
            else if (previous.TryGetValue(column, out var held))
                row[column] = held;
        }

        return row;
    }

    /// <summary>PostgreSQL's <c>X/Y</c> text as the 64-bit LSN it stands for; LSNs never compare as strings.</summary>
    private static ulong Lsn(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        return (Convert.ToUInt64(text[..slash], 16) << 32) | Convert.ToUInt64(text[(slash + 1)..], 16);
    }
}
