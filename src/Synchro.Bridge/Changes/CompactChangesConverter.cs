using System.Text.Json;
using System.Text.Json.Serialization;

namespace Synchro.Bridge.Changes;

/// <summary>
/// Writes a change set's changes for the bucket consumer compactly: each row shape (column names and
/// types) once, then every change as an array, its rows as arrays of values (a string, <c>null</c>
/// for SQL NULL, <c>false</c> for an unchanged TOAST value) after the index of their shape. The
/// default form named every column with its type and kind on every row: three times the bytes, and
/// most of the consumer's parsing. Both roles of a deployment run the same version; a part in an
/// older form cannot be read, is left unconfirmed, and is re-read from the slot.
/// </summary>
public sealed class CompactChangesConverter : JsonConverter<IReadOnlyList<RowChange>>
{
    private const string Shapes = "shapes";
    private const string Rows = "rows";

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<RowChange> value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        var shapes = new List<IReadOnlyList<ColumnValue>>();
        int ShapeOf(IReadOnlyList<ColumnValue> row)
        {
            for (var i = 0; i < shapes.Count; i++)
            {
                if (row.HasColumns(shapes[i].Count, c => shapes[i][c].Name, c => shapes[i][c].Type))
                    return i;
            }

            shapes.Add(row);
            return shapes.Count - 1;
        }

        var rowShapes = value.Select(c => (New: c.NewRow is null ? -1 : ShapeOf(c.NewRow), Old: c.OldRow is null ? -1 : ShapeOf(c.OldRow))).ToList();
        writer.WriteStartObject();
        writer.WriteStartArray(Shapes);
        foreach (var shape in shapes)
        {
            writer.WriteStartArray();
            foreach (var column in shape)
            {
                writer.WriteStringValue(column.Name);
                writer.WriteStringValue(column.Type);
            }

            writer.WriteEndArray();
        }

        writer.WriteEndArray();
        writer.WriteStartArray(Rows);
        for (var i = 0; i < value.Count; i++)
        {
            var change = value[i];
            writer.WriteStartArray();
            writer.WriteNumberValue(change.CommitLsn);
            writer.WriteNumberValue(change.ChangeIndex);
            writer.WriteNumberValue(change.TransactionId);
            writer.WriteStringValue(change.CommittedAt);
            writer.WriteNumberValue((int)change.Operation);
            writer.WriteStringValue(change.RecordId);
            WriteRow(writer, change.NewRow, rowShapes[i].New);
            WriteRow(writer, change.OldRow, rowShapes[i].Old);
            WriteNullable(writer, change.Origin);
            writer.WriteBooleanValue(change.OldRowIsKey);
            WriteNullable(writer, change.PreviousRecordId);
            writer.WriteEndArray();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    public override IReadOnlyList<RowChange> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        Expect(ref reader, JsonTokenType.StartObject);
        var shapes = new List<(string Name, string Type)[]>();
        var changes = new List<RowChange>();
        while (Next(ref reader) != JsonTokenType.EndObject)
        {
            var property = reader.GetString();
            Next(ref reader);
            switch (property)
            {
                case Shapes:
                    Expect(ref reader, JsonTokenType.StartArray);
                    while (Next(ref reader) == JsonTokenType.StartArray)
                    {
                        var columns = new List<(string, string)>();
                        while (Next(ref reader) == JsonTokenType.String)
                        {
                            var name = reader.GetString()!;
                            Next(ref reader);
                            columns.Add((name, reader.GetString()!));
                        }

                        shapes.Add([.. columns]);
                    }

                    break;
                case Rows:
                    Expect(ref reader, JsonTokenType.StartArray);
                    while (Next(ref reader) == JsonTokenType.StartArray)
                        changes.Add(ReadChange(ref reader, shapes));
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        return changes;
    }

    private static RowChange ReadChange(ref Utf8JsonReader reader, List<(string Name, string Type)[]> shapes)
    {
        var commitLsn = Next(ref reader) == JsonTokenType.Number ? reader.GetUInt64() : throw Unexpected(reader.TokenType, JsonTokenType.Number);
        var changeIndex = NextInt32(ref reader);
        var transactionId = (uint)NextInt64(ref reader);
        var committedAt = Next(ref reader) == JsonTokenType.String ? reader.GetDateTimeOffset() : throw Unexpected(reader.TokenType, JsonTokenType.String);
        var operation = (ChangeOperation)NextInt32(ref reader);
        var recordId = NextString(ref reader)!;
        var newRow = ReadRow(ref reader, shapes);
        var oldRow = ReadRow(ref reader, shapes);
        var origin = NextString(ref reader);
        var oldRowIsKey = Next(ref reader) == JsonTokenType.True;
        var previousRecordId = NextString(ref reader);
        Expect(ref reader, JsonTokenType.EndArray, next: true);
        return new RowChange(commitLsn, changeIndex, transactionId, committedAt, operation, recordId, newRow, oldRow, origin)
        {
            OldRowIsKey = oldRowIsKey,
            PreviousRecordId = previousRecordId,
        };
    }

    private static void WriteRow(Utf8JsonWriter writer, IReadOnlyList<ColumnValue>? row, int shape)
    {
        if (row is null)
        {
            writer.WriteNullValue();
            return;
        }

        writer.WriteStartArray();
        writer.WriteNumberValue(shape);
        foreach (var column in row)
        {
            switch (column.Kind)
            {
                case ColumnValueKind.Text:
                    writer.WriteStringValue(column.Text);
                    break;
                case ColumnValueKind.UnchangedToast:
                    writer.WriteBooleanValue(false);
                    break;
                default:
                    writer.WriteNullValue();
                    break;
            }
        }

        writer.WriteEndArray();
    }

    private static ColumnValue[]? ReadRow(ref Utf8JsonReader reader, List<(string Name, string Type)[]> shapes)
    {
        if (Next(ref reader) == JsonTokenType.Null)
            return null;
        Expect(ref reader, JsonTokenType.StartArray);
        Next(ref reader);
        var shape = shapes[reader.GetInt32()];
        var row = new ColumnValue[shape.Length];
        for (var i = 0; i < row.Length; i++)
        {
            var (name, type) = shape[i];
            row[i] = Next(ref reader) switch
            {
                JsonTokenType.String => new ColumnValue(name, type, ColumnValueKind.Text, reader.GetString()),
                JsonTokenType.False => new ColumnValue(name, type, ColumnValueKind.UnchangedToast, null),
                _ => new ColumnValue(name, type, ColumnValueKind.Null, null),
            };
        }

        Expect(ref reader, JsonTokenType.EndArray, next: true);
        return row;
    }

    private static int NextInt32(ref Utf8JsonReader reader) =>
        Next(ref reader) == JsonTokenType.Number ? reader.GetInt32() : throw Unexpected(reader.TokenType, JsonTokenType.Number);

    private static long NextInt64(ref Utf8JsonReader reader) =>
        Next(ref reader) == JsonTokenType.Number ? reader.GetInt64() : throw Unexpected(reader.TokenType, JsonTokenType.Number);

    private static string? NextString(ref Utf8JsonReader reader) => Next(ref reader) switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Null => null,
        var token => throw Unexpected(token, JsonTokenType.String),
    };

    private static void WriteNullable(Utf8JsonWriter writer, string? value)
    {
        if (value is null)
            writer.WriteNullValue();
        else
            writer.WriteStringValue(value);
    }

    private static JsonTokenType Next(ref Utf8JsonReader reader) =>
        reader.Read() ? reader.TokenType : throw new JsonException("A change set's changes end too early.");

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType expected, bool next = false)
    {
        var token = next ? Next(ref reader) : reader.TokenType;
        if (token != expected)
            throw Unexpected(token, expected);
    }

    private static JsonException Unexpected(JsonTokenType token, JsonTokenType expected) =>
        new($"A change set's changes hold {token} where {expected} belongs: written by another version of the bridge?");
}
